#!/usr/bin/env bash
# bench/postgres.sh: lifeboat against the runbooks' "pg_dump | gzip" and "pg_dump -Fc" ways,
# on one PostgreSQL database in a throwaway cluster.
#
# What it measures, on the same pgbench database (`pgbench -i -s SCALE`, default 100, about
# 1.5 GB), one tool after the other:
#   1. full backup:    wall seconds, stored bytes (lifeboat's repository files, the .sql.gz,
#                      the custom-format dump), peak RSS;
#   2. light day:      lifeboat only, after `pgbench -t LIGHT_TX -c 1 -n` (default 100):
#                      wall seconds and the additional stored bytes;
#      busy day:       the same after `pgbench -t DAY_TX -c 1 -n` more (default 5000);
#   3. second backup:  lifeboat only, after `pgbench -t RUN_TX/2 -c 2 -n` (RUN_TX transactions
#                      in all, default 80,000: what 30 s of pgbench did on the machine of the
#                      first recorded runs; a fixed count, not a duration, so a slower machine
#                      does not make the change smaller) changed the data: wall seconds and the *additional* stored bytes (repo
#                      growth; also the new snapshot's own `stored` figure);
#   4. restore:        wall seconds and peak RSS of `lifeboat restore latest --create`,
#                      `createdb && gunzip -c | psql` and `createdb && pg_restore`, each into
#                      a new database; every restored database must hold SCALE * 100000
#                      pgbench_accounts rows, or the script fails.
#   5. text table:     a second database with TEXT_ROWS (default 2,000,000) rows of mixed
#                      text (md5 strings, words, timestamps), where gzip has real work:
#                      lifeboat's full backup against pg_dump | gzip (info, no target);
# Then prints ratios against the targets (full backup <= 0.5x the time of pg_dump | gzip,
# stored <= the .gz, second backup stores < 20% of what the first stored) with PASS/MISS,
# plus ratios against pg_dump -Fc (backup time, stored bytes), restore-time ratios, the
# second backup's time and lifeboat's peak RSS marked "info", which have no targets, and
# writes the same results as markdown to bench/work/postgres/results.md.
#   6. physical:       then, unless PHYSICAL=0, the physical phases of issue #14 in the same
#                      run: bench/pitr.sh (base backups and a restore to a time against
#                      pgBackRest and `pg_basebackup | gzip`, at the same SCALE), which
#                      prints its own table and writes bench/work/pitr/results.md.
#
# The cluster: initdb + pg_ctl from the highest /usr/lib/postgresql/*/bin (or PG_BINDIR),
# trust authentication, listening on 127.0.0.1 at a free port, its data, socket and log
# under bench/work/postgres/pg, stopped (pg_ctl stop -m fast) when the script exits. Run as
# root, the server runs as the `postgres` user (runuser), which PostgreSQL requires, and
# that folder is handed to it. Every client (pgbench, pg_dump, psql, lifeboat) connects over
# TCP as the `postgres` superuser. pg_dump, pg_restore, psql and createdb are the cluster's
# own, the same major version lifeboat picks.
#
# Stored bytes of lifeboat's repository are the sum of its files' sizes, i.e. `du -sb`
# without the 4 KiB `du -sb` counts for every folder (lifeboat creates its folders as it
# needs them, which would skew the second backup's growth).
#
# The page cache cannot be dropped without root, so each timed command runs once, warm:
# backups right after reading the database's files (base/OID), restores after reading their
# repository or dump once. Peak RSS is the client side only (for a pipeline, its largest
# process); the server's backends do the same work for every tool and are not counted.
# The runbook dumps are taken before pgbench runs and restored as they are, lifeboat restores
# its second snapshot; pgbench updates rows and appends to pgbench_history, so the restores
# move about the same data (pgbench_accounts' row count does not change).
#
# Run from anywhere in the repository:
#   bash bench/postgres.sh                             # scale 100, about 1.5 GB
#   SCALE=10 RUN_TX=20000 bash bench/postgres.sh     # quick run
# Needs: cargo, python3 (standard library only), PostgreSQL server binaries (initdb, pg_ctl,
#   pgbench, pg_dump, pg_restore, psql, createdb), zstd, gzip, GNU time, and runuser when run as
#   root (as root, missing Debian packages are installed with apt-get: postgresql
#   postgresql-contrib zstd gzip time python3 util-linux)
# Everything is written under bench/work/postgres, which is wiped at the start.

