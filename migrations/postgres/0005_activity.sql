-- The audit log: every change to an organization's products, seats, devices
-- and keys, written in the transaction that makes it.
create table activity (
    id bigint generated always as identity primary key,
    org_id bigint not null references organizations (id) on delete cascade,
    at timestamptz not null,
    actor text not null,
    kind text not null,
    product text,
    serial text collate "C",
    detail text
);

-- newest first per organization, and the filters a screen offers
create index activity_by_org on activity (org_id, id);
create index activity_by_product on activity (org_id, product, id);
create index activity_by_serial on activity (org_id, serial, id);
-- retention deletes by age
create index activity_by_time on activity (at);
