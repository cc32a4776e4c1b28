"""Workloads and measurements for bench/replicate.sh (standard library only).

  commits PATH RATE SECS PROGRESS  commit RATE small transactions a second for SECS seconds
                                   (table lag: n, the commit's time); the newest n is kept in
                                   PROGRESS; prints "commits seconds"
  hour PATH SEED PERCENT TX        one simulated hour: rewrite rows on PERCENT of the
                                   database's pages (one row each, in TX transactions)
  pagediff OLD NEW OUT             append the pages of NEW that differ from OLD to OUT; prints
                                   how many
  newest PATH                      prints the newest n in table lag (0 when none)
"""
import os
import random
import sqlite3
import sys
import time


def connect(path):
    db = sqlite3.connect(path, isolation_level=None, timeout=60)
    db.execute("PRAGMA busy_timeout=60000")
    return db


def commits(path, rate, secs, progress):
    db = connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS lag(n INTEGER PRIMARY KEY, at REAL, pad TEXT)")
    n = db.execute("SELECT coalesce(max(n), 0) FROM lag").fetchone()[0]
    start = time.time()
    pad = "p" * 100
    done = 0
    while True:
        now = time.time()
        if now - start >= secs:
            break
        due = start + done / rate
        if due > now:
            time.sleep(due - now)
        n += 1
        db.execute("INSERT INTO lag VALUES (?, ?, ?)", (n, time.time(), pad))
        done += 1
        with open(progress + ".tmp", "w") as f:
            f.write(f"{n} {time.time():.6f}\n")
        os.replace(progress + ".tmp", progress)
    print(done, f"{time.time() - start:.3f}")


def hour(path, seed, percent, tx):
    db = connect(path)
    rnd = random.Random(seed)
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    first, last = db.execute("SELECT min(id), max(id) FROM events").fetchone()
    # One row per page rewritten: rows are a few hundred bytes, so random rows fall on
    # distinct pages, and a same-length change keeps each on its page.
    ids = rnd.sample(range(first, last + 1), max(1, int(pages * percent / 100)))
    for i in range(tx):
        part = ids[i::tx]
        if not part:
            continue
        db.execute("BEGIN")
        for row in part:
            db.execute("UPDATE events SET kind = CASE WHEN kind = upper(kind) THEN lower(kind) "
                       "ELSE upper(kind) END WHERE id = ?", (row,))
        db.execute("COMMIT")


def pagediff(old, new, out):
    size = 4096
    with open(old, "rb") as f:
        head = f.read(100)
        size = int.from_bytes(head[16:18], "big")
        size = 65536 if size == 1 else size
    changed = 0
    with open(old, "rb") as a, open(new, "rb") as b, open(out, "ab") as o:
        while True:
            x, y = a.read(size), b.read(size)
            if not y:
                break
            if x != y:
                o.write(y)
                changed += 1
    print(changed)


def newest(path):
    db = connect(path)
    try:
        print(db.execute("SELECT coalesce(max(n), 0) FROM lag").fetchone()[0])
    except sqlite3.OperationalError:
        print(0)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "commits":
        commits(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    elif cmd == "hour":
        hour(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "pagediff":
        pagediff(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "newest":
        newest(sys.argv[2])
    else:
        sys.exit(__doc__)
