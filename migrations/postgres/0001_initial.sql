-- Seatkeeper's schema on PostgreSQL. Serials use the "C" collation: they are
-- compared and ordered byte for byte, as on SQLite. Times are timestamptz (microseconds; the
-- store writes whole milliseconds).

create table organizations (
    id bigint generated always as identity primary key,
    name text not null unique,
    -- only a SHA-256 digest of the administration key is kept
    admin_key_hash bytea not null unique,
    -- the product key is shown on the Settings screen, so it is kept; lookups
    -- go through its digest
    product_key text not null,
    product_key_hash bytea not null unique,
    created_at timestamptz not null
);

create table products (
    id bigint generated always as identity primary key,
    org_id bigint not null references organizations (id) on delete cascade,
    code text not null,
    name text not null,
    seats bigint not null check (seats >= 0),
    -- the number of rows in assignments for this product, kept in the same
    -- transaction as every insert and delete there, so that "is a seat free?"
    -- and "take it" are one conditional update holding the product's row lock
    assigned bigint not null default 0 check (assigned >= 0),
    auto_assign boolean not null default false,
    created_at timestamptz not null,
    unique (org_id, code)
);

create table devices (
    id bigint generated always as identity primary key,
    org_id bigint not null references organizations (id) on delete cascade,
    serial text collate "C" not null,
    first_seen timestamptz not null,
    last_seen timestamptz not null,
    unique (org_id, serial)
);

create table assignments (
    product_id bigint not null references products (id) on delete cascade,
    device_id bigint not null references devices (id) on delete cascade,
    assigned_at timestamptz not null,
    primary key (product_id, device_id)
);

-- a device's seats, for the Device screen and the seats column
create index assignments_by_device on assignments (device_id, product_id);

-- an admin's revoke: auto-assign does not give this product back to this
-- device until an admin assigns it again or the device is deleted
create table revocations (
    device_id bigint not null references devices (id) on delete cascade,
    product_id bigint not null references products (id) on delete cascade,
    revoked_at timestamptz not null,
    primary key (device_id, product_id)
);

create table ignored_serials (
    org_id bigint not null references organizations (id) on delete cascade,
    serial text collate "C" not null,
    ignored_at timestamptz not null,
    primary key (org_id, serial)
);
