#!/usr/bin/env bash
# bench/s3.sh: lifeboat against restic on an S3-compatible server behind a link with a
# round-trip time (issue #20, "Restore, verify and drill from S3 at the speed of the link").
#
# The server is s3s-fs (a real S3 API on a folder, `cargo install s3s-fs`); in front of it,
# bench/latency_proxy.rs, a TCP proxy this bench owns (compiled with `rustc -O`; standard
# library only), delays every piece of data by half the round-trip time in each direction
# without limiting throughput (each read is stamped on arrival and delivered at arrival +
# RTT/2; up to 64 MiB in flight per direction). PROXY_IMPL=python uses bench/latency_proxy.py,
# the same proxy in Python (the one of sessions 10-18's figures), whose CPU took a share of
# the 2 cores the client runs on. Both tools talk to the proxy only. For each round-trip time of RTTS (default "0 20 100" ms), in one
# run, on the same generated SQLite database (SIZE_MIB MiB of text-heavy rows, WAL mode,
# default 300; bench/gen_sqlite.py, the generator of bench/sqlite.sh):
#   1. backup:   lifeboat (`backup sqlite`) and restic (`backup`, of the database file
#                itself: nothing writes to it, as in bench/sqlite.sh), each into a fresh
#                repository: wall seconds, peak RSS, stored bytes;
#   2. restore:  of that backup, lifeboat to a fresh path (`restore latest --name`), restic
#                to a fresh folder; lifeboat's restored file must pass `PRAGMA
#                integrity_check` and hold the source's rows, restic's must have the
#                source's SHA-256, or the script fails. The reference: lifeboat's restore
#                of the same database from a local-folder repository (backed up once into
#                $W/local-repo, no proxy, no server);
#   3. verify:   `lifeboat verify --all --read-data` against `restic check --read-data`;
#   4. memory:   at 20 ms only, the peak RSS of a lifeboat restore of a database BIG_MIB
#                MiB large (default 4 x SIZE_MIB; generated once and backed up once straight
#                to s3s-fs, not through the proxy; BIG=0 skips it: "not run");
#   5. catalog:  a fleet of N_NAMES names x N_SNAPS / N_NAMES snapshots each (default 20 x
#                100 = 2,000) of tiny distinct SQLite databases for lifeboat, of tiny
#                distinct files (`backup --host NAME`) for restic; at each round-trip time
#                of FLEET_RTTS (default: RTTS): `lifeboat snapshots` twice (the first run
#                may write a catalog object, the second reads it), `lifeboat stale`, a
#                backup of an unchanged tiny database already in the fleet (same name, same
#                content as its last snapshot), and `restic snapshots`. Each round-trip time
#                starts from a fresh copy of the fleet, so the first `snapshots` is a first
#                run every time.
# Each restore (the local reference too) and each verify / check runs ROUNDS times (default 3),
# the tools taking turns, and its median round is the one shown and compared: one restore
# on this 2-core machine varies by 0.1-0.3 s between runs.
# Then prints a table per round-trip time and the ratios against the issue's targets with
# PASS/MISS: at 20 ms, lifeboat restore <= 0.7x restic restore, lifeboat S3 restore <= 1.3x
# lifeboat local-folder restore, lifeboat verify --read-data <= 0.7x restic check
# --read-data; at 100 ms, lifeboat restore <= 2x local-folder restore; peak RSS of the big
# restore < 256 MiB; with the fleet at 20 ms, `snapshots` (both runs) < 2 s, `stale` < 2 s,
# the unchanged backup < 2 s; the same ratios at the other round-trip times marked "info";
# and writes the same as markdown to bench/work/s3/results.md.
#
# Fairness: lifeboat keeps no local cache; restic's timed reads (restore, check, snapshots)
# run with --no-cache, so neither tool reads anything from local disk but the server's
# (restic's backups use a cache under the work folder, as they would on a host). Both run
# with their default concurrency (restic: 5 S3 connections). Both repositories are
# encrypted: lifeboat's by default (`init`, password in $W/password given as
# LIFEBOAT_PASSWORD_FILE, also for the timed fleet commands; the fleet's 2,000 backups are
# made with a key file, `key add --out`, to skip 2,000 Argon2 derivations), restic's always
# (RESTIC_PASSWORD_FILE). restic uses repository version 2 with --compression auto when it
# has them. Every timed command runs once, after the data it reads was read once (page
# cache warm; it cannot be dropped without root).
#
# s3s-fs quirks this works around (s3s-fs 0.14): bucket names need 3 characters or more;
# it lists by walking the whole bucket folder, so every repository gets a bucket of its own
# (`lifeboat-rttN`, `restic-rttN`, ...) and each round-trip time's buckets are removed when
# it is done; and it takes an empty `delimiter=` for a delimiter, which breaks restic's
# recursive listing of data/xx/ (minio-go always sends `delimiter=`): `restic check` then
# finds no packs. restic's repositories therefore use `-o s3.layout=s3legacy` (packs
# directly under data/, the same requests otherwise). s3s-fs answers GETs in 4 KiB reads,
# the same for both tools. On the 2-core machine s3s-fs spends about 0.4 ms of CPU per
# request (measured: `lifeboat snapshots` on the 2,000-snapshot fleet makes 4,000 GETs,
# every manifest and every index file, and took 5.4-7.2 s straight to s3s-fs, 5.6-6.1 s
# through the proxy at 0 ms): thousands of small requests are CPU-bound even at 0 ms.
#
# The fleet is generated once into bench/work/s3-fleet/, which is kept across runs and not
# wiped with the rest: it is reused when its marker file says it is complete for the same
# N_SNAPS and N_NAMES, and regenerated otherwise (or `rm -rf bench/work/s3-fleet`, e.g. after
# a repository format change). It is made in local folders, 2 backups at a time per tool
# (through s3s-fs each backup reads every index file over HTTP: past 700 snapshots a
# backup took 3 s), lifeboat's as a folder repository (an S3 repository holds the same
# keys), restic's as a local repository then moved into the s3legacy layout; both are read
# back through s3s-fs (`lifeboat snapshots`, `restic snapshots` and `restic check`, on a
# scratch copy) before the fleet is marked complete. Each round-trip time copies the
# folders under s3s-fs's root as fresh buckets (s3s-fs serves plain files; without its
# sidecar files it computes the ETags from the files).
#
# Run from anywhere in the repository:
#   bash bench/s3.sh                                   # 300 MiB, RTTS "0 20 100"
#   SIZE_MIB=20 BIG=0 N_SNAPS=100 N_NAMES=5 bash bench/s3.sh     # quick run
#   RTTS=20 bash bench/s3.sh                           # one round-trip time
#   FLEET_RTTS=20 bash bench/s3.sh                     # the catalog at 20 ms only ("": never)
# It builds with `cargo build --release --workspace --bins` (as bench/sqlite.sh) and runs
# ${CARGO_TARGET_DIR:-target}/release/lifeboat.
# Needs: cargo, s3s-fs (on PATH or in ~/.cargo/bin, or S3S_FS=PATH), python3 (standard
#   library only), restic, sqlite3, sha256sum, GNU time
#   (as root, missing Debian packages are installed with apt-get: restic sqlite3 coreutils time)
# Disk: at the peak, the database (SIZE_MIB), the local repository (about a third of it) and
# the big database's repository and restored file (about 1.4 x BIG_MIB); the big database
# itself is removed once it is backed up. The fleet takes tens of MiB.
# Everything else is written under bench/work/s3, which is wiped at the start.