set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCALE="${SCALE:-100}"
RUN_TX="${RUN_TX:-80000}"
LIGHT_TX="${LIGHT_TX:-100}"
DAY_TX="${DAY_TX:-5000}"
TEXT_ROWS="${TEXT_ROWS:-2000000}"
if ! [[ "$SCALE" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: SCALE must be a positive whole number (pgbench scale factor), got '$SCALE'" >&2
    exit 2
fi
if ! [[ "$TEXT_ROWS" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: TEXT_ROWS must be a positive whole number of rows, got '$TEXT_ROWS'" >&2
    exit 2
fi
if ! [[ "$LIGHT_TX" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: LIGHT_TX must be a positive whole number of pgbench transactions, got '$LIGHT_TX'" >&2
    exit 2
fi
if ! [[ "$DAY_TX" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: DAY_TX must be a positive whole number of pgbench transactions, got '$DAY_TX'" >&2
    exit 2
fi
if ! [[ "$RUN_TX" =~ ^[1-9][0-9]*$ ]] || ((RUN_TX < 2)); then
    echo "error: RUN_TX must be a whole number of pgbench transactions, at least 2, got '$RUN_TX'" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="$ROOT/bench/work/postgres"
PGDIR="$W/pg"
PGDATA="$PGDIR/data"
LIFEBOAT="$ROOT/target/release/lifeboat"
ACCOUNTS=$((SCALE * 100000))


# ---------------------------------------------------------------- prerequisites
require zstd=zstd gzip=gzip gunzip=gzip python3=python3 /usr/bin/time=time runuser=util-linux
[[ -n "${PG_BINDIR:-}" ]] || require /usr/lib/postgresql=postgresql pgbench=postgresql-contrib
command -v cargo > /dev/null 2>&1 || die "missing: cargo (Rust's toolchain, from rustup)"
if [[ -n "${PG_BINDIR:-}" ]]; then
    PGBIN="$PG_BINDIR"
else
    PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2> /dev/null | sort -V | tail -n 1)
fi
AS_ROOT=0
[[ "$(id -u)" == 0 ]] && AS_ROOT=1

missing=()
if [[ -z "$PGBIN" ]]; then
    missing+=("PostgreSQL server binaries (no /usr/lib/postgresql/*/bin)")
else
    for tool in initdb pg_ctl pgbench pg_dump pg_restore psql createdb; do
        [[ -x "$PGBIN/$tool" ]] || missing+=("$PGBIN/$tool")
    done
fi
if ((AS_ROOT)); then
    command -v runuser > /dev/null 2>&1 || missing+=("runuser (util-linux)")
    id -u postgres > /dev/null 2>&1 || missing+=("the postgres user (the postgresql package creates it)")
fi
if ((${#missing[@]})); then
    echo "error: missing: $(printf '%s, ' "${missing[@]}" | sed 's/, $//')" >&2
    echo "       install them with: apt-get install postgresql postgresql-contrib gzip time python3 util-linux (and Rust's cargo)" >&2
    exit 1
fi

# as_pg CMD...: runs a server command (initdb, pg_ctl) as the postgres user when root.
as_pg() {
    if ((AS_ROOT)); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# ---------------------------------------------------------------- build
say "building the release binary (cargo build --release -p lifeboat-cli)"
(cd "$ROOT" && cargo build --release -p lifeboat-cli)
[[ -x "$LIFEBOAT" ]] || die "no binary at $LIFEBOAT after the build"

# A cluster left running by an interrupted run would lose its folder under it: stop it.
if [[ -f "$PGDATA/postmaster.pid" ]]; then
    say "stopping a cluster left running in $PGDATA"
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop > /dev/null 2>&1 || true
fi

say "work folder $W (wiped)"
rm -rf "$W"
mkdir -p "$W/logs" "$PGDIR"

# ---------------------------------------------------------------- helpers




# url DB: the superuser's URL of database DB (trust authentication, no password).
url() { printf 'postgres://postgres@127.0.0.1:%s/%s' "$PORT" "$1"; }

# sql DB SQL: runs SQL with psql, prints its unaligned, tuples-only output.
sql() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$(url "$1")" -c "$2"; }

# lb_last_stored: `stored` of the newest snapshot (last element of snapshots --json).
lb_last_stored() {
    "$LIFEBOAT" --repo "$W/lb-repo" snapshots --json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)[-1]["stored"])'
}

# warm_db: reads the bench database's files (base/OID) once.
warm_db() { warm "$PGDATA/base/$(sql postgres "SELECT oid FROM pg_database WHERE datname = 'bench'")"; }

# check_restored DB: pgbench_accounts must hold SCALE * 100000 rows.
check_restored() {
    local db=$1 got
    got=$(sql "$db" 'SELECT count(*) FROM pgbench_accounts') || die "could not count pgbench_accounts in $db"
    [[ "$got" == "$ACCOUNTS" ]] || die "$db holds $got pgbench_accounts rows, expected $ACCOUNTS"
    say "$db: $got pgbench_accounts rows, as expected"
}

# ---------------------------------------------------------------- cluster
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if ((AS_ROOT)); then
    chown -R postgres:postgres "$PGDIR"
    runuser -u postgres -- test -w "$PGDIR" ||
        die "the postgres user cannot write to $PGDIR (a parent folder is not searchable by it?)"
fi
# The server's socket path must fit in 107 bytes; a deep checkout gets a folder under /tmp.
SOCKDIR="$PGDIR"
if ((${#SOCKDIR} + 20 > 100)); then
    SOCKDIR=$(mktemp -d /tmp/lifeboat-bench-pg.XXXXXX)
    ((AS_ROOT)) && chown postgres:postgres "$SOCKDIR"
fi

PG_STARTED=0
stop_cluster() {
    if ((PG_STARTED)); then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop > /dev/null 2>&1 ||
            echo "warning: could not stop the cluster in $PGDATA" >&2
    fi
    if [[ "$SOCKDIR" != "$PGDIR" ]]; then rm -rf "$SOCKDIR"; fi
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM

say "initdb in $PGDATA ($("$PGBIN/postgres" --version))"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth-local=trust --auth-host=trust -E UTF8 --locale=C \
    > "$W/logs/initdb.out" 2>&1 || {
    cat "$W/logs/initdb.out" >&2
    die "initdb failed"
}
say "starting the cluster on 127.0.0.1:$PORT"
PG_STARTED=1
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDIR/server.log" \
    -o "-p $PORT -k $SOCKDIR -c listen_addresses=127.0.0.1" -w start > "$W/logs/pg_ctl.out" 2>&1 || {
    cat "$W/logs/pg_ctl.out" "$PGDIR/server.log" >&2
    die "the PostgreSQL server did not start"
}
URL=$(url bench)

# createdb_as DB: creates database DB.
createdb_as() { "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$1"; }

# ---------------------------------------------------------------- database
say "pgbench -i -s $SCALE into $URL"
gen_start=$(date +%s)
createdb_as bench
"$PGBIN/pgbench" -i -s "$SCALE" -q "$URL" > "$W/logs/pgbench-init.out" 2>&1 || {
    tail -n 20 "$W/logs/pgbench-init.out" >&2
    die "pgbench -i failed"
}
DB_SIZE=$(sql postgres "SELECT pg_database_size('bench')")
say "database: $(mib "$DB_SIZE") MiB, $ACCOUNTS accounts, generated in $(($(date +%s) - gen_start))s"

# ---------------------------------------------------------------- full backups
say "lifeboat: init and full backup"
"$LIFEBOAT" --repo "$W/lb-repo" init --no-encryption > "$W/logs/lifeboat-init.out" 2>&1 || {
    cat "$W/logs/lifeboat-init.out" >&2
    die "lifeboat init failed"
}
warm_db
timed lb_full "$LIFEBOAT" --repo "$W/lb-repo" backup postgres "$URL"
STORED[lb_full]=$(stored "$W/lb-repo")
LB_SNAP_FULL=$(lb_last_stored)

say "runbook: pg_dump | gzip"
warm_db
timed gz_full bash -c 'set -o pipefail; "$1" -d "$2" | gzip > "$3"' _ "$PGBIN/pg_dump" "$URL" "$W/dump.sql.gz"
STORED[gz_full]=$(fsize "$W/dump.sql.gz")

say "runbook: pg_dump -Fc"
warm_db
timed fc_full "$PGBIN/pg_dump" -Fc -d "$URL" -f "$W/dump.custom"
STORED[fc_full]=$(fsize "$W/dump.custom")

# ---------------------------------------------------------------- a light day, a busy day
# after_transactions KEY TX WHAT: pgbench -t TX on one connection, then a timed lifeboat
# backup whose repository growth is STORED[KEY].
after_transactions() {
    local key=$1 tx=$2 what=$3 before
    say "pgbench -t $tx -c 1 -n ($what)"
    "$PGBIN/pgbench" -t "$tx" -c 1 -n "$URL" > "$W/logs/pgbench-$key.out" 2>&1 || {
        tail -n 20 "$W/logs/pgbench-$key.out" >&2
        die "pgbench -t failed"
    }
    before=$(stored "$W/lb-repo")
    warm_db
    timed "$key" "$LIFEBOAT" --repo "$W/lb-repo" backup postgres "$URL"
    STORED[$key]=$(($(stored "$W/lb-repo") - before))
}
after_transactions lb_light "$LIGHT_TX" "a light day: a few scattered updates"
after_transactions lb_day "$DAY_TX" "a busy day: updates all over the table"

# ---------------------------------------------------------------- pgbench, second backup
say "pgbench -t $((RUN_TX / 2)) -c 2 -n (changing the data: $RUN_TX transactions)"
"$PGBIN/pgbench" -t "$((RUN_TX / 2))" -c 2 -n "$URL" > "$W/logs/pgbench-run.out" 2>&1 || {
    tail -n 20 "$W/logs/pgbench-run.out" >&2
    die "pgbench -t failed"
}
PGBENCH_TX=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$W/logs/pgbench-run.out")
PGBENCH_TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$W/logs/pgbench-run.out" | tail -n 1)
DB_SIZE2=$(sql postgres "SELECT pg_database_size('bench')")
say "database: $(mib "$DB_SIZE2") MiB after ${PGBENCH_TX:-?} transactions (${PGBENCH_TPS:-?} tps)"

before=$(stored "$W/lb-repo")
(cd "$W/lb-repo" && find . -type f -printf '%P\n') > "$W/files-before-second"
warm_db
timed lb_second "$LIFEBOAT" --repo "$W/lb-repo" backup postgres "$URL"
STORED[lb_second]=$(($(stored "$W/lb-repo") - before))
LB_SNAP_SECOND=$(lb_last_stored)
# What the second backup added, by kind (bytes): manifests, index files, pack trailers,
# delta blobs, whole blobs.
GROWTH=$(python3 "$ROOT/bench/growth.py" "$W/lb-repo" "$W/files-before-second")
say "second backup added: $GROWTH"

# ---------------------------------------------------------------- restores
say "restores"
warm "$W/lb-repo"
timed lb_restore "$LIFEBOAT" --repo "$W/lb-repo" restore latest --create --to "$(url lb_restored)"
check_restored lb_restored

warm "$W/dump.sql.gz"
timed gz_restore bash -c 'set -o pipefail; "$1" -h 127.0.0.1 -p "$2" -U postgres gz_restored &&
    gunzip -c "$3" | "$4" -X -q -v ON_ERROR_STOP=1 -d "$5" > /dev/null' \
    _ "$PGBIN/createdb" "$PORT" "$W/dump.sql.gz" "$PGBIN/psql" "$(url gz_restored)"
check_restored gz_restored

warm "$W/dump.custom"
timed fc_restore bash -c '"$1" -h 127.0.0.1 -p "$2" -U postgres fc_restored && "$3" -d "$4" "$5"' \
    _ "$PGBIN/createdb" "$PORT" "$PGBIN/pg_restore" "$(url fc_restored)" "$W/dump.custom"
check_restored fc_restored

# ---------------------------------------------------------------- text data
# pgbench's rows are mostly blanks, which gzip compresses almost for free. Real tables hold
# text that costs gzip real work: the same comparison on such a table.
say "text database: $TEXT_ROWS rows of mixed text"
createdb_as notes
sql notes "CREATE TABLE note (id bigint PRIMARY KEY, author text, body text, created timestamptz);
    INSERT INTO note SELECT i, 'user' || (i % 5000), concat_ws(' ', md5(i::text), 'order', i % 977,
        'shipped to', md5((i * 7)::text), 'status', (ARRAY['new','paid','sent','returned'])[1 + i % 4]),
        timestamptz '2026-01-01' + i * interval '1 second' FROM generate_series(1, $TEXT_ROWS) i" > /dev/null
TEXT_SIZE=$(sql postgres "SELECT pg_database_size('notes')")
say "text database: $(mib "$TEXT_SIZE") MiB"
TEXT_URL=$(url notes)
warm "$PGDATA/base/$(sql postgres "SELECT oid FROM pg_database WHERE datname = 'notes'")"
"$LIFEBOAT" --repo "$W/lb-text-repo" init --no-encryption > /dev/null || die "lifeboat init failed"
timed lb_text "$LIFEBOAT" --repo "$W/lb-text-repo" backup postgres "$TEXT_URL"
STORED[lb_text]=$(stored "$W/lb-text-repo")
timed gz_text bash -c 'set -o pipefail; "$1" -d "$2" | gzip > "$3"' _ "$PGBIN/pg_dump" "$TEXT_URL" "$W/notes.sql.gz"
STORED[gz_text]=$(fsize "$W/notes.sql.gz")

# ---------------------------------------------------------------- report

LB_RSS_MAX=0
for key in lb_full lb_light lb_day lb_second lb_restore lb_text; do
    if ((RSS[$key] > LB_RSS_MAX)); then LB_RSS_MAX=${RSS[$key]}; fi
done

R_TIME=$(ratio "${SECS[lb_full]}" "${SECS[gz_full]}")
R_STORED=$(ratio "${STORED[lb_full]}" "${STORED[gz_full]}" 3)
P_SECOND_STORED=$(pct "${STORED[lb_second]}" "${STORED[lb_full]}")
P_SECOND_SNAP=$(pct "$LB_SNAP_SECOND" "${STORED[lb_full]}")
P_SECOND_TIME=$(pct "${SECS[lb_second]}" "${SECS[lb_full]}")
R_FC_TIME=$(ratio "${SECS[lb_full]}" "${SECS[fc_full]}")
R_FC_STORED=$(ratio "${STORED[lb_full]}" "${STORED[fc_full]}" 3)
R_GZ_RESTORE=$(ratio "${SECS[lb_restore]}" "${SECS[gz_restore]}")
R_FC_RESTORE=$(ratio "${SECS[lb_restore]}" "${SECS[fc_restore]}")
RSS_MAX_MIB=$(kib2mib "$LB_RSS_MAX")

SECOND="second backup (pgbench $RUN_TX tx)"
# Fields are separated by ';' (the tool names hold '|').
ROWS_T=(
    "lifeboat;full backup;lb_full"
    "runbook (pg_dump | gzip);full backup;gz_full"
    "pg_dump -Fc;full backup;fc_full"
    "lifeboat;backup after $LIGHT_TX pgbench transactions;lb_light"
    "lifeboat;backup after $DAY_TX more pgbench transactions;lb_day"
    "lifeboat;$SECOND;lb_second"
    "lifeboat;restore (--create);lb_restore"
    "runbook (pg_dump | gzip);restore (createdb, gunzip | psql);gz_restore"
    "pg_dump -Fc;restore (createdb, pg_restore);fc_restore"
    "lifeboat;full backup, text table;lb_text"
    "runbook (pg_dump | gzip);full backup, text table;gz_text"
)
RATIOS=(
    "full backup time, lifeboat / pg_dump | gzip;${R_TIME}x;<= 0.5x;$(verdict "${SECS[lb_full]}" "${SECS[gz_full]}" "<=" 0.5)"
    "stored after full backup, lifeboat / pg_dump | gzip;${R_STORED}x;<= 1.0x;$(verdict "${STORED[lb_full]}" "${STORED[gz_full]}" "<=" 1)"
    "second backup stores, % of first (repo growth);${P_SECOND_STORED}%;< 20%;$(verdict "${STORED[lb_second]}" "${STORED[lb_full]}" "<" 20 100)"
    "backup after $LIGHT_TX pgbench transactions stores, % of first;$(pct "${STORED[lb_light]}" "${STORED[lb_full]}")%;-;info"
    "backup after $DAY_TX more pgbench transactions stores, % of first;$(pct "${STORED[lb_day]}" "${STORED[lb_full]}")%;-;info"
    "text table: full backup time, lifeboat / pg_dump | gzip;$(ratio "${SECS[lb_text]}" "${SECS[gz_text]}")x;-;info"
    "text table: stored, lifeboat / pg_dump | gzip;$(ratio "${STORED[lb_text]}" "${STORED[gz_text]}" 3)x;-;info"
    "full backup time, lifeboat / pg_dump -Fc;${R_FC_TIME}x;-;info"
    "stored after full backup, lifeboat / pg_dump -Fc;${R_FC_STORED}x;-;info"
    "second backup time, % of lifeboat full backup;${P_SECOND_TIME}%;-;info"
    "restore time, lifeboat / gunzip | psql;${R_GZ_RESTORE}x;-;info"
    "restore time, lifeboat / pg_restore;${R_FC_RESTORE}x;-;info"
    "lifeboat peak RSS, max over its runs;${RSS_MAX_MIB} MiB;-;info"
)

LB_VERSION=$("$LIFEBOAT" --version 2> /dev/null || echo lifeboat)
GIT_REV=$(git -C "$ROOT" describe --always --dirty 2> /dev/null || echo unknown)
SETUP="pgbench scale $SCALE, database $(mib "$DB_SIZE") MiB ($(mib "$DB_SIZE2") MiB after pgbench -t $((RUN_TX / 2)) -c 2: ${PGBENCH_TX:-?} transactions); $(nproc) cores; $LB_VERSION ($GIT_REV); $("$PGBIN/postgres" --version); $(gzip --version | head -n 1)"
NOTES="Stored = repository size (sum of file sizes; growth for the second backup) for lifeboat, size of the .sql.gz / custom-format dump for the runbooks. Lifeboat's own \`stored\`: $(mib "$LB_SNAP_FULL") MiB (full), $(mib "$LB_SNAP_SECOND") MiB = ${P_SECOND_SNAP}% of the first backup's repository (second). The runbook restores bring back the dumps taken before pgbench ran, lifeboat's the second snapshot. What the second backup added, in bytes: $GROWTH."


report "PostgreSQL benchmark" "$SETUP" "$NOTES"

say "markdown written to $W/results.md"

if [[ "${PHYSICAL:-1}" != 0 ]]; then
    say "physical phases (bench/pitr.sh, SCALE=$SCALE)"
    SCALE="$SCALE" bash "$ROOT/bench/pitr.sh"
fi
