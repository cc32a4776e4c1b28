#!/usr/bin/env bash
# bench/pitr.sh: physical backups and point-in-time recovery of a PostgreSQL cluster (issue
# #14), lifeboat against the runbook's `pg_basebackup -Ft -X fetch | gzip` and pgBackRest,
# on one throwaway cluster, in one run.
#
# The cluster: a pgbench database (`pgbench -i -s SCALE`, default 100: about 1.5 GB on disk),
# archive_mode on, and an archive_command (a script of this bench) that hands every WAL file
# to `lifeboat wal-push` and then to `pgbackrest archive-push`, so both tools hold the same
# WAL. Both repositories are encrypted: lifeboat's by default (opened with a key file, as a
# database host would), pgBackRest's with `repo1-cipher-type=aes-256-cbc`; pgBackRest with
# `compress-type=zst` and `process-max` = this machine's cores (the issue's settings).
# Phases, each tool after the other:
#   1. full base backup: lifeboat `backup postgres-cluster` (reading the data directory, as
#      it does by default on the database host; then, into a second repository for the
#      record, `--via replication`), `pgbackrest --type=full backup`,
#      the runbook's `pg_basebackup -D - -Ft -X fetch | gzip`: seconds, stored bytes, peak
#      RSS (client side). lifeboat's and pgBackRest's full backups run FULL_ROUNDS times
#      (default 3) in turning order, with lifeboat into a format-1 repository (SHA-256 chunk
#      ids) beside them; each is reported by its median round;
#   2. after `pgbench -t DAY_TX -c 1 -n` (default 5000): a second base backup, lifeboat's and
#      pgBackRest's incremental: seconds and the bytes each repository grew by;
#   3. restore to a time, end to end: the time T and `sum(abalance)` are read in one
#      statement, more transactions run after T, the WAL is archived; then each tool writes a
#      new data directory recovered to T, started on its own port, until it accepts writes
#      (`lifeboat restore --to pgdata:DIR --target-time T --start --port P`; `pgbackrest
#      restore --type=time --target=T --target-action=promote` then `pg_ctl start` and a wait
#      for pg_is_in_recovery() = false); each restored cluster must hold SCALE * 100000
#      accounts and the sum read at T, or the script fails;
#   4. keeping up: the archive_command hands WAL to lifeboat only, pgbench runs at full
#      speed for KEEPUP_SECS (default 30) on 4 connections, and at its end the archive's
#      backlog (WAL files waiting in pg_wal/archive_status) and pg_stat_archiver's
#      failed_count are read, then the time the backlog took to drain.
# Then prints ratios against the issue's targets with PASS/MISS (full base backup <= 0.8x
# pgBackRest's time and <= 0.5x the runbook's; the second base backup stores <= 5% of what
# the first stored; no backlog and no failed push at the end of the keep-up run; restore to
# a time <= 1.0x pgBackRest's) and writes the same as markdown to bench/work/pitr/results.md.
#
# Run from anywhere in the repository:
#   bash bench/pitr.sh                          # scale 100
#   SCALE=10 KEEPUP_SECS=10 FULL_ROUNDS=1 bash bench/pitr.sh  # quick run
# Needs: cargo, PostgreSQL server binaries with pgbench, pgbackrest, gzip, GNU time, python3,
#   runuser when run as root (as root, missing Debian packages are installed with apt-get:
#   postgresql postgresql-contrib pgbackrest gzip time python3 util-linux).
# Everything is written under bench/work/pitr, which is wiped at the start. The page cache
# is warm for every timed command (it cannot be dropped without root).

set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCALE="${SCALE:-100}"
DAY_TX="${DAY_TX:-5000}"
KEEPUP_SECS="${KEEPUP_SECS:-30}"
FULL_ROUNDS="${FULL_ROUNDS:-3}"
for v in SCALE DAY_TX KEEPUP_SECS FULL_ROUNDS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "error: $v must be a positive whole number, got '${!v}'" >&2; exit 2; }
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="$ROOT/bench/work/pitr"
PGDATA="$W/pg/data"
LIFEBOAT="${CARGO_TARGET_DIR:-$ROOT/target}/release/lifeboat"
ACCOUNTS=$((SCALE * 100000))
CORES=$(nproc)

