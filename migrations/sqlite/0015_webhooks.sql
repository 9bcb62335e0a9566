-- Webhooks: an organization's endpoints, the messages waiting for each (the
-- outbox) and every delivery attempt.
--
-- `events` holds one bit per event type (store::WebhookEvent::bit; a bit,
-- once given, is never reused) and `event_names` their names as the admin
-- gave them, comma-separated. `secret` is the signing secret's bytes,
-- sealed when the server runs with a secrets key.
create table webhooks (
    id integer primary key,
    org_id integer not null references organizations (id) on delete cascade,
    url text not null,
    events integer not null,
    event_names text not null,
    secret blob not null,
    created_at integer not null
);
create index webhooks_by_org on webhooks (org_id, id);

-- The outbox: a message is written in the transaction of the change it tells
-- of, one row per endpoint that subscribes, and deleted once delivered (or
-- given up on after a day of failures). An endpoint's messages go out one at
-- a time in id order; `claimed_until` is the lease of the process sending one.
create table webhook_outbox (
    id integer primary key,
    webhook_id integer not null references webhooks (id) on delete cascade,
    type text not null,
    at integer not null,
    data text not null,
    attempts integer not null default 0,
    next_attempt_at integer not null,
    claimed_until integer
);
create index webhook_outbox_in_order on webhook_outbox (webhook_id, id);

-- Every attempt, newest last: what `GET /webhooks/{id}/deliveries` lists.
create table webhook_attempts (
    id integer primary key,
    webhook_id integer not null references webhooks (id) on delete cascade,
    message_id text not null,
    type text not null,
    attempt integer not null,
    at integer not null,
    status integer,
    error text
);
create index webhook_attempts_by_webhook on webhook_attempts (webhook_id, id);
create index webhook_attempts_by_time on webhook_attempts (at);

-- What the alerts told webhooks already, so that each is told once:
-- whether the seats in use are at or above `alert_at_percent` (told when it
-- turns true), refusals for want of a seat counted ever and told so far (at
-- most one message a minute), and the subscription's last day told as
-- ending within 14 days.
alter table products add column alert_raised integer not null default 0;
alter table products add column refused_total integer not null default 0;
alter table products add column refused_told integer not null default 0;
alter table products add column refused_told_at integer;
alter table products add column expiry_told text;
