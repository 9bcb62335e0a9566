-- Floating seats: a product's seats may be leased instead of assigned. A
-- floating seat is held while its device keeps checking in; once its lease
-- has ended, the next device that needs a seat frees it (no background task
-- runs first). `lease_until` is null for an assigned seat, which never ends.
alter table products add column seat_model text not null default 'assigned'
    check (seat_model in ('assigned', 'floating'));
alter table products add column lease_minutes integer not null default 20
    check (lease_minutes between 5 and 1440);
alter table assignments add column lease_until integer;

-- the ended leases of a product, found without walking its live ones
create index assignments_by_lease on assignments (product_id, lease_until) where lease_until is not null;
