#!/usr/bin/env bash
# Continuous SQLite replication, side by side in one run on the same data: lifeboat
# (`replicate sqlite`, into an encrypted repository on S3), Litestream (its Linux binary
# from the npm package @flydotio/litestream-linux-x64, into a bucket of the same server)
# and the nightly way (`sqlite3 .backup` piped to gzip). The server is s3s-fs on 127.0.0.1.
#
# 1. Lag: a writer commits RATE small transactions a second for LAG_SECS seconds. lifeboat's
#    lag is exact, from the store: each segment's entry time (s3s-fs's file) minus the commit
#    time of the oldest transaction in it (the writer's own clock, in the row). For both tools,
#    PROBES probes: note the writer's newest commit, then restore the newest state over and
#    over until it holds that commit (an upper bound: it includes the restores' own time).
# 2. Stored bytes for a day: a DAY_MIB database with 1% of its pages rewritten each simulated
#    hour (HOURS hours, HOUR_SECS seconds each, TX transactions per hour), replicated with one
#    base snapshot in the day (as --snapshot-every 24h gives). The reference is the changed
#    pages compressed: each hour's changed pages (a page-by-page diff of `.backup` copies
#    taken between hours) through zstd -3.
# 3. Restore to a point: a SIZE_MIB database replicated, then updated for POINT_SECS seconds
#    at POINT_RATE commits a second; the restore to a time in the middle of that, against a
#    plain restore of the newest snapshot (the replica's base), both from S3; Litestream's
#    restore to the same time beside them.
# 4. Levels: a writer commits LEVELS_RATE transactions a second for LEVELS_SECS seconds with
#    compaction's spans scaled down (a minute to 2 s, an hour to 10 s, every commit kept 5 s,
#    every "minute" 15 s); the segments a restore of the newest point reads, against the
#    segments shipped.
# The day (2) scales compaction as it scales time: spans HOUR_SECS/60 and HOUR_SECS, every
# commit kept one simulated hour and every "minute" the whole day, as the defaults do.
#
# Usage: bench/replicate.sh    (RATE=500 LAG_SECS=30 PROBES=5 DAY_MIB=200 HOURS=24
#                               HOUR_SECS=3 TX=32 SIZE_MIB=500 POINT_RATE=200 POINT_SECS=20
#                               LEVELS_RATE=100 LEVELS_SECS=60)
# Release builds: CARGO_TARGET_DIR=/work/targets/release-main bash bench/replicate.sh
# Needs: cargo, s3s-fs (cargo install s3s-fs, or S3S_FS=PATH), npm (for Litestream; or
#   LITESTREAM=PATH), python3, sqlite3, zstd, gzip, GNU time (Debian packages installed as
#   root when missing). Everything is written under bench/work/replicate, wiped at the start.

set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RATE="${RATE:-500}"
LAG_SECS="${LAG_SECS:-30}"
PROBES="${PROBES:-5}"
DAY_MIB="${DAY_MIB:-200}"
HOURS="${HOURS:-24}"
HOUR_SECS="${HOUR_SECS:-3}"
LEVELS_RATE="${LEVELS_RATE:-100}"
LEVELS_SECS="${LEVELS_SECS:-60}"
TX="${TX:-32}"
SIZE_MIB="${SIZE_MIB:-500}"
POINT_RATE="${POINT_RATE:-200}"
POINT_SECS="${POINT_SECS:-20}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="$ROOT/bench/work/replicate"
S3ROOT="$W/s3root"
GEN="$ROOT/bench/gen_sqlite.py"
LOAD="$ROOT/bench/replicate_load.py"
LIFEBOAT="${CARGO_TARGET_DIR:-$ROOT/target}/release/lifeboat"
S3S_FS="${S3S_FS:-$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")}"