set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

positive() {
    [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "error: $1 must be a positive whole number, got '$2'" >&2; exit 2; }
}
SIZE_MIB="${SIZE_MIB:-300}"
positive SIZE_MIB "$SIZE_MIB"
BIG="${BIG:-1}"
[[ "$BIG" == 0 || "$BIG" == 1 ]] || { echo "error: BIG must be 0 or 1, got '$BIG'" >&2; exit 2; }
BIG_MIB="${BIG_MIB:-$((4 * SIZE_MIB))}"
positive BIG_MIB "$BIG_MIB"
N_SNAPS="${N_SNAPS:-2000}"
N_NAMES="${N_NAMES:-20}"
positive N_SNAPS "$N_SNAPS"
positive N_NAMES "$N_NAMES"
((N_SNAPS % N_NAMES == 0)) || { echo "error: N_SNAPS ($N_SNAPS) must be a multiple of N_NAMES ($N_NAMES)" >&2; exit 2; }
PER_NAME=$((N_SNAPS / N_NAMES))
ROUNDS="${ROUNDS:-3}"
positive ROUNDS "$ROUNDS"
RTTS="${RTTS:-0 20 100}"
FLEET_RTTS="${FLEET_RTTS-$RTTS}"
for r in $RTTS $FLEET_RTTS; do
    [[ "$r" =~ ^(0|[1-9][0-9]*)$ ]] || { echo "error: RTTS and FLEET_RTTS are whole milliseconds, got '$r'" >&2; exit 2; }
done
has_rtt() { [[ " $1 " == *" $2 "* ]]; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="$ROOT/bench/work/s3"
FLEET="$ROOT/bench/work/s3-fleet"
DB="$W/bench.db"
BIG_DB="$W/big.db"
S3ROOT="$W/s3root"
GEN="$ROOT/bench/gen_sqlite.py"
PROXY="$ROOT/bench/latency_proxy.py"
LIFEBOAT="${CARGO_TARGET_DIR:-$ROOT/target}/release/lifeboat"
S3S_FS="${S3S_FS:-$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")}"

# ---------------------------------------------------------------- prerequisites
require restic=restic sqlite3=sqlite3 python3=python3 sha256sum=coreutils /usr/bin/time=time
command -v cargo > /dev/null 2>&1 || die "missing: cargo (Rust's toolchain, from rustup)"
[[ -x "$S3S_FS" ]] || die "missing: s3s-fs (cargo install s3s-fs, or S3S_FS=PATH)"
python3 -c 'import sqlite3' 2> /dev/null || die "python3 lacks the sqlite3 module"

# ---------------------------------------------------------------- build
build_release

say "work folder $W (wiped; the fleet in $FLEET is kept)"
rm -rf "$W"
mkdir -p "$W/logs" "$S3ROOT"

# ---------------------------------------------------------------- servers
S3_PID="" PROXY_PID=""
stop() {
    local pid
    for pid in "$PROXY_PID" "$S3_PID"; do
        [[ -n "$pid" ]] || continue
        kill "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
    done
    PROXY_PID="" S3_PID=""
}
trap stop EXIT
trap 'exit 130' INT TERM

start_s3s_fs "$S3ROOT" "$W/logs/s3s-fs.log"
say "$S3S_VERSION on 127.0.0.1:$S3_PORT, root $S3ROOT"

