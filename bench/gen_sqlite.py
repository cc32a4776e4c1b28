"""Creates (create PATH MIB), grows by 1% of its rows (append PATH) or updates 1% of its rows
(update PATH) the benchmark database of bench/sqlite.sh and bench/s3.sh (standard library only)."""
import datetime
import os
import random
import sqlite3
import sys

VOCAB = """
the a an and or but if then when while after before during since until because so
account accounts order orders invoice invoices payment payments refund refunds customer
customers user users session sessions request requests response responses service
services server servers client clients cache caches queue queues worker workers job jobs
task tasks batch batches record records table tables index indexes query queries row rows
column columns schema schemas migration migrations deploy deployment release build builds
test tests check checks health status state event events message messages notification
email emails sms push webhook webhooks callback endpoint endpoints route routes handler
token tokens key keys secret certificate certificates login logout signup password reset
profile settings preference preferences subscription subscriptions plan plans trial
upgrade downgrade cancel cancelled renew renewed charge charged declined approved pending
failed succeeded completed started stopped paused resumed retried retry retries timeout
timeouts error errors warning warnings info debug trace latency throughput bandwidth
memory disk cpu network storage bucket object file files upload download export import
report reports dashboard chart metric metrics alert alerts incident incidents page
oncall escalation ticket tickets comment comments review reviews approve reject merge
branch commit commits tag tags version versions config configuration feature flag flags
rollout rollback region zone cluster node nodes pod pods container containers image
images volume volumes snapshot snapshots backup backups restore restored replica
replicas primary secondary leader follower shard shards partition partitions offset
offsets consumer producer topic topics stream streams window aggregate total count sum
average minimum maximum rate limit limits quota quotas usage billing cost price prices
discount coupon tax currency amount balance credit debit transfer ledger entry entries
warehouse shipment shipments delivery delivered address city country postal code phone
name first last company team teams member members role roles permission permissions
admin owner viewer editor guest invited joined removed updated created deleted archived
searched viewed clicked opened closed sent received processed validated rejected
scheduled queued expired revoked rotated synced imported exported generated calculated
slow fast new old large small empty full partial duplicate missing invalid unknown
expected unexpected temporary permanent internal external upstream downstream manual
automatic daily weekly monthly yearly today yesterday tomorrow morning evening night
""".split()

KINDS = ["order.created", "order.paid", "order.shipped", "order.refunded",
         "user.login", "user.logout", "user.signup", "user.updated",
         "invoice.sent", "invoice.paid", "job.started", "job.finished", "job.failed",
         "alert.fired", "alert.resolved", "webhook.delivered", "webhook.failed"]
TENANTS = [f"{w}-{n:03d}" for n, w in enumerate(
    random.Random(7).choices(["acme", "globex", "initech", "umbrella", "hooli", "stark",
                              "wayne", "wonka", "tyrell", "cyberdyne"], k=60))]
BATCH = 20_000


def body(rnd, kind, tenant):
    head = (f"{kind} tenant={tenant} request_id={rnd.getrandbits(64):016x} "
            f"user={rnd.randrange(1, 50_000)} took={rnd.randrange(1, 5_000)}ms "
            f"amount={rnd.randrange(0, 1_000_000) / 100:.2f}: ")
    words = rnd.choices(VOCAB, k=110)
    for i in range(0, 110, rnd.randrange(9, 16)):
        words[i] = str(rnd.randrange(0, 100_000))
    text = head + " ".join(words)
    return text[: rnd.randrange(400, 601)]


def rows(rnd, n, t):
    out = []
    for _ in range(n):
        t += datetime.timedelta(milliseconds=rnd.randrange(1, 2_000))
        kind = rnd.choice(KINDS)
        tenant = rnd.choice(TENANTS)
        at = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
        out.append((at, tenant, kind, body(rnd, kind, tenant)))
    return out, t


def open_db(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-65536")
    return db


def insert(db, batch):
    db.execute("BEGIN")
    db.executemany("INSERT INTO events(at, tenant, kind, body) VALUES (?, ?, ?, ?)", batch)
    db.execute("COMMIT")


def size(db):
    return db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]


def finish(db):
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def create(path, mib):
    rnd = random.Random(20240101)
    db = open_db(path)
    db.executescript("""
        CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT,
                           tenant TEXT, plan TEXT, created_at TEXT);
        CREATE TABLE events(id INTEGER PRIMARY KEY, at TEXT NOT NULL, tenant TEXT NOT NULL,
                            kind TEXT NOT NULL, body TEXT NOT NULL);
        CREATE INDEX events_at ON events(at);
    """)
    first = ["ada", "alan", "grace", "linus", "ken", "dennis", "barbara", "edsger", "donald",
             "margaret", "john", "frances", "niklaus", "leslie", "tony", "radia"]
    last = ["lovelace", "turing", "hopper", "torvalds", "thompson", "ritchie", "liskov",
            "dijkstra", "knuth", "hamilton", "mccarthy", "allen", "wirth", "lamport", "hoare"]
    t = datetime.datetime(2023, 1, 1, tzinfo=datetime.timezone.utc)
    users = []
    for i in range(1, 5_001):
        f, l = rnd.choice(first), rnd.choice(last)
        t += datetime.timedelta(seconds=rnd.randrange(60, 6_000))
        users.append((i, f"{f}.{l}.{i}@example.com", f"{f.title()} {l.title()}",
                      rnd.choice(TENANTS), rnd.choice(["free", "pro", "team", "enterprise"]),
                      t.strftime("%Y-%m-%dT%H:%M:%SZ")))
    db.execute("BEGIN")
    db.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)", users)
    db.execute("COMMIT")
    target = mib * 1024 * 1024
    t = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    while size(db) < target:
        # Smaller batches near the end so the size lands close to the target.
        left_rows = max(500, (target - size(db)) // 700)
        batch, t = rows(rnd, min(BATCH, left_rows), t)
        insert(db, batch)
    finish(db)


def update(path):
    db = open_db(path)
    db.execute("BEGIN")
    db.execute("UPDATE events SET kind = upper(kind) WHERE id % 100 = 37")
    db.execute("COMMIT")
    finish(db)


def append(path):
    db = open_db(path)
    count, last_at = db.execute("SELECT count(*), max(at) FROM events").fetchone()
    n = max(1, count // 100)
    rnd = random.Random(count)
    t = datetime.datetime.strptime(last_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    while n > 0:
        batch, t = rows(rnd, min(BATCH, n), t)
        insert(db, batch)
        n -= len(batch)
    finish(db)


if __name__ == "__main__":
    if sys.argv[1] == "create":
        create(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "append":
        append(sys.argv[2])
    elif sys.argv[1] == "update":
        update(sys.argv[2])
    else:
        sys.exit(f"usage: {sys.argv[0]} create PATH MIB | append PATH | update PATH")