require sqlite3=sqlite3 python3=python3 zstd=zstd gzip=gzip /usr/bin/time=time
command -v cargo > /dev/null 2>&1 || die "missing: cargo (Rust's toolchain, from rustup)"
[[ -x "$S3S_FS" ]] || die "missing: s3s-fs (cargo install s3s-fs, or S3S_FS=PATH)"

build_release
say "work folder $W (wiped)"
rm -rf "$W"
mkdir -p "$W/logs" "$S3ROOT"

if [[ -z "${LITESTREAM:-}" ]]; then
    command -v npm > /dev/null 2>&1 || die "missing: npm (for Litestream's binary; or LITESTREAM=PATH)"
    say "fetching Litestream from npm (@flydotio/litestream-linux-x64)"
    (cd "$W" && npm install --silent --no-save --prefix "$W/npm" @flydotio/litestream-linux-x64 > "$W/logs/npm.log" 2>&1) ||
        { cat "$W/logs/npm.log" >&2; die "npm install @flydotio/litestream-linux-x64 failed"; }
    LITESTREAM="$W/npm/node_modules/@flydotio/litestream-linux-x64/litestream"
fi
[[ -x "$LITESTREAM" ]] || die "no Litestream binary at $LITESTREAM"
LS_VERSION=$("$LITESTREAM" version 2> /dev/null || echo '?')

# ---------------------------------------------------------------- the S3 server
S3_PID="" BG_PIDS=()
stop_all() {
    local pid
    for pid in "${BG_PIDS[@]}" "$S3_PID"; do
        [[ -n "$pid" ]] || continue
        kill "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
    done
}
trap stop_all EXIT
trap 'exit 130' INT TERM
start_s3s_fs "$S3ROOT" "$W/logs/s3s-fs.log"
unset LIFEBOAT_PASSWORD LIFEBOAT_PASSWORD_COMMAND LIFEBOAT_KEY_FILE LIFEBOAT_REPO LIFEBOAT_CONFIG
(umask 077 && python3 -c 'import secrets; print("lifeboat-bench-" + secrets.token_hex(16))' > "$W/password")
LB=(env "AWS_ENDPOINT=http://127.0.0.1:$S3_PORT" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
    "LIFEBOAT_PASSWORD_FILE=$W/password" LIFEBOAT_LOG=warn "$LIFEBOAT")

# lb_repo BUCKET: an encrypted lifeboat repository in a fresh bucket.
lb_repo() {
    mkdir -p "$S3ROOT/$1"
    "${LB[@]}" --repo "s3://$1/lb" init > /dev/null
}
# ls_config DB BUCKET: a Litestream configuration replicating DB into BUCKET every second.
ls_config() {
    mkdir -p "$S3ROOT/$2"
    cat > "$W/$2.yml" << YML
dbs:
  - path: $1
    replicas:
      - type: s3
        bucket: $2
        path: ls
        endpoint: http://127.0.0.1:$S3_PORT
        region: us-east-1
        force-path-style: true
        skip-verify: true
        sync-interval: 1s
        access-key-id: $AWS_ACCESS_KEY_ID
        secret-access-key: $AWS_SECRET_ACCESS_KEY
YML
}
# wal_db PATH: a fresh database in WAL mode.
wal_db() { python3 -c 'import sqlite3, sys; d = sqlite3.connect(sys.argv[1]); d.execute("PRAGMA journal_mode=WAL"); d.execute("CREATE TABLE lag(n INTEGER PRIMARY KEY, at REAL, pad TEXT)"); d.commit()' "$1"; }
newest() { python3 "$LOAD" newest "$1"; }
now() { python3 -c 'import time; print(f"{time.time():.6f}")'; }
bytes_under() { stored "$1"; }