# median_of KEY: KEY_1 .. KEY_$ROUNDS were timed; the median round (the lower middle one for
# an even count) becomes KEY, with its RSS, CPU and server CPU; every round's seconds are
# kept in ROUND_SECS[KEY] for the notes.
declare -A ROUND_SECS=()
median_of() {
    local key=$1 r mid
    local -a rows=()
    for ((r = 1; r <= ROUNDS; r++)); do rows+=("${SECS[${key}_$r]} $r"); done
    mid=$(printf '%s\n' "${rows[@]}" | sort -n | sed -n "$(((ROUNDS + 1) / 2))p" | cut -d' ' -f2)
    SECS[$key]=${SECS[${key}_$mid]}
    RSS[$key]=${RSS[${key}_$mid]}
    CPU[$key]=${CPU[${key}_$mid]}
    if [[ -n "${SERVER_CPU[${key}_$mid]:-}" ]]; then SERVER_CPU[$key]=${SERVER_CPU[${key}_$mid]}; fi
    ROUND_SECS[$key]=$(for ((r = 1; r <= ROUNDS; r++)); do printf '%s ' "${SECS[${key}_$r]}"; done)
    say "$key: median of ${ROUNDS}: ${SECS[$key]}s (rounds: ${ROUND_SECS[$key]% })"
}

# server_cpu: CPU seconds (user + system) s3s-fs and the proxy have spent so far: on this
# machine they share the cores with the client, so a restore pays for them too.
declare -A SERVER_CPU=()
server_cpu() {
    local pid total=0 tick
    tick=$(getconf CLK_TCK)
    for pid in $S3_PID $PROXY_PID; do
        [[ -r "/proc/$pid/stat" ]] || continue
        total=$(awk -v t="$total" '{ sub(/^.*\) /, ""); print t + $12 + $13 }' "/proc/$pid/stat")
    done
    awk -v t="$total" -v k="$tick" 'BEGIN { printf "%.2f", t / k }'
}

# start_proxy RTT: the latency proxy in front of s3s-fs; sets PROXY_PORT and PROXY_PID.
start_proxy() {
    start_latency_proxy "$S3_PORT" "$1" "$W/logs/proxy-$1.log"
}
stop_proxy() {
    kill "$PROXY_PID" 2> /dev/null || true
    wait "$PROXY_PID" 2> /dev/null || true
    PROXY_PID=""
}

# drop_bucket NAME...: removes each bucket's folder and the sidecar files s3s-fs keeps for
# its objects in the root (.bucket-BASE64URL(NAME).object-BASE64URL(KEY).*.json).
drop_bucket() {
    local b enc
    for b in "$@"; do
        rm -rf "${S3ROOT:?}/$b"
        enc=$(python3 -c 'import base64, sys; print(base64.urlsafe_b64encode(sys.argv[1].encode()).decode().rstrip("="))' "$b")
        find "$S3ROOT" -maxdepth 1 -name ".bucket-$enc.*" -delete
    done
}
# bucket NAME: a fresh, empty bucket (a top-level folder of s3s-fs's root).
bucket() { drop_bucket "$1" && mkdir -p "$S3ROOT/$1"; }

# How both tools are run against the server at PORT (the proxy's, or s3s-fs's own):
# lb_at PORT sets LBS (lifeboat with the password) and LBF (with the fleet's password).
lb_at() {
    local env=(env "AWS_ENDPOINT=http://127.0.0.1:$1" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1)
    LBS=("${env[@]}" "LIFEBOAT_PASSWORD_FILE=$W/password" "$LIFEBOAT")
    LBF=("${env[@]}" "LIFEBOAT_PASSWORD_FILE=$FLEET/password" "$LIFEBOAT")
}
# restic_url PORT BUCKET
restic_url() { echo "s3:http://127.0.0.1:$1/$2/restic"; }
RESTIC=(restic -o s3.layout=s3legacy)

# Whatever password, key or repository the caller's environment names is not used.
unset LIFEBOAT_PASSWORD LIFEBOAT_PASSWORD_FILE LIFEBOAT_PASSWORD_COMMAND LIFEBOAT_KEY_FILE LIFEBOAT_REPO
unset RESTIC_PASSWORD RESTIC_PASSWORD_COMMAND RESTIC_REPOSITORY RESTIC_REPOSITORY_FILE
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_REGION
(umask 077 && python3 -c 'import secrets; print("lifeboat-bench-" + secrets.token_hex(16))' > "$W/password")
(umask 077 && python3 -c 'import secrets; print("restic-bench-" + secrets.token_hex(16))' > "$W/restic-password")
export RESTIC_PASSWORD_FILE="$W/restic-password"

RESTIC_VERSION=$(restic version | head -n 1)
RESTIC_INIT=(init)
RESTIC_BACKUP=(backup)
RESTIC_MODE="no compression (this restic has none)"
if restic --help 2>&1 | grep -q -- '--compression'; then
    RESTIC_INIT+=(--repository-version 2)
    RESTIC_BACKUP+=(--compression auto)
    RESTIC_MODE="repository version 2, --compression auto"
fi

# quiet LOG CMD...: runs an untimed command, its output in $W/logs/LOG; fails loudly.
quiet() {
    local log=$1
    shift
    "$@" > "$W/logs/$log" 2>&1 || { tail -n 20 "$W/logs/$log" >&2; die "failed: $*"; }
}