require gzip=gzip python3=python3 /usr/bin/time=time runuser=util-linux pgbackrest=pgbackrest
[[ -n "${PG_BINDIR:-}" ]] || require /usr/lib/postgresql=postgresql pgbench=postgresql-contrib
command -v cargo > /dev/null 2>&1 || die "missing: cargo (Rust's toolchain, from rustup)"
PGBIN="${PG_BINDIR:-$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2> /dev/null | sort -V | tail -n 1)}"
for tool in initdb pg_ctl pgbench psql pg_basebackup; do
    [[ -x "$PGBIN/$tool" ]] || die "missing: $PGBIN/$tool (apt-get install postgresql postgresql-contrib)"
done
AS_ROOT=0
[[ "$(id -u)" == 0 ]] && AS_ROOT=1

# as_pg CMD...: as the postgres user when root (the server, pgBackRest and the archive run
# as the cluster's owner); PG_USER is the same prefix for `timed`, which runs programs.
PG_USER=()
((AS_ROOT)) && PG_USER=(runuser -u postgres --)
as_pg() { "${PG_USER[@]}" "$@"; }

build_release

for dir in "$PGDATA" "$W/restored-lb" "$W/restored-pgbr"; do
    [[ -f "$dir/postmaster.pid" ]] && as_pg "$PGBIN/pg_ctl" -D "$dir" -m immediate -w stop > /dev/null 2>&1 || true
done
say "work folder $W (wiped)"
rm -rf "$W"
mkdir -p "$W/logs" "$W/pg" "$W/pgbr-repo" "$W/pgbr-log" "$W/pgbr-lock" "$W/pgbr-spool"
cp "$LIFEBOAT" "$W/lifeboat"
LB="$W/lifeboat"
SOCK=$(mktemp -d /tmp/lifeboat-pitr-sock.XXXXXX)
if ((AS_ROOT)); then chown -R postgres:postgres "$W" "$SOCK"; fi

PORT=$(free_port)
url() { printf 'postgres://postgres@127.0.0.1:%s/%s' "${2:-$PORT}" "$1"; }
sql() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$(url "$1" "${3:-$PORT}")" -c "$2"; }

# ---------------------------------------------------------------- repositories
printf 'pitr bench password\n' > "$W/lb-password"
if ((AS_ROOT)); then chown postgres:postgres "$W/lb-password"; fi
as_pg "$LB" --repo "$W/lb-repo" --password-file "$W/lb-password" init > "$W/logs/lb-init.out" 2>&1
as_pg "$LB" --repo "$W/lb-repo" --password-file "$W/lb-password" key add --out "$W/lb-key" > /dev/null 2>&1
lb() { as_pg "$LB" --repo "$W/lb-repo" --key-file "$W/lb-key" "$@"; }
# A second repository for the same full base backup read over the replication protocol
# (`--via replication`, the server's pg_basebackup), beside the default read of the files.
as_pg "$LB" --repo "$W/lb-repo-replication" --password-file "$W/lb-password" init > "$W/logs/lb-init-replication.out" 2>&1

cat > "$W/pgbackrest.conf" << EOF
[global]
repo1-path=$W/pgbr-repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=pitr-bench-cipher-pass
repo1-retention-full=4
log-path=$W/pgbr-log
lock-path=$W/pgbr-lock
spool-path=$W/pgbr-spool
log-level-console=warn
compress-type=zst
process-max=$CORES
start-fast=y

[bench]
pg1-path=$PGDATA
pg1-port=$PORT
pg1-socket-path=$SOCK
pg1-user=postgres
EOF
pgbr() { as_pg pgbackrest --config="$W/pgbackrest.conf" --stanza=bench "$@"; }