# probe KIND URL-ish: one lag probe; prints seconds until a restore holds the writer's
# newest commit as of the probe's start.
probe() {
    local kind=$1 bucket=$2 db=$3 target t0 n0 got
    read -r n0 t0 < "$W/progress"
    for ((i = 0; i < 100; i++)); do
        target="$W/probe.db"
        rm -f "$target" "$target-wal" "$target-shm"
        if [[ $kind == lifeboat ]]; then
            "${LB[@]}" --repo "s3://$bucket/lb" restore latest --name lagdb --to "$target" > /dev/null 2>&1 || true
        else
            "$LITESTREAM" restore -config "$W/$bucket.yml" -o "$target" "$db" > /dev/null 2>&1 || true
        fi
        got=$( [[ -f "$target" ]] && newest "$target" || echo 0)
        if ((got >= n0)); then
            python3 -c "import time; print(f'{time.time() - $t0:.2f}')"
            return
        fi
    done
    echo "n/a"
}

# wait_first_copy BUCKET MIB: until BUCKET holds a tenth of MIB (the first full copy of a
# MIB database, compressed, is on its way), at most 10 minutes.
wait_first_copy() {
    for _ in $(seq 1200); do
        [[ $(bytes_under "$S3ROOT/$1") -gt $(($2 * 1024 * 1024 / 10)) ]] && return 0
        sleep 0.5
    done
    die "no first copy in bucket $1 after 10 minutes"
}

# short TOOL: the suffix of the tool's buckets (lb, ls).
short() { [[ $1 == lifeboat ]] && echo lb || echo ls; }

# ================================================================ 1. lag
say "1. lag at $RATE commits/s for $LAG_SECS s"
declare -A LAG_MAX LAG_P50 PROBE_MED RATE_GOT
for tool in lifeboat litestream; do
    db="$W/lag-$tool/lagdb.db"
    mkdir -p "$(dirname "$db")"
    wal_db "$db"
    if [[ $tool == lifeboat ]]; then
        lb_repo lag-lb
        "${LB[@]}" --repo s3://lag-lb/lb replicate sqlite "$db" --json > "$W/logs/lag-lb.json" 2> "$W/logs/lag-lb.err" &
    else
        ls_config "$db" lag-ls
        "$LITESTREAM" replicate -config "$W/lag-ls.yml" > "$W/logs/lag-ls.log" 2>&1 &
    fi
    REP=$!
    BG_PIDS+=("$REP")
    sleep 3
    echo "0 $(now)" > "$W/progress"
    python3 "$LOAD" commits "$db" "$RATE" "$LAG_SECS" "$W/progress" > "$W/logs/lag-$tool-writer.out" &
    WRITER=$!
    probes=()
    sleep 3
    for ((p = 0; p < PROBES; p++)); do
        probes+=("$(probe "$tool" "lag-$(short "$tool")" "$db")")
        sleep $((LAG_SECS / (PROBES + 1) > 3 ? LAG_SECS / (PROBES + 1) - 2 : 1))
        kill -0 "$WRITER" 2> /dev/null || break
    done
    wait "$WRITER"
    read -r done_n took < "$W/logs/lag-$tool-writer.out"
    RATE_GOT[$tool]=$(ratio "$done_n" "$took" 0)
    sleep 3
    kill -INT "$REP"
    wait "$REP" || true
    PROBE_MED[$tool]=$(printf '%s\n' "${probes[@]}" | { grep -v n/a || true; } | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "n/a" }')
    say "$tool: ${RATE_GOT[$tool]} commits/s achieved; probes (s): ${probes[*]}"
done
# lifeboat's exact lag, segment by segment: the entry's time in the store minus the commit
# time of its first transaction (txid = n + 1: the base snapshot is transaction 1).
python3 - "$S3ROOT/lag-lb" "$W/lag-lifeboat/lagdb.db" > "$W/lag-segments.txt" << 'PY'
import os, sqlite3, sys
root, db = sys.argv[1], sys.argv[2]
at = dict(sqlite3.connect(db).execute("SELECT n, at FROM lag"))
lags = []
for dirpath, _, files in os.walk(root):
    for f in files:
        if f.startswith("L0-") and not f.endswith(".json"):
            first = int(f.split("-")[1], 16)
            n = first - 1
            if n in at:
                lags.append(os.stat(os.path.join(dirpath, f)).st_mtime - at[n])
