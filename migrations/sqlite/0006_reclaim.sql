-- Leases: a product may free the seats of devices not seen for this many
-- days (null: never). A background task does it and records each as
-- reclaimed, not as an admin's revoke, so auto-assign may give the seat back.
alter table products add column reclaim_after_days integer
    check (reclaim_after_days between 1 and 3650);