# The archive_command: lifeboat, then pgBackRest unless $W/archive-lifeboat-only exists (its
# name holds "pgbackrest": pgBackRest's backup checks that archive_command calls it).
cat > "$W/archive-lifeboat-pgbackrest.sh" << EOF
#!/bin/sh
set -e
"$LB" --repo "$W/lb-repo" --key-file "$W/lb-key" wal-push "\$1" --name bench
[ -e "$W/archive-lifeboat-only" ] || pgbackrest --config="$W/pgbackrest.conf" --stanza=bench archive-push "\$1"
EOF
chmod 755 "$W/archive-lifeboat-pgbackrest.sh"
if ((AS_ROOT)); then chown -R postgres:postgres "$W"; fi

# ---------------------------------------------------------------- cluster
stop_all() {
    for dir in "$PGDATA" "$W/restored-lb" "$W/restored-pgbr"; do
        [[ -f "$dir/postmaster.pid" ]] && as_pg "$PGBIN/pg_ctl" -D "$dir" -m fast -w stop > /dev/null 2>&1 || true
    done
    rm -rf "$SOCK"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C > "$W/logs/initdb.out" 2>&1
# Archiving on the command line: restored clusters do not inherit it.
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$W/pg/server.log" -w start -o \
    "-p $PORT -k $SOCK -c listen_addresses=127.0.0.1 -c archive_mode=on -c archive_command='$W/archive-lifeboat-pgbackrest.sh %p' -c max_wal_size=4GB" \
    > "$W/logs/pg_ctl.out" 2>&1 || { cat "$W/logs/pg_ctl.out" "$W/pg/server.log" >&2; die "the cluster did not start"; }
say "cluster on 127.0.0.1:$PORT ($("$PGBIN/postgres" --version))"
pgbr stanza-create > "$W/logs/stanza.out" 2>&1 || { cat "$W/logs/stanza.out" >&2; die "pgbackrest stanza-create failed"; }

"$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres bench
say "pgbench -i -s $SCALE"
"$PGBIN/pgbench" -i -s "$SCALE" -q "$(url bench)" > "$W/logs/pgbench-init.out" 2>&1
CLUSTER_BYTES=$(du -sb "$PGDATA" | cut -f1)
say "cluster: $(mib "$CLUSTER_BYTES") MiB on disk"

# warm_pg: reads the cluster's data files once (pg_wal and its status files change under a
# running server: left out).
# warm_pg: before each timed backup, a checkpoint (so no tool pays for flushing what an
# earlier phase wrote, such as `pgbench -i`'s 1.5 GB before the first backup) and a warm cache.
warm_pg() {
    sql postgres "CHECKPOINT" > /dev/null
    warm "$PGDATA/base" "$PGDATA/global" 2> /dev/null || true
}

# archived_now: switches WAL and waits until the switched segment is archived.
archived_now() {
    local seg
    seg=$(sql postgres "SELECT pg_walfile_name(pg_switch_wal())")
    until [[ "$(sql postgres "SELECT coalesce(last_archived_wal, '') >= '$seg' FROM pg_stat_archiver")" == t ]]; do
        sleep 0.2
    done
}
archived_now
pgbr check > "$W/logs/pgbr-check.out" 2>&1 || { cat "$W/logs/pgbr-check.out" >&2; die "pgbackrest check failed"; }

# ---------------------------------------------------------------- 1. full base backups
# FULL_ROUNDS rounds (default 3), the tools' order turning each round: lifeboat, lifeboat
# into a format-1 repository (SHA-256 chunk ids, `init --chunk-ids sha256`: what the
# repository format costs, on the same binary) and pgBackRest; each is reported by its
# median round. lifeboat's first round goes into the bench's repository, later ones into
# fresh repositories (opened with a key file too), so every one is a full backup.
# new_lb_repo DIR [INIT ARGS...]: a fresh encrypted repository at DIR with a key file DIR.key.
new_lb_repo() {
    local dir=$1
    shift
    rm -rf "$dir" "$dir.key"
    as_pg "$LB" --repo "$dir" --password-file "$W/lb-password" init "$@" > /dev/null 2>&1
    as_pg "$LB" --repo "$dir" --password-file "$W/lb-password" key add --out "$dir.key" > /dev/null 2>&1
}
# median KEY: SECS, CPU and RSS of KEY from the round (KEY_r1..) with the median seconds.
median() {
    local key=$1 r pick all=""
    for ((r = 1; r <= FULL_ROUNDS; r++)); do all+="${SECS[${key}_r$r]} "; done
    pick=$(for ((r = 1; r <= FULL_ROUNDS; r++)); do echo "${SECS[${key}_r$r]} $r"; done |
        sort -n | awk -v m=$(((FULL_ROUNDS + 1) / 2)) 'NR == m { print $2 }')
    SECS[$key]=${SECS[${key}_r$pick]}
    CPU[$key]=${CPU[${key}_r$pick]}
    RSS[$key]=${RSS[${key}_r$pick]}
    say "$key: median ${SECS[$key]}s of rounds ${all% }"
}
full_round() {
    local round=$1 t tool repo key
    local tools=(lb lb_sha256 pgbr)
    for ((t = 0; t < 3; t++)); do
        tool=${tools[$(((t + round - 1) % 3))]}
        # Each lifeboat backup's repository is made before the cache is warmed for it.
        case $tool in
            lb)
                repo="$W/lb-repo" key="$W/lb-key"
                if ((round > 1)); then
                    repo="$W/lb-repo-round" key="$W/lb-repo-round.key"
                    new_lb_repo "$repo"
                fi
                ;;
            lb_sha256)
                repo="$W/lb-repo-sha256" key="$W/lb-repo-sha256.key"
                new_lb_repo "$repo" --chunk-ids sha256
                ;;
        esac
        warm_pg
        if [[ $tool == pgbr ]]; then
            timed "pgbr_full_r$round" "${PG_USER[@]}" pgbackrest --config="$W/pgbackrest.conf" --stanza=bench --type=full backup
            ((round > 1)) || STORED[pgbr_full]=$(stored "$W/pgbr-repo/backup")
        else
            timed "${tool/lb/lb_full}_r$round" "${PG_USER[@]}" "$LB" --repo "$repo" --key-file "$key" backup postgres-cluster "$(url postgres)" --name bench
        fi
    done
}
for ((round = 1; round <= FULL_ROUNDS; round++)); do full_round "$round"; done
rm -rf "$W/lb-repo-round" "$W/lb-repo-round.key" "$W/lb-repo-sha256" "$W/lb-repo-sha256.key"
median lb_full
median lb_full_sha256
median pgbr_full
LB_VIA=$(lb snapshots --name bench --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["metadata"].get("via") or "replication")')
say "lifeboat's base backup read the cluster via $LB_VIA"
warm_pg
timed lb_full_replication "${PG_USER[@]}" "$LB" --repo "$W/lb-repo-replication" --password-file "$W/lb-password" \
    backup postgres-cluster "$(url postgres)" --name bench --via replication