lags.sort()
if lags:
    print(f"{lags[len(lags) // 2]:.3f} {lags[int(len(lags) * 0.99)]:.3f} {lags[-1]:.3f} {len(lags)}")
else:
    print("n/a n/a n/a 0")
PY
read -r LB_P50 LB_P99 LB_MAX LB_SEGS < "$W/lag-segments.txt"
say "lifeboat segment lag: p50 ${LB_P50}s p99 ${LB_P99}s max ${LB_MAX}s over $LB_SEGS segments"

# ================================================================ 2. a day's stored bytes
say "2. stored bytes for a day: $DAY_MIB MiB, 1% of pages per hour, $HOURS hours of ${HOUR_SECS}s"
python3 "$GEN" create "$W/day-base.db" "$DAY_MIB"
DAY_PAGES=$(sqlite3 "$W/day-base.db" 'PRAGMA page_count')
: > "$W/changed-pages.bin"
declare -A DAY_STORED DAY_BASE
for tool in lifeboat litestream; do
    db="$W/day-$tool/daydb.db"
    mkdir -p "$(dirname "$db")"
    cp "$W/day-base.db" "$db"
    day_len=$((HOURS * HOUR_SECS))
    if [[ $tool == lifeboat ]]; then
        lb_repo day-lb
        # Compaction scaled as the day is: a minute is HOUR_SECS/60, an hour HOUR_SECS;
        # every commit kept for an hour, every minute for the day.
        "${LB[@]}" --repo s3://day-lb/lb replicate sqlite "$db" --snapshot-every "$((day_len - HOUR_SECS))s" \
            --spans "$((HOUR_SECS * 1000 / 60))ms,${HOUR_SECS}s" --keep-commits "${HOUR_SECS}s" --keep-minutes "${day_len}s" \
            --json > "$W/logs/day-lb.json" 2> "$W/logs/day-lb.err" &
    else
        ls_config "$db" day-ls
        "$LITESTREAM" replicate -config "$W/day-ls.yml" > "$W/logs/day-ls.log" 2>&1 &
    fi
    REP=$!
    BG_PIDS+=("$REP")
    # The first base (or Litestream's first snapshot) is not the day's cost.
    wait_first_copy "day-$(short "$tool")" "$DAY_MIB"
    sleep 3
    DAY_BASE[$tool]=$(bytes_under "$S3ROOT/day-$(short "$tool")")
    [[ $tool == lifeboat ]] && sqlite3 "$db" ".backup $W/hour-prev.db"
    for ((h = 1; h <= HOURS; h++)); do
        python3 "$LOAD" hour "$db" "$h" 1 "$TX"
        if [[ $tool == lifeboat ]]; then
            sqlite3 "$db" ".backup $W/hour-now.db"
            python3 "$LOAD" pagediff "$W/hour-prev.db" "$W/hour-now.db" "$W/changed-pages.bin" >> "$W/logs/pagediff.txt"
            mv "$W/hour-now.db" "$W/hour-prev.db"
        fi
        sleep "$HOUR_SECS"
    done
    sleep 3
    kill -INT "$REP"
    wait "$REP" || true
    DAY_STORED[$tool]=$(($(bytes_under "$S3ROOT/day-$(short "$tool")") - DAY_BASE[$tool]))
    say "$tool: $(mib "${DAY_STORED[$tool]}") MiB stored for the day"
done
CHANGED_PAGES=$(awk '{ s += $1 } END { print s + 0 }' "$W/logs/pagediff.txt")
CHANGED_ZST=$(zstd -3 -q -c "$W/changed-pages.bin" | wc -c)
NIGHTLY=$(sqlite3 "$W/day-base.db" ".backup $W/nightly.db" && gzip -c "$W/nightly.db" | wc -c)
rm -f "$W/nightly.db" "$W/hour-prev.db"
say "reference: $CHANGED_PAGES changed pages of $DAY_PAGES, $(mib "$CHANGED_ZST") MiB with zstd -3; the nightly .backup | gzip: $(mib "$NIGHTLY") MiB"

