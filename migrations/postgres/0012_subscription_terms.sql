-- Subscription terms: the vendor may end a product's seats on a day (UTC).
-- From the day after, check-ins are refused with `subscription_expired`;
-- nothing is deleted, so extending the term restores every seat as it was.
-- Null: no end.
alter table products add column valid_until date;
