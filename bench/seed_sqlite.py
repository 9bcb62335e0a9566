"""Seeds a SQLite database for bench/run.sh: devices BENCH-0000000… of the
organization "bench", each holding a seat of its product "bench"; the first
HOLDERS also hold "office". Straight into the schema of migrations/sqlite.
    python3 bench/seed_sqlite.py PATH DEVICES HOLDERS
"""
import sqlite3
import sys
import time

path, devices, holders = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(path)
db.execute("pragma journal_mode = wal")
db.execute("pragma synchronous = normal")
org = db.execute("select id from organizations where name = 'bench'").fetchone()[0]
bench = db.execute("select id from products where org_id = ? and code = 'bench'", (org,)).fetchone()[0]
office = db.execute("select id from products where org_id = ? and code = 'office'", (org,)).fetchone()[0]
now = int(time.time() * 1000)
with db:
    db.executemany(
        "insert into devices (org_id, serial, first_seen) values (?, ?, ?)",
        ((org, f"BENCH-{i:07d}", now) for i in range(devices)),
    )
    db.execute("insert into device_seen (device_id, last_seen) select id, first_seen from devices where org_id = ?", (org,))
    db.execute(
        "insert into assignments (product_id, device_id, assigned_at) select ?, id, ? from devices where org_id = ?",
        (bench, now, org),
    )
    db.execute(
        "insert into assignments (product_id, device_id, assigned_at)"
        " select ?, id, ? from devices where org_id = ? order by serial limit ?",
        (office, now, org, holders),
    )
    db.execute("update products set assigned = (select count(*) from assignments where product_id = products.id)")
db.execute("pragma wal_checkpoint(truncate)")
db.close()