# ================================================================ 3. restore to a point
say "3. restore to a point of a $SIZE_MIB MiB database"
python3 "$GEN" create "$W/big-base.db" "$SIZE_MIB"
declare -A POINT_TIME
for tool in lifeboat litestream; do
    db="$W/big-$tool/bigdb.db"
    mkdir -p "$(dirname "$db")"
    cp "$W/big-base.db" "$db"
    if [[ $tool == lifeboat ]]; then
        lb_repo big-lb
        "${LB[@]}" --repo s3://big-lb/lb replicate sqlite "$db" --json > "$W/logs/big-lb.json" 2> "$W/logs/big-lb.err" &
    else
        ls_config "$db" big-ls
        "$LITESTREAM" replicate -config "$W/big-ls.yml" > "$W/logs/big-ls.log" 2>&1 &
    fi
    REP=$!
    BG_PIDS+=("$REP")
    wait_first_copy "big-$(short "$tool")" "$SIZE_MIB"
    sleep 5
    python3 "$LOAD" commits "$db" "$POINT_RATE" "$POINT_SECS" "$W/progress-big" > /dev/null &
    WRITER=$!
    sleep $((POINT_SECS / 2))
    POINT_TIME[$tool]=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
    wait "$WRITER"
    sleep 3
    kill -INT "$REP"
    wait "$REP" || true
