-- Searching serials by substring at fleet size: a trigram index (pg_trgm, a
-- trusted extension that ships with PostgreSQL), which the planner uses for
-- `serial ilike '%…%'` when few devices match.
create extension if not exists pg_trgm;

create index devices_serial_trigrams on devices using gin (serial gin_trgm_ops);