# check_restored FILE SOURCE_ROWS: integrity_check must print ok; rows must match.
check_restored() {
    local file=$1 want=$2 got
    [[ -f "$file" ]] || die "restored file $file does not exist"
    got=$(sqlite3 "$file" 'PRAGMA integrity_check')
    [[ "$got" == ok ]] || die "integrity_check of $file printed: $got"
    got=$(rows_of "$file")
    [[ "$got" == "$want" ]] || die "$file holds '$got', the source holds '$want'"
    say "$file: integrity_check ok, rows match"
}
rows_of() { sqlite3 "$1" 'SELECT count(*), max(id), max(at) FROM events; SELECT count(*) FROM users'; }
wal_clean() { [[ ! -s "$1-wal" ]] || die "$1-wal is not empty: the database was not checkpointed"; }
# count_line LOG: the N of the "N snapshot(s)" line both tools print last.
count_line() { awk '$2 ~ /^snapshots?$/ && NF == 2 { n = $1 } END { print n + 0 }' "$W/logs/$1.out"; }

# ---------------------------------------------------------------- databases
say "generating a ${SIZE_MIB} MiB SQLite database at $DB"
gen_start=$(date +%s)
python3 "$GEN" create "$DB" "$SIZE_MIB"
wal_clean "$DB"
DB_SIZE=$(fsize "$DB")
DB_ROWS=$(sqlite3 "$DB" 'SELECT count(*) FROM events')
SOURCE_ROWS=$(rows_of "$DB")
DB_SHA=$(sha256sum "$DB" | cut -d' ' -f1)
say "database: $(mib "$DB_SIZE") MiB, $DB_ROWS events, generated in $(($(date +%s) - gen_start))s"

BIG_RUN=0
BIG_NOTE="not run (BIG=0)"
if [[ "$BIG" == 1 ]] && ! has_rtt "$RTTS" 20; then BIG_NOTE="not run (20 is not in RTTS)"; fi
if [[ "$BIG" == 1 ]] && has_rtt "$RTTS" 20; then
    BIG_RUN=1
    say "generating the ${BIG_MIB} MiB database for the memory measure at $BIG_DB"
    gen_start=$(date +%s)
    python3 "$GEN" create "$BIG_DB" "$BIG_MIB"
    wal_clean "$BIG_DB"
    BIG_SIZE=$(fsize "$BIG_DB")
    BIG_ROWS=$(rows_of "$BIG_DB")
    say "big database: $(mib "$BIG_SIZE") MiB, generated in $(($(date +%s) - gen_start))s"
    # Backed up once, straight to s3s-fs: only its restore (through the proxy) is measured.
    lb_at "$S3_PORT"
    bucket big-lifeboat
    quiet init-big.out "${LBS[@]}" --repo s3://big-lifeboat/lifeboat init
    timed lb_big_backup "${LBS[@]}" --repo s3://big-lifeboat/lifeboat backup sqlite "$BIG_DB" --name big
    STORED[lb_big_backup]=$(stored "$S3ROOT/big-lifeboat")
    rm -f "$BIG_DB" "$BIG_DB"-*
fi

# ---------------------------------------------------------------- the local-folder reference
say "lifeboat, local-folder repository: backup and restore (the reference)"
quiet init-local.out env "LIFEBOAT_PASSWORD_FILE=$W/password" "$LIFEBOAT" --repo "$W/local-repo" init
warm "$DB"
timed lb_local_backup env "LIFEBOAT_PASSWORD_FILE=$W/password" "$LIFEBOAT" --repo "$W/local-repo" \
    backup sqlite "$DB" --name bench
STORED[lb_local_backup]=$(stored "$W/local-repo")
for ((round = 1; round <= ROUNDS; round++)); do
    rm -f "$W"/restored-lb.db "$W"/restored-lb.db-*
    warm "$W/local-repo"
    timed "lb_local_restore_$round" env "LIFEBOAT_PASSWORD_FILE=$W/password" "$LIFEBOAT" --repo "$W/local-repo" \
        restore latest --name bench --to "$W/restored-lb.db"
    check_restored "$W/restored-lb.db" "$SOURCE_ROWS"
    rm -f "$W"/restored-lb.db "$W"/restored-lb.db-*
done
median_of lb_local_restore

# ---------------------------------------------------------------- the fleet (generated once)
FLEET_NOTE=""
NAMES=()
for ((n = 0; n < N_NAMES; n++)); do NAMES+=("$(printf 'app-%02d' "$n")"); done
# The mark says which lifeboat made the fleet's repository: layout 2 is made by backups that
# merge a fragmented index and listings that keep the catalog (session 11), so the fleet is
# what a repository used by that lifeboat looks like. A fleet with another mark is made again.
FLEET_MARK="snapshots=$N_SNAPS names=$N_NAMES layout=2"

# fleet_worker TOOL W: backs up every name whose index is W modulo 2, PER_NAME times each,
# changing its database (lifeboat) or file (restic) before every backup; into local folders.
fleet_worker() {
    local tool=$1 w=$2 n i name
    for ((n = w; n < N_NAMES; n += 2)); do
        name=${NAMES[$n]}
        for ((i = 1; i <= PER_NAME; i++)); do
            if [[ $tool == lifeboat ]]; then
                sqlite3 "$FLEET/dbs/$name.db" "INSERT INTO t(v) VALUES('$name snapshot $i')" || return 1
                env "LIFEBOAT_KEY_FILE=$FLEET/key" "$LIFEBOAT" --repo "$FLEET/lifeboat-bucket/lifeboat" \
                    backup sqlite "$FLEET/dbs/$name.db" --name "$name" \
                    >> "$W/logs/fleet-lifeboat-$w.log" 2>&1 || return 1
            else
                echo "$name snapshot $i" >> "$FLEET/files/$name/data.txt" || return 1
                env "RESTIC_PASSWORD_FILE=$FLEET/restic-password" restic -r "$FLEET/restic-local" \
                    --cache-dir "$W/restic-cache-fleet" backup -q --host "$name" "$FLEET/files/$name/data.txt" \
                    >> "$W/logs/fleet-restic-$w.log" 2>&1 || return 1
            fi
        done
    done
}

