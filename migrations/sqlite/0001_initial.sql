-- Seatkeeper's schema on SQLite. Times are integer milliseconds since the Unix
-- epoch (UTC): compact, exactly comparable and index-friendly.

create table organizations (
    id integer primary key,
    name text not null unique,
    -- only a SHA-256 digest of the administration key is kept
    admin_key_hash blob not null unique,
    -- the product key is shown on the Settings screen, so it is kept; lookups
    -- go through its digest
    product_key text not null,
    product_key_hash blob not null unique,
    created_at integer not null
);

create table products (
    id integer primary key,
    org_id integer not null references organizations (id) on delete cascade,
    code text not null,
    name text not null,
    seats integer not null check (seats >= 0),
    -- the number of rows in assignments for this product, kept in the same
    -- transaction as every insert and delete there, so that "is a seat free?"
    -- and "take it" are one conditional update
    assigned integer not null default 0 check (assigned >= 0),
    auto_assign integer not null default 0 check (auto_assign in (0, 1)),
    created_at integer not null,
    unique (org_id, code)
);

create table devices (
    id integer primary key,
    org_id integer not null references organizations (id) on delete cascade,
    serial text not null,
    first_seen integer not null,
    last_seen integer not null,
    unique (org_id, serial)
);

create table assignments (
    product_id integer not null references products (id) on delete cascade,
    device_id integer not null references devices (id) on delete cascade,
    assigned_at integer not null,
    primary key (product_id, device_id)
) without rowid;

-- a device's seats, for the Device screen and the seats column
create index assignments_by_device on assignments (device_id, product_id);

-- an admin's revoke: auto-assign does not give this product back to this
-- device until an admin assigns it again or the device is deleted
create table revocations (
    device_id integer not null references devices (id) on delete cascade,
    product_id integer not null references products (id) on delete cascade,
    revoked_at integer not null,
    primary key (device_id, product_id)
) without rowid;

create table ignored_serials (
    org_id integer not null references organizations (id) on delete cascade,
    serial text not null,
    ignored_at integer not null,
    primary key (org_id, serial)
) without rowid;