warm_pg
timed gz_full bash -c 'set -o pipefail; "$1" -h 127.0.0.1 -p "$2" -U postgres -D - -Ft -X fetch | gzip > "$3"' \
    _ "$PGBIN/pg_basebackup" "$PORT" "$W/base.tar.gz"
STORED[gz_full]=$(fsize "$W/base.tar.gz")

# ---------------------------------------------------------------- 2. a busy day, again
say "pgbench -t $DAY_TX -c 1 -n"
"$PGBIN/pgbench" -t "$DAY_TX" -c 1 -n "$(url bench)" > "$W/logs/pgbench-day.out" 2>&1
archived_now
warm_pg
timed lb_second "${PG_USER[@]}" "$LB" --repo "$W/lb-repo" --key-file "$W/lb-key" backup postgres-cluster "$(url postgres)" --name bench
LB_SECOND_SNAP=$(lb snapshots --name bench --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[-1]["stored"])')
LB_FIRST_SNAP=$(lb snapshots --name bench --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["stored"])')
# lifeboat's repository also holds the WAL archive: its snapshots' own `stored` compare with
# pgBackRest's backup folder (its archive/ is not counted either).
STORED[lb_full]=$LB_FIRST_SNAP
STORED[lb_second]=$LB_SECOND_SNAP
before=$(stored "$W/pgbr-repo/backup")
warm_pg
timed pgbr_incr "${PG_USER[@]}" pgbackrest --config="$W/pgbackrest.conf" --stanza=bench --type=incr backup
STORED[pgbr_incr]=$(($(stored "$W/pgbr-repo/backup") - before))

