-- Usage over time: each product's seats and assignments once a day (the
-- day's last reading), for the Product screen's chart and the Licenses
-- screen's sparklines.
create table seat_snapshots (
    product_id bigint not null references products (id) on delete cascade,
    -- days since the Unix epoch (UTC)
    day bigint not null,
    seats bigint not null,
    assigned bigint not null,
    primary key (product_id, day)
);
