-- Refusals for want of a seat, counted per product, day (since the Unix
-- epoch, UTC) and device: how many check-ins were refused (the sum of
-- `count`) and how many devices (the rows), without a row per check-in.
-- Demand over seats is what tells an admin how many seats to buy. The
-- device is not a reference: its refusals stay counted when it is deleted.
create table refusals (
    product_id integer not null references products (id) on delete cascade,
    day integer not null,
    device_id integer not null,
    count integer not null,
    primary key (product_id, day, device_id)
) without rowid;