# ---------------------------------------------------------------- 3. restore to a time
IFS='|' read -r AT_SUM AT_TIME < <(sql bench "SELECT sum(abalance), clock_timestamp() FROM pgbench_accounts")
say "target: $AT_TIME (sum of balances $AT_SUM); 1000 transactions after it"
sleep 1
"$PGBIN/pgbench" -t 1000 -c 1 -n "$(url bench)" > "$W/logs/pgbench-after.out" 2>&1
archived_now

# check_restored PORT WHAT: the restored cluster holds what the source held at T.
check_restored() {
    local got sum
    got=$(sql bench 'SELECT count(*) FROM pgbench_accounts' "$1")
    sum=$(sql bench 'SELECT sum(abalance) FROM pgbench_accounts' "$1")
    [[ "$got" == "$ACCOUNTS" && "$sum" == "$AT_SUM" ]] ||
        die "$2: $got accounts with balance sum $sum, expected $ACCOUNTS and $AT_SUM"
    say "$2: $got accounts, balance sum $sum as at $AT_TIME"
}

LB_PORT=$(free_port)
warm "$W/lb-repo"
timed lb_restore "${PG_USER[@]}" "$LB" --repo "$W/lb-repo" --key-file "$W/lb-key" restore latest --name bench \
    --to "pgdata:$W/restored-lb" --target-time "$AT_TIME" --start --port "$LB_PORT"
check_restored "$LB_PORT" "lifeboat's restore"
as_pg "$PGBIN/pg_ctl" -D "$W/restored-lb" -m fast -w stop > /dev/null

PGBR_PORT=$(free_port)
# pgBackRest's restore as one program for `timed`: restore, start, wait for promotion.
cat > "$W/pgbr-restore.sh" << EOF
#!/bin/sh
set -e
pgbackrest --config="$W/pgbackrest.conf" --stanza=bench --pg1-path="$W/restored-pgbr" \
    --type=time "--target=$AT_TIME" --target-action=promote restore
"$PGBIN/pg_ctl" -D "$W/restored-pgbr" -l "$W/restored-pgbr.log" -w start \
    -o "-p $PGBR_PORT -c unix_socket_directories='' -c listen_addresses=127.0.0.1"
