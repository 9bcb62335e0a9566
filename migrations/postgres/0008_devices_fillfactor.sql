-- A device's `last seen` is rewritten at every check-in (in bulk, every
-- 100 ms). Room left on each page lets PostgreSQL keep such an update on the
-- row's own page (a HOT update), which writes no index entries; on a full
-- page every update also adds entries to every index of the row, the
-- serial's trigram GIN entries included. Pages written from now on keep a
-- fifth free; existing ones gain room as vacuum frees dead rows.
alter table devices set (fillfactor = 80);
