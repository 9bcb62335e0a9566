-- `last seen` in a narrow table of its own. A known device's check-in only
-- moves its `last seen`, and the server writes those times every half
-- second for every device seen meanwhile. In a large fleet those devices
-- are scattered over the whole table, so each write touched most of the
-- pages of devices; the rows here are two integers, a third of the pages
-- or less. Every device has its row, written in the transaction that
-- records the device.
create table device_seen (
    device_id integer primary key references devices (id) on delete cascade,
    last_seen integer not null
);

insert into device_seen (device_id, last_seen) select id, last_seen from devices;

alter table devices drop column last_seen;
