-- Signed licenses: every "licensed" answer carries a token signed with the
-- server's Ed25519 key, valid for the product's license_days.
alter table products add column license_days bigint not null default 7
    check (license_days between 1 and 365);

-- The server's signing keys. The one with no retired_at signs; retired keys
-- stay published so that tokens they signed can still be verified.
create table signing_keys (
    id bigint generated always as identity primary key,
    kid text not null unique,
    secret bytea not null,
    public bytea not null,
    created_at timestamptz not null,
    retired_at timestamptz
);

-- at most one active key: two servers starting at once create only one
create unique index signing_keys_one_active on signing_keys ((retired_at is null)) where retired_at is null;
