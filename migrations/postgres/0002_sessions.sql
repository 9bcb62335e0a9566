-- Browser sign-ins. The cookie holds a random session id; only its SHA-256
-- digest is stored, so a copy of the database cannot be used to sign in.
create table sessions (
    token_hash bytea primary key,
    org_id bigint not null references organizations (id) on delete cascade,
    created_at timestamptz not null,
    expires_at timestamptz not null
);

create index sessions_by_org on sessions (org_id);
