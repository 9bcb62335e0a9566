-- Usage over time: each product's seats and assignments once a day (the
-- day's last reading), for the Product screen's chart and the Licenses
-- screen's sparklines.
create table seat_snapshots (
    product_id integer not null references products (id) on delete cascade,
    -- days since the Unix epoch (UTC)
    day integer not null,
    seats integer not null,
    assigned integer not null,
    primary key (product_id, day)
) without rowid;
