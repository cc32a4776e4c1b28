#!/usr/bin/env python3
"""Makes a multi-tenant SQLite database for bench/partial.sh.

    python3 bench/gen_tenants.py PATH SIZE_MIB [TENANTS]

tenants <- users <- orders <- order_lines, with foreign keys and indexes on them. Orders go
to tenants at random, as they arrive in a real service, so every tenant's rows are spread
over the whole file. Deterministic: the same arguments make the same database.
"""
import random
import sqlite3
import sys

path, size_mib = sys.argv[1], int(sys.argv[2])
tenants = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
rng = random.Random(42)
db = sqlite3.connect(path)
db.executescript(
    """
    PRAGMA journal_mode = WAL;
    CREATE TABLE tenants(id TEXT PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE users(id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                       email TEXT NOT NULL UNIQUE, manager_id INTEGER REFERENCES users(id));
    CREATE TABLE orders(id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                        user_id INTEGER NOT NULL REFERENCES users(id), total INTEGER NOT NULL,
                        note TEXT NOT NULL);
    CREATE TABLE order_lines(id INTEGER PRIMARY KEY,
                             order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
                             sku TEXT NOT NULL, qty INTEGER NOT NULL, detail TEXT NOT NULL);
    CREATE INDEX users_tenant ON users(tenant_id);
    CREATE INDEX orders_tenant ON orders(tenant_id);
    CREATE INDEX orders_user ON orders(user_id);
    CREATE INDEX lines_order ON order_lines(order_id);
    """
)
words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()
def text(n):
    return " ".join(rng.choice(words) for _ in range(n))
users_of = {}
with db:
    uid = 0
    for t in range(tenants):
        tid = f"tenant-{t:04d}"
        db.execute("INSERT INTO tenants VALUES (?, ?)", (tid, f"Tenant {t} Ltd"))
        first = uid + 1
        for u in range(5):
            uid += 1
            db.execute("INSERT INTO users VALUES (?, ?, ?, ?)",
                       (uid, tid, f"user{u}@{tid}.example", None if u == 0 else first))
        users_of[tid] = range(first, uid + 1)
target = size_mib << 20
oid = lid = 0
while True:
    with db:
        for _ in range(5000):
            oid += 1
            tid = f"tenant-{rng.randrange(tenants):04d}"
            db.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
                       (oid, tid, rng.choice(users_of[tid]), rng.randrange(100000), text(20)))
            for _ in range(3):
                lid += 1
                db.execute("INSERT INTO order_lines VALUES (?, ?, ?, ?, ?)",
                           (lid, oid, f"sku-{rng.randrange(10000)}", rng.randrange(1, 9), text(14)))
    size = db.execute("SELECT page_count * page_size FROM pragma_page_count, pragma_page_size").fetchone()[0]
    if size >= target:
        break
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
print(f"{path}: {oid} orders, {lid} lines, {tenants} tenants")