# fleet_run TOOL: both workers of TOOL, side by side.
fleet_run() {
    local pids=() pid failed=0
    fleet_worker "$1" 0 &
    pids+=($!)
    fleet_worker "$1" 1 &
    pids+=($!)
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    ((failed == 0)) || { tail -n 20 "$W/logs/fleet-$1-"*.log >&2; die "generating the $1 fleet failed"; }
}

if [[ -z "${FLEET_RTTS// /}" ]]; then
    FLEET_NOTE="not measured (FLEET_RTTS is empty)"
elif [[ -f "$FLEET/complete" && "$(cat "$FLEET/complete")" == "$FLEET_MARK" && -d "$FLEET/lifeboat-bucket" &&
    -d "$FLEET/restic-bucket" && -f "$FLEET/key" ]]; then
    say "fleet: reusing $FLEET ($FLEET_MARK)"
    FLEET_NOTE="reused from $FLEET"
else
    say "fleet: generating $N_NAMES names x $PER_NAME snapshots for lifeboat and restic into $FLEET (once)"
    fleet_start=$(date +%s)
    rm -rf "$FLEET"
    mkdir -p "$FLEET/dbs" "$FLEET/files" "$FLEET/lifeboat-bucket" "$FLEET/restic-bucket"
    (umask 077 && python3 -c 'import secrets; print("lifeboat-fleet-" + secrets.token_hex(16))' > "$FLEET/password")
    (umask 077 && python3 -c 'import secrets; print("restic-fleet-" + secrets.token_hex(16))' > "$FLEET/restic-password")
    for name in "${NAMES[@]}"; do
        sqlite3 "$FLEET/dbs/$name.db" "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL); INSERT INTO t(v) VALUES('$name')"
        mkdir -p "$FLEET/files/$name"
        echo "$name" > "$FLEET/files/$name/data.txt"
    done
    # lifeboat: a local-folder repository at the path the bucket copy serves as the prefix
    # `lifeboat` (an S3 repository holds the same keys as a folder one).
    quiet fleet-init-lifeboat.out env "LIFEBOAT_PASSWORD_FILE=$FLEET/password" "$LIFEBOAT" \
        --repo "$FLEET/lifeboat-bucket/lifeboat" init
    quiet fleet-key.out env "LIFEBOAT_PASSWORD_FILE=$FLEET/password" "$LIFEBOAT" \
        --repo "$FLEET/lifeboat-bucket/lifeboat" key add --out "$FLEET/key"
    lb_fleet_start=$(date +%s)
    fleet_run lifeboat
    lb_fleet_secs=$(($(date +%s) - lb_fleet_start))
    say "fleet: lifeboat's $N_SNAPS backups took ${lb_fleet_secs}s"
    # restic: a local repository, then moved into the s3legacy layout its S3 repositories
    # use here (config, data/ID, index/ID, key/ID, snapshot/ID).
    quiet fleet-init-restic.out env "RESTIC_PASSWORD_FILE=$FLEET/restic-password" \
        restic -r "$FLEET/restic-local" "${RESTIC_INIT[@]}"
    restic_fleet_start=$(date +%s)
    fleet_run restic
    restic_fleet_secs=$(($(date +%s) - restic_fleet_start))
    say "fleet: restic's $N_SNAPS backups took ${restic_fleet_secs}s"
    [[ -z "$(find "$FLEET/restic-local/locks" -type f)" ]] || die "restic left locks in $FLEET/restic-local"
    rs="$FLEET/restic-bucket/restic"
    mkdir -p "$rs/data" "$rs/index" "$rs/key" "$rs/snapshot" "$rs/lock"
    mv "$FLEET/restic-local/config" "$rs/config"
    find "$FLEET/restic-local/data" -type f -exec mv -t "$rs/data" {} +
    find "$FLEET/restic-local/index" -type f -exec mv -t "$rs/index" {} +
    find "$FLEET/restic-local/keys" -type f -exec mv -t "$rs/key" {} +
    find "$FLEET/restic-local/snapshots" -type f -exec mv -t "$rs/snapshot" {} +
    rm -rf "$FLEET/restic-local"
    # Both are read back through s3s-fs (straight, from a scratch copy: reading may write,
    # a lease or a catalog) before the fleet is marked complete.
    lb_at "$S3_PORT"
    drop_bucket fleet-check-lifeboat fleet-check-restic
    cp -a "$FLEET/lifeboat-bucket" "$S3ROOT/fleet-check-lifeboat"
    cp -a "$FLEET/restic-bucket" "$S3ROOT/fleet-check-restic"
    quiet fleet-check-lifeboat.out "${LBF[@]}" --repo s3://fleet-check-lifeboat/lifeboat snapshots
    got=$(count_line fleet-check-lifeboat)
    [[ "$got" == "$N_SNAPS" ]] || die "the lifeboat fleet holds $got snapshots through S3, not $N_SNAPS"
    quiet fleet-check-restic.out env "RESTIC_PASSWORD_FILE=$FLEET/restic-password" \
        "${RESTIC[@]}" -r "$(restic_url "$S3_PORT" fleet-check-restic)" --no-cache snapshots
    got=$(count_line fleet-check-restic)
    [[ "$got" == "$N_SNAPS" ]] || die "the restic fleet holds $got snapshots through S3, not $N_SNAPS"
    quiet fleet-check-restic-check.out env "RESTIC_PASSWORD_FILE=$FLEET/restic-password" \
        "${RESTIC[@]}" -r "$(restic_url "$S3_PORT" fleet-check-restic)" --no-cache check
    drop_bucket fleet-check-lifeboat fleet-check-restic
    echo "$FLEET_MARK" > "$FLEET/complete"
    fleet_secs=$(($(date +%s) - fleet_start))
    FLEET_NOTE="generated in this run in ${fleet_secs} s (lifeboat ${lb_fleet_secs} s, restic ${restic_fleet_secs} s, 2 backups at a time, into local folders)"
    say "fleet: generated and checked through s3s-fs in ${fleet_secs}s, $(mib "$(stored "$FLEET")") MiB"
