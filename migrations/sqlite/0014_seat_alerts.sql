-- An alert when a product's seats in use reach this share of its seats
-- (1 to 100 percent; null: none). It shows on the Licenses screen.
alter table products add column alert_at_percent integer
    check (alert_at_percent between 1 and 100);
