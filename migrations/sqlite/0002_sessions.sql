-- Browser sign-ins. The cookie holds a random session id; only its SHA-256
-- digest is stored, so a copy of the database cannot be used to sign in.
create table sessions (
    token_hash blob primary key,
    org_id integer not null references organizations (id) on delete cascade,
    created_at integer not null,
    expires_at integer not null
) without rowid;

create index sessions_by_org on sessions (org_id);