fi

# ---------------------------------------------------------------- per round-trip time
PROBES=()
for rtt in $RTTS; do
    say "==== round-trip time $rtt ms"
    start_proxy "$rtt"
    direct=$(python3 "$PROXY" probe "$S3_PORT")
    via=$(python3 "$PROXY" probe "$PROXY_PORT")
    added=$(awk -v a="$via" -v b="$direct" 'BEGIN { printf "%.1f", a - b }')
    say "proxy on 127.0.0.1:$PROXY_PORT: a tiny HEAD takes $via ms through it, $direct ms direct: +$added ms (RTT $rtt ms)"
    PROBES+=("$rtt ms: +$added ms")
    lb_at "$PROXY_PORT"
    lbb="lifeboat-rtt$rtt" rsb="restic-rtt$rtt"
    rurl=$(restic_url "$PROXY_PORT" "$rsb")
    bucket "$lbb"
    bucket "$rsb"

    # 1. backups
    quiet "init-$lbb.out" "${LBS[@]}" --repo "s3://$lbb/lifeboat" init
    quiet "init-$rsb.out" "${RESTIC[@]}" -r "$rurl" "${RESTIC_INIT[@]}"
    warm "$DB"
    timed "lb_backup_$rtt" "${LBS[@]}" --repo "s3://$lbb/lifeboat" backup sqlite "$DB" --name bench
    STORED[lb_backup_$rtt]=$(stored "$S3ROOT/$lbb")
    warm "$DB"
    timed "restic_backup_$rtt" "${RESTIC[@]}" -r "$rurl" --cache-dir "$W/restic-cache" "${RESTIC_BACKUP[@]}" "$DB"
    STORED[restic_backup_$rtt]=$(stored "$S3ROOT/$rsb")

    # 2. restores and 3. verify, every byte: ROUNDS rounds, the tools taking turns
    for ((round = 1; round <= ROUNDS; round++)); do
        rm -f "$W"/restored-lb.db "$W"/restored-lb.db-*
        warm "$S3ROOT/$lbb"
        server_before=$(server_cpu)
        timed "lb_restore_${rtt}_$round" "${LBS[@]}" --repo "s3://$lbb/lifeboat" restore latest --name bench --to "$W/restored-lb.db"
        SERVER_CPU[lb_restore_${rtt}_$round]=$(awk -v a="$server_before" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
        say "s3s-fs and the proxy spent ${SERVER_CPU[lb_restore_${rtt}_$round]} CPU-s during lifeboat's restore"
        check_restored "$W/restored-lb.db" "$SOURCE_ROWS"
        rm -f "$W"/restored-lb.db "$W"/restored-lb.db-*
        rm -rf "$W/restic-restore"
        warm "$S3ROOT/$rsb"
        timed "restic_restore_${rtt}_$round" "${RESTIC[@]}" -r "$rurl" --no-cache restore latest --target "$W/restic-restore"
        got=$(sha256sum "$W/restic-restore$DB" | cut -d' ' -f1)
        [[ "$got" == "$DB_SHA" ]] || die "restic's restored $W/restic-restore$DB has SHA-256 $got, the source $DB_SHA"
        say "restic's restored file: SHA-256 matches the source"
        rm -rf "$W/restic-restore"

        warm "$S3ROOT/$lbb"
        timed "lb_verify_${rtt}_$round" "${LBS[@]}" --repo "s3://$lbb/lifeboat" verify --all --read-data
        warm "$S3ROOT/$rsb"
        timed "restic_check_${rtt}_$round" "${RESTIC[@]}" -r "$rurl" --no-cache check --read-data
    done
    for key in lb_restore restic_restore lb_verify restic_check; do median_of "${key}_$rtt"; done

    # 4. the big restore's memory, at 20 ms
    if [[ "$rtt" == 20 && "$BIG_RUN" == 1 ]]; then
        rm -f "$W"/restored-big.db "$W"/restored-big.db-*
        warm "$S3ROOT/big-lifeboat"
        timed lb_big_restore "${LBS[@]}" --repo s3://big-lifeboat/lifeboat restore latest --name big --to "$W/restored-big.db"
        check_restored "$W/restored-big.db" "$BIG_ROWS"
        rm -f "$W"/restored-big.db "$W"/restored-big.db-*
        drop_bucket big-lifeboat
    fi
    drop_bucket "$lbb" "$rsb"

    # 5. the catalog, on a fresh copy of the fleet
    if has_rtt "$FLEET_RTTS" "$rtt"; then
        flb="fleet-lifeboat-rtt$rtt" frs="fleet-restic-rtt$rtt"
        drop_bucket "$flb" "$frs"
        cp -a "$FLEET/lifeboat-bucket" "$S3ROOT/$flb"
        cp -a "$FLEET/restic-bucket" "$S3ROOT/$frs"
        warm "$S3ROOT/$flb" "$S3ROOT/$frs"
        timed "lb_snap1_$rtt" "${LBF[@]}" --repo "s3://$flb/lifeboat" snapshots
        got=$(count_line "lb_snap1_$rtt")
        [[ "$got" == "$N_SNAPS" ]] || die "lifeboat listed $got snapshots in the fleet, not $N_SNAPS (an old fleet? rm -rf $FLEET)"
        timed "lb_snap2_$rtt" "${LBF[@]}" --repo "s3://$flb/lifeboat" snapshots
        timed "lb_stale_$rtt" "${LBF[@]}" --repo "s3://$flb/lifeboat" stale --max-age 3650d
        rm -f "$W/unchanged.db"
        cp "$FLEET/dbs/${NAMES[0]}.db" "$W/unchanged.db"
        timed "lb_unchanged_$rtt" "${LBF[@]}" --repo "s3://$flb/lifeboat" backup sqlite "$W/unchanged.db" --name "${NAMES[0]}"
        timed "restic_snaps_$rtt" env "RESTIC_PASSWORD_FILE=$FLEET/restic-password" \
            "${RESTIC[@]}" -r "$(restic_url "$PROXY_PORT" "$frs")" --no-cache snapshots
        got=$(count_line "restic_snaps_$rtt")
        [[ "$got" == "$N_SNAPS" ]] || die "restic listed $got snapshots in the fleet, not $N_SNAPS"
        drop_bucket "$flb" "$frs"
        rm -f "$W/unchanged.db"
    fi
    stop_proxy
done

# ---------------------------------------------------------------- report
# The rows of one round-trip time's table: "tool;phase;key".
rtt_rows() {
    local r=$1
    echo "lifeboat;backup;lb_backup_$r"
    echo "restic;backup;restic_backup_$r"
    echo "lifeboat;restore;lb_restore_$r"
    echo "restic;restore;restic_restore_$r"
    echo "lifeboat;verify --all --read-data;lb_verify_$r"
    echo "restic;check --read-data;restic_check_$r"
    if [[ "$r" == 20 && "$BIG_RUN" == 1 ]]; then
        echo "lifeboat;restore of the $(mib "$BIG_SIZE") MiB database;lb_big_restore"
    fi
    if has_rtt "$FLEET_RTTS" "$r"; then
        echo "lifeboat;fleet: snapshots (first run);lb_snap1_$r"
        echo "lifeboat;fleet: snapshots (second run);lb_snap2_$r"
        echo "lifeboat;fleet: stale;lb_stale_$r"
        echo "lifeboat;fleet: backup of an unchanged database;lb_unchanged_$r"
        echo "restic;fleet: snapshots --no-cache;restic_snaps_$r"
    fi
}
REF_ROWS=("lifeboat, local folder;backup;lb_local_backup" "lifeboat, local folder;restore;lb_local_restore")
if [[ "$BIG_RUN" == 1 ]]; then
    REF_ROWS+=("lifeboat, straight to s3s-fs;backup of the $(mib "$BIG_SIZE") MiB database;lb_big_backup")
fi

# ratio_row WHAT A B OP LIMIT: "what;value;target;result", or "not run" when A or B is.
ratio_row() {
    local what=$1 a=${SECS[$2]:-} b=${SECS[$3]:-} op=$4 limit=$5
    if [[ -z "$a" || -z "$b" ]]; then echo "$what;not run;$op ${limit}x;-"; return; fi
    echo "$what;$(ratio "$a" "$b")x;$op ${limit}x;$(verdict "$a" "$b" "$op" "$limit")"
}
info_row() {
    local what=$1 a=${SECS[$2]:-} b=${SECS[$3]:-}
    [[ -n "$a" && -n "$b" ]] && echo "$what;$(ratio "$a" "$b")x;-;info"
    return 0
}
secs_row() {
    local what=$1 a=${SECS[$2]:-}
    if [[ -z "$a" ]]; then echo "$what;not run;< 2 s;-"; return; fi
    echo "$what;$a s;< 2 s;$(verdict "$a" 1 "<" 2)"
}
RATIOS=(
    "$(ratio_row "20 ms: restore time, lifeboat / restic" lb_restore_20 restic_restore_20 "<=" 0.7)"
    "$(ratio_row "20 ms: restore time, lifeboat S3 / lifeboat local folder" lb_restore_20 lb_local_restore "<=" 1.3)"
    "$(ratio_row "20 ms: verify --read-data, lifeboat / restic check --read-data" lb_verify_20 restic_check_20 "<=" 0.7)"
    "$(ratio_row "100 ms: restore time, lifeboat S3 / lifeboat local folder" lb_restore_100 lb_local_restore "<=" 2)"
)
if [[ "$BIG_RUN" == 1 ]]; then
    RATIOS+=("peak RSS, lifeboat restore of the $(mib "$BIG_SIZE") MiB database at 20 ms;$(kib2mib "${RSS[lb_big_restore]}") MiB;< 256 MiB;$(verdict "${RSS[lb_big_restore]}" 1024 "<" 256)")
else
    RATIOS+=("peak RSS, lifeboat restore of a ${BIG_MIB} MiB database at 20 ms;$BIG_NOTE;< 256 MiB;-")
fi
RATIOS+=(
    "$(secs_row "$N_SNAPS snapshots, 20 ms: lifeboat snapshots (first run)" lb_snap1_20)"
    "$(secs_row "$N_SNAPS snapshots, 20 ms: lifeboat snapshots (second run)" lb_snap2_20)"
    "$(secs_row "$N_SNAPS snapshots, 20 ms: lifeboat stale" lb_stale_20)"
    "$(secs_row "$N_SNAPS snapshots, 20 ms: lifeboat backup of an unchanged database" lb_unchanged_20)"
)
for rtt in $RTTS; do
    row=$(info_row "$rtt ms: restore time, lifeboat / restic" "lb_restore_$rtt" "restic_restore_$rtt")
    [[ "$rtt" == 20 || -z "$row" ]] || RATIOS+=("$row")
    row=$(info_row "$rtt ms: restore time, lifeboat S3 / lifeboat local folder" "lb_restore_$rtt" lb_local_restore)
    [[ "$rtt" == 20 || "$rtt" == 100 || -z "$row" ]] || RATIOS+=("$row")
    row=$(info_row "$rtt ms: verify --read-data, lifeboat / restic check --read-data" "lb_verify_$rtt" "restic_check_$rtt")
    [[ "$rtt" == 20 || -z "$row" ]] || RATIOS+=("$row")
    if [[ -n "${SERVER_CPU[lb_restore_$rtt]:-}" && -n "${CPU[lb_local_restore]:-}" ]]; then
        RATIOS+=("$rtt ms: restore CPU-s, lifeboat S3 / local folder (s3s-fs + proxy);${CPU[lb_restore_$rtt]} / ${CPU[lb_local_restore]} (${SERVER_CPU[lb_restore_$rtt]});-;info")
    fi
    row=$(info_row "$rtt ms: backup time, lifeboat / restic" "lb_backup_$rtt" "restic_backup_$rtt")
    [[ -z "$row" ]] || RATIOS+=("$row")
    row=$(info_row "$N_SNAPS snapshots, $rtt ms: lifeboat snapshots (second run) / restic snapshots" "lb_snap2_$rtt" "restic_snaps_$rtt")
    [[ -z "$row" ]] || RATIOS+=("$row")
done

PROBE_TEXT=$(printf '%s, ' "${PROBES[@]}")
PROBE_TEXT=${PROBE_TEXT%, }
LB_VERSION=$("$LIFEBOAT" --version 2> /dev/null || echo lifeboat)
GIT_REV=$(git -C "$ROOT" describe --always --dirty 2> /dev/null || echo unknown)
SETUP="database $(mib "$DB_SIZE") MiB, $DB_ROWS events; round-trip times $RTTS ms (the proxy added, to a tiny HEAD: $PROBE_TEXT); fleet $N_NAMES names x $PER_NAME snapshots; $(nproc) cores; $LB_VERSION ($GIT_REV), encrypted; $RESTIC_VERSION, $RESTIC_MODE, -o s3.layout=s3legacy; $S3S_VERSION; $(sqlite3 --version | cut -d' ' -f1-2 | sed 's/^/sqlite3 /')"
NOTES="Stored = the repository's bucket folder after the backup (sum of file sizes). restic's restore, check and snapshots run with --no-cache (lifeboat has no local cache). The fleet commands use the fleet's password (one Argon2 derivation each); the fleet: ${FLEET_NOTE}. Restores and verifies ran $ROUNDS times each, the tools taking turns; the tables show the median round. The local-folder reference (the median of its $ROUNDS restores) serves every round-trip time. Every round, in seconds: $(for k in "${!ROUND_SECS[@]}"; do printf '%s: %s; ' "$k" "${ROUND_SECS[$k]% }"; done | sed 's/; $//')."
TITLE="S3 reads benchmark (issue #20)"

PHASE_WIDTH=46
{
    echo
    echo "$TITLE: $SETUP"
    echo
    echo "Reference (no server, no proxy):"
    timing_table "${REF_ROWS[@]}"
    for rtt in $RTTS; do
        mapfile -t rows < <(rtt_rows "$rtt")
        echo
        echo "Round-trip time $rtt ms:"
        timing_table "${rows[@]}"
    done
    echo
    echo "$NOTES"
    echo
    printf '%-72s %16s %11s %7s\n' Measure Value Target Result
    for row in "${RATIOS[@]}"; do
        IFS=';' read -r what value target result <<< "$row"
        printf '%-72s %16s %11s %7s\n' "$what" "$value" "$target" "$result"
    done
    echo
}
{
    echo "## $TITLE"
    echo
    echo "$(date -u +%Y-%m-%d): $SETUP."
    echo
    echo "Reference (no server, no proxy):"
    echo
    timing_table_md "${REF_ROWS[@]}"
    for rtt in $RTTS; do
        mapfile -t rows < <(rtt_rows "$rtt")
        echo
        echo "Round-trip time $rtt ms:"
        echo
        timing_table_md "${rows[@]}"
    done
    echo
    md "$NOTES"
    echo
    echo
    echo "| Measure | Value | Target | Result |"
    echo "|---|---:|---:|:---:|"
    for row in "${RATIOS[@]}"; do
        IFS=';' read -r what value target result <<< "$row"
        echo "| $(md "$what") | $(md "$value") | $(md "$target") | $result |"
    done
} > "$W/results.md"

# The databases and the local repository are scratch; the logs and results stay.
rm -rf "$DB" "$DB"-* "$W/local-repo" "$W/restic-cache" "$W/restic-cache-fleet"
say "markdown written to $W/results.md"
