-- Seeds a PostgreSQL database for bench/run.sh (see bench/seed_sqlite.py):
--   psql URL -v devices=N -v holders=M -f bench/seed_postgres.sql
insert into devices (org_id, serial, first_seen, last_seen)
select o.id, 'BENCH-' || lpad(i::text, 7, '0'), now(), now()
from organizations o, generate_series(0, :devices - 1) i
where o.name = 'bench';

insert into assignments (product_id, device_id, assigned_at)
select p.id, d.id, now()
from products p join devices d on d.org_id = p.org_id
where p.code = 'bench';

insert into assignments (product_id, device_id, assigned_at)
select p.id, d.id, now()
from products p
join lateral (select id from devices where org_id = p.org_id order by serial limit :holders) d on true
where p.code = 'office';

update products set assigned = (select count(*) from assignments a where a.product_id = products.id);
vacuum analyze;
