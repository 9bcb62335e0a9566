-- A fair waiting line: a device refused for want of a seat may ask to wait
-- (`"queue": true`). A freed seat then goes to the device that has waited
-- longest and still asks; one that stops asking (`last_asked` older than a
-- lease, or an hour for assigned seats) no longer counts, and its row is
-- replaced when it queues again.
create table waiting (
    product_id integer not null references products (id) on delete cascade,
    device_id integer not null references devices (id) on delete cascade,
    since integer not null,
    last_asked integer not null,
    primary key (product_id, device_id)
) without rowid;

-- the line in order
create index waiting_in_line on waiting (product_id, since, device_id);