until [ "\$("$PGBIN/psql" -X -A -t -d "postgres://postgres@127.0.0.1:$PGBR_PORT/postgres" -c 'SELECT pg_is_in_recovery()' 2> /dev/null)" = f ]; do
    sleep 0.1
done
EOF
chmod 755 "$W/pgbr-restore.sh"
mkdir -m 700 "$W/restored-pgbr"
if ((AS_ROOT)); then chown postgres:postgres "$W/restored-pgbr"; fi
warm "$W/pgbr-repo"
timed pgbr_restore "${PG_USER[@]}" "$W/pgbr-restore.sh"
check_restored "$PGBR_PORT" "pgBackRest's restore"
as_pg "$PGBIN/pg_ctl" -D "$W/restored-pgbr" -m fast -w stop > /dev/null

# ---------------------------------------------------------------- 4. keeping up
touch "$W/archive-lifeboat-only"
say "pgbench -T $KEEPUP_SECS -c 4 -j 2 with lifeboat archiving alone"
ready_files() { find "$PGDATA/pg_wal/archive_status" -name '*.ready' | wc -l; }
"$PGBIN/pgbench" -T "$KEEPUP_SECS" -c 4 -j 2 -n "$(url bench)" > "$W/logs/pgbench-keepup.out" 2>&1 &
PGBENCH_PID=$!
# The most files waiting at any sample during the run (every 0.5 s): the one being archived
# is still `.ready` until its push ends, so 1 is a file in flight, more a queue.
MOST_WAITING=0
while kill -0 "$PGBENCH_PID" 2> /dev/null; do
    n=$(ready_files)
    ((n > MOST_WAITING)) && MOST_WAITING=$n
    sleep 0.5
done
wait "$PGBENCH_PID"
BACKLOG=$(ready_files)
FAILED=$(sql postgres 'SELECT failed_count FROM pg_stat_archiver')
ARCHIVED=$(sql postgres 'SELECT archived_count FROM pg_stat_archiver')
TPS=$(awk '/^tps/ { printf "%.0f", $3; exit }' "$W/logs/pgbench-keepup.out")
drain_start=$(date +%s.%N)
while [[ -n "$(find "$PGDATA/pg_wal/archive_status" -name '*.ready' -print -quit)" ]]; do sleep 0.1; done
DRAIN=$(awk -v a="$drain_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
say "keep-up: $TPS tps, backlog $BACKLOG at the end (drained in ${DRAIN}s; at most $MOST_WAITING waiting during the run), failed_count $FAILED, $ARCHIVED archived in all"

# ---------------------------------------------------------------- report
ROWS_T=(
    "lifeboat ($LB_VIA);full base backup;lb_full"
    "lifeboat, format 1 (SHA-256 chunk ids);full base backup;lb_full_sha256"
    "lifeboat (--via replication);full base backup;lb_full_replication"
    "pgBackRest;full backup;pgbr_full"
    "pg_basebackup -Ft -X fetch | gzip;full backup;gz_full"
    "lifeboat;second base backup after $DAY_TX tx;lb_second"
    "pgBackRest;incremental after $DAY_TX tx;pgbr_incr"
    "lifeboat;restore to a time, started;lb_restore"
    "pgBackRest;restore to a time, started;pgbr_restore"
)
RATIOS=(
    "full base backup time, lifeboat / pgBackRest;$(ratio "${SECS[lb_full]}" "${SECS[pgbr_full]}")x;<= 0.8x;$(verdict "${SECS[lb_full]}" "${SECS[pgbr_full]}" '<=' 0.8)"
    "full base backup time, lifeboat format 1 / pgBackRest;$(ratio "${SECS[lb_full_sha256]}" "${SECS[pgbr_full]}")x;info;-"
    "full base backup time, lifeboat --via replication / pgBackRest;$(ratio "${SECS[lb_full_replication]}" "${SECS[pgbr_full]}")x;info;-"
    "full base backup time, lifeboat / runbook;$(ratio "${SECS[lb_full]}" "${SECS[gz_full]}")x;<= 0.5x;$(verdict "${SECS[lb_full]}" "${SECS[gz_full]}" '<=' 0.5)"
    "second base backup stores, of the first;$(pct "$LB_SECOND_SNAP" "$LB_FIRST_SNAP")%;<= 5%;$(verdict "$LB_SECOND_SNAP" "$LB_FIRST_SNAP" '<=' 5 100)"
    "pgBackRest incremental stores, of its full;$(pct "${STORED[pgbr_incr]}" "${STORED[pgbr_full]}")%;info;-"
    "stored, lifeboat full / pgBackRest full;$(ratio "${STORED[lb_full]}" "${STORED[pgbr_full]}")x;info;-"
    "wal-push backlog at the end of ${KEEPUP_SECS}s of pgbench ($TPS tps);$BACKLOG files (drained in ${DRAIN}s, at most $MOST_WAITING waiting during the run);0;$( ((BACKLOG == 0)) && echo PASS || echo MISS)"
    "pg_stat_archiver.failed_count;$FAILED;0;$( ((FAILED == 0)) && echo PASS || echo MISS)"
    "restore to a time, lifeboat / pgBackRest;$(ratio "${SECS[lb_restore]}" "${SECS[pgbr_restore]}")x;<= 1.0x;$(verdict "${SECS[lb_restore]}" "${SECS[pgbr_restore]}" '<=' 1.0)"
)
report "PITR (issue #14)" \
    "pgbench scale $SCALE, cluster $(mib "$CLUSTER_BYTES") MiB; $("$PGBIN/postgres" --version); $(pgbackrest version); $CORES cores; lifeboat $(git -C "$ROOT" rev-parse --short HEAD), base backups read via $LB_VIA" \
    "Stored: what each lifeboat base backup added to the repository (the snapshot's own stored; its WAL archive not counted), pgBackRest's backup folder (the incremental: what it added; its archive/ not counted), the .tar.gz. Both repositories encrypted."