done
sync
rm -f "$W"/big-*.db-restored*
timed lb-point "${LB[@]}" --repo s3://big-lb/lb restore latest --name bigdb --at "${POINT_TIME[lifeboat]}" --to "$W/lb-point.db"
BASE_ID=$("${LB[@]}" --repo s3://big-lb/lb snapshots --name bigdb --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[-1]["id"])')
timed lb-plain "${LB[@]}" --repo s3://big-lb/lb restore "$BASE_ID" --to "$W/lb-plain.db"
timed ls-point "$LITESTREAM" restore -config "$W/big-ls.yml" -timestamp "${POINT_TIME[litestream]}" -o "$W/ls-point.db" "$W/big-litestream/bigdb.db"
timed ls-latest "$LITESTREAM" restore -config "$W/big-ls.yml" -o "$W/ls-latest.db" "$W/big-litestream/bigdb.db"
LB_POINT_N=$(newest "$W/lb-point.db")
LS_POINT_N=$(newest "$W/ls-point.db")

# ================================================================ 4. levels
say "4. levels: $LEVELS_RATE commits/s for $LEVELS_SECS s, a minute scaled to 2 s and an hour to 10 s"
db="$W/lvl/lvldb.db"
mkdir -p "$(dirname "$db")"
wal_db "$db"
lb_repo lvl-lb
"${LB[@]}" --repo s3://lvl-lb/lb replicate sqlite "$db" --interval 200ms --spans 2s,10s \
    --keep-commits 5s --keep-minutes 15s --json > "$W/logs/lvl-lb.json" 2> "$W/logs/lvl-lb.err" &
REP=$!
BG_PIDS+=("$REP")
sleep 3
python3 "$LOAD" commits "$db" "$LEVELS_RATE" "$LEVELS_SECS" "$W/progress-lvl" > /dev/null
sleep 20
kill -INT "$REP"
wait "$REP" || true
read -r LVL_SHIPPED LVL_MERGED LVL_DROPPED < <(python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(s["segments"], s["merged"], s["dropped"])' "$W/logs/lvl-lb.json")
LVL_BYTES=$(bytes_under "$S3ROOT/lvl-lb")
"${LB[@]}" --repo s3://lvl-lb/lb prune --grace 0s > "$W/logs/lvl-prune.out" 2>&1
LVL_PRUNED=$(bytes_under "$S3ROOT/lvl-lb")
timed lvl-latest "${LB[@]}" --repo s3://lvl-lb/lb restore latest --name lvldb --to "$W/lvl-latest.db" --json
LVL_READ=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["point"]["segments"])' "$W/logs/lvl-latest.out")
[[ $(newest "$W/lvl-latest.db") == $(newest "$db") ]] || { echo "error: the level restore is not the newest commit" >&2; exit 1; }
say "levels: $LVL_SHIPPED segments shipped, $LVL_MERGED merged written, $LVL_DROPPED dropped; restore latest read $LVL_READ segments; stored $(mib "$LVL_BYTES") MiB, $(mib "$LVL_PRUNED") MiB after prune"

# ================================================================ report
ROWS_T=(
    "lifeboat;restore to a point (--at), from S3;lb-point"
    "lifeboat;plain restore of the newest snapshot;lb-plain"
    "Litestream $LS_VERSION;restore -timestamp;ls-point"
    "Litestream $LS_VERSION;restore (newest);ls-latest"
)
RATIOS=(
    "lag at ${RATE_GOT[lifeboat]} commits/s: lifeboat per segment, max (p50, p99);${LB_MAX} s (${LB_P50}, ${LB_P99});< 2 s;$(verdict "$LB_MAX" 1 "<" 2)"
    "lag probe (restore holds the commit), median: lifeboat;${PROBE_MED[lifeboat]} s;;"
    "lag probe, median: Litestream (${RATE_GOT[litestream]} commits/s);${PROBE_MED[litestream]} s;;"
    "a day's stored bytes / changed pages zstd -3 ($(mib "$CHANGED_ZST") MiB): lifeboat;$(ratio "${DAY_STORED[lifeboat]}" "$CHANGED_ZST");<= 1.2;$(verdict "${DAY_STORED[lifeboat]}" "$CHANGED_ZST" "<=" 1.2)"
    "a day's stored bytes / changed pages zstd -3: Litestream;$(ratio "${DAY_STORED[litestream]}" "$CHANGED_ZST");;"
    "a day's stored bytes / changed pages zstd -3: nightly .backup | gzip;$(ratio "$NIGHTLY" "$CHANGED_ZST");;"
    "restore to a point / plain restore of the newest snapshot;$(ratio "${SECS[lb-point]}" "${SECS[lb-plain]}");< 2;$(verdict "${SECS[lb-point]}" "${SECS[lb-plain]}" "<" 2)"
    "lifeboat restore to a point / Litestream's;$(ratio "${SECS[lb-point]}" "${SECS[ls-point]}");;"
    "levels: segments a restore of the newest point read / segments shipped ($LEVELS_SECS s at $LEVELS_RATE commits/s);$LVL_READ / $LVL_SHIPPED;bounded;"
    "levels: stored MiB before / after prune (dropped segments' data);$(mib "$LVL_BYTES") / $(mib "$LVL_PRUNED");;"
)
report "SQLite replication" \
    "$(nproc) cores, s3s-fs on 127.0.0.1; lag: $RATE commits/s for $LAG_SECS s; day: $DAY_MIB MiB, $HOURS hours of ${HOUR_SECS}s, 1% of pages per hour in $TX transactions; point: $SIZE_MIB MiB, $POINT_RATE commits/s for $POINT_SECS s" \
    "Changed pages in the day: $CHANGED_PAGES of $DAY_PAGES. Restored to the point: lifeboat commit $LB_POINT_N, Litestream commit $LS_POINT_N (the writer's n). lifeboat's day: $(mib "${DAY_STORED[lifeboat]}") MiB (one base snapshot included); Litestream's: $(mib "${DAY_STORED[litestream]}") MiB; nightly: $(mib "$NIGHTLY") MiB."
cat "$W/results.md" > /dev/null
