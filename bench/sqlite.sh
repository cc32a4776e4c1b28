#!/usr/bin/env bash
# bench/sqlite.sh: lifeboat against restic, BorgBackup and the runbooks'
# "sqlite3 .backup | gzip" way, on one SQLite database.
#
# What it measures, on the same generated database (SIZE_MIB MiB of text-heavy rows,
# WAL mode, default 500 MiB):
#   1. full backup:    wall seconds, stored bytes (the repository's files, or the .gz),
#                      peak RSS;
#   2. second backup:  after appending 1% new rows: wall seconds and the *additional* stored
#                      bytes (for lifeboat also the new snapshot's own `stored` figure);
#      third backup:   lifeboat, restic and borg after an UPDATE of 1% of the rows, spread
#                      over the whole table (every 100th event's `kind` upper-cased, so
#                      nearly every chunk changes a little): the same figures;
#   3. restore:        of the latest backup (the runbook's is its second: the update
#                      leaves the checked counts and maxima as they were): wall seconds and
#                      peak RSS; every restored file must pass `PRAGMA integrity_check` and
#                      hold the same rows as the source, or the script fails.
# Then prints ratios against the targets (full backup <= 0.5x restic's time, stored <=
# restic's, second backup stores < 5% of the database and takes <= 20% of the full backup's
# time, restore <= restic's, peak RSS < 128 MiB) with PASS/MISS, plus lifeboat / borg
# ratios (full backup time, stored bytes, restore time) and the third backup's stored
# bytes for lifeboat, restic and borg marked "info", which have no
# targets, and writes the same results as markdown to bench/work/sqlite/results.md.
#
# Encrypted vs plaintext lifeboat (issue #15), in the same run on the same database: a
# second lifeboat repository, encrypted (XChaCha20-Poly1305, keyed BLAKE3 chunk ids, an
# Argon2id key slot; the password in a file under the work folder, given to its commands
# only, as LIFEBOAT_PASSWORD_FILE), gets the same full, second and third backups and the
# same restore as the plaintext one, and its restored file is checked the same way. The
# full backups and the restores run REPEAT times (default 3) alternately (odd runs
# plaintext first, even runs encrypted first), each full backup into a fresh repository (the first pair is kept for the
# second and third backups and the restores); `lifeboat snapshots` (an open and a listing,
# nothing else) likewise, to show the fixed cost of opening an encrypted repository (its
# key derivation). The "lifeboat" rows of the main table are the first run of each, like
# the anchors' single runs; a second table prints plaintext and encrypted side by side,
# medians (min-max) over the REPEAT runs, with the ratios encrypted / plaintext against
# the targets: full backup time <= 1.10x, restore time <= 1.10x, stored bytes after the
# full backup <= 1.01x (PASS/MISS, also in the ratios table and results.md), and, for
# reading a busy machine's figures, the CPU seconds (user + system) of the same runs. Which `init`
# makes which is detected: when `lifeboat init --help` offers `--no-encryption` (init
# encrypts by default), the plaintext repository is `init --no-encryption` and the
# encrypted one plain `init`; otherwise `init` and `init --encrypt`. Each repository's
# config must then say `none` / `xchacha20-poly1305`, or the script fails.
#
# Borg runs as `borg init --encryption=none`, `borg create --compression zstd,3` (archives
# "full" and "second") and `borg extract` of "second" inside a fresh folder (borg stores the
# path without its leading /). Its base, config and cache folders are under the work folder
# (BORG_BASE_DIR, BORG_CONFIG_DIR, BORG_CACHE_DIR), so nothing in ~/.config or ~/.cache is
# read or written; like restic's cache, borg's cache is not counted as stored.
#
# Stored bytes of a repository (lifeboat, restic, borg) are the sum of its files' sizes,
# i.e. `du -sb` without the 4 KiB `du -sb` counts for every folder: restic creates its
# 256 data/?? folders up front (1 MiB of folder entries), lifeboat creates them as it needs
# them, which would skew both the full-backup comparison and the second backup's growth on
# small databases.
#
# The page cache cannot be dropped without root, so each timed command runs once, warm,
# right after `cat $DB > /dev/null` (restores also read their repository once first).
# The runbook way also takes a second backup after the append (a whole new .gz), so that
# all four restores bring back the same, latest data.
#
# Run from anywhere in the repository:
#   bash bench/sqlite.sh                  # 500 MiB database
#   SIZE_MIB=100 bash bench/sqlite.sh     # quick run
#   REPEAT=5 bash bench/sqlite.sh         # more alternated plaintext/encrypted runs
# It builds with `cargo build --release --workspace --bins` (the whole workspace, so a
# shared CARGO_TARGET_DIR keeps one set of dependency builds) and runs
# ${CARGO_TARGET_DIR:-target}/release/lifeboat.
# Needs: cargo, python3 (standard library only; bench/gen_sqlite.py makes the data), restic,
#   borg, sqlite3, gzip, GNU time
#   (as root, missing Debian packages are installed with apt-get: restic borgbackup sqlite3 gzip time)
# Everything is written under bench/work/sqlite, which is wiped at the start.

set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MIB="${SIZE_MIB:-500}"
if ! [[ "$SIZE_MIB" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: SIZE_MIB must be a positive whole number of MiB, got '$SIZE_MIB'" >&2
    exit 2
fi
REPEAT="${REPEAT:-3}"
if ! [[ "$REPEAT" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: REPEAT must be a positive whole number, got '$REPEAT'" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="$ROOT/bench/work/sqlite"
DB="$W/bench.db"
LIFEBOAT="${CARGO_TARGET_DIR:-$ROOT/target}/release/lifeboat"


# ---------------------------------------------------------------- prerequisites
require restic=restic borg=borgbackup sqlite3=sqlite3 gzip=gzip gunzip=gzip python3=python3 \
    sha256sum=coreutils du=coreutils /usr/bin/time=time strace=strace
command -v cargo > /dev/null 2>&1 || die "missing: cargo (Rust's toolchain, from rustup)"
python3 -c 'import sqlite3' 2> /dev/null || die "python3 lacks the sqlite3 module"

# ---------------------------------------------------------------- build
build_release

say "work folder $W (wiped)"
rm -rf "$W"
mkdir -p "$W"

# ---------------------------------------------------------------- data generator
# bench/gen_sqlite.py (shared with bench/s3.sh): create, append and update.
GEN="$ROOT/bench/gen_sqlite.py"

# ---------------------------------------------------------------- helpers
# Every timed command starts with the database in the page cache.
before_timed() { cat "$DB" > /dev/null; }





# How lifeboat is run on the plaintext (LB) and the encrypted (LBE) repositories: only the
# encrypted one's commands get the password (a password given to a plaintext repository is
# refused).
LB=("$LIFEBOAT")
LBE=(env "LIFEBOAT_PASSWORD_FILE=$W/password" "$LIFEBOAT")

# lb_last_stored REPO CMD...: `stored` of REPO's newest snapshot (last element of
# snapshots --json), CMD being "${LB[@]}" or "${LBE[@]}".
lb_last_stored() {
    local repo=$1
    shift
    "$@" --repo "$repo" snapshots --json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)[-1]["stored"])'
}

# lb_init REPO ENCRYPTION: creates REPO, plaintext (none) or encrypted (xchacha20-poly1305),
# and checks that its config says so.
lb_init() {
    local repo=$1 want=$2 got
    local -a cmd
    if [[ "$want" == none ]]; then cmd=("${LB[@]}" --repo "$repo" "${LB_INIT_PLAIN[@]}"); else
        cmd=("${LBE[@]}" --repo "$repo" "${LB_INIT_ENC[@]}"); fi
    "${cmd[@]}" > "$W/logs/init-$(basename "$repo").out" 2>&1 || {
        cat "$W/logs/init-$(basename "$repo").out" >&2
        die "lifeboat init of $repo failed: ${cmd[*]}"
    }
    got=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("encryption", "none"))' "$repo/config")
    [[ "$got" == "$want" ]] || die "$repo: config says encryption '$got', expected '$want'"
}

# median KEY... / range KEY...: the median (the mean of the middle two for an even count)
# and "min-max" of SECS (or, for cpu_* and stored_*, of CPU and STORED) over KEYs.
_med() { sort -g | awk -v f="${1:-%.3f}" '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf f "\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
_rng() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s\n", lo, hi }'; }
median() { local k; for k in "$@"; do echo "${SECS[$k]}"; done | _med; }
range() { local k; for k in "$@"; do echo "${SECS[$k]}"; done | _rng; }
cpu_median() { local k; for k in "$@"; do echo "${CPU[$k]}"; done | _med; }
cpu_range() { local k; for k in "$@"; do echo "${CPU[$k]}"; done | _rng; }
stored_median() { local k; for k in "$@"; do echo "${STORED[$k]}"; done | _med %.0f; }
stored_range() { local k; for k in "$@"; do echo "${STORED[$k]}"; done | _rng; }

# check_restored FILE: integrity_check must print ok; rows must match the source.
check_restored() {
    local file=$1 got
    [[ -f "$file" ]] || die "restored file $file does not exist"
    got=$(sqlite3 "$file" 'PRAGMA integrity_check')
    [[ "$got" == ok ]] || die "integrity_check of $file printed: $got"
    got=$(sqlite3 "$file" 'SELECT count(*), max(id), max(at) FROM events; SELECT count(*) FROM users')
    [[ "$got" == "$SOURCE_ROWS" ]] || die "$file holds '$got', the source holds '$SOURCE_ROWS'"
    say "$file: integrity_check ok, rows match"
}

wal_clean() {
    [[ ! -s "$DB-wal" ]] || die "$DB-wal is not empty: the database was not checkpointed"
}

mkdir -p "$W/logs"
# Whatever password or repository the caller's environment names is not used.
unset LIFEBOAT_PASSWORD LIFEBOAT_PASSWORD_FILE LIFEBOAT_PASSWORD_COMMAND LIFEBOAT_KEY_FILE LIFEBOAT_REPO
# The encrypted repository's password, random for each run, readable by its owner only.
(umask 077 && python3 -c 'import secrets; print("lifeboat-bench-" + secrets.token_hex(16))' > "$W/password")
LB_INIT_PLAIN=(init --no-encryption) LB_INIT_ENC=(init)
say "lifeboat init: plaintext '${LB_INIT_PLAIN[*]}', encrypted '${LB_INIT_ENC[*]}' (LIFEBOAT_PASSWORD_FILE)"
export RESTIC_PASSWORD=lifeboat-bench RESTIC_REPOSITORY="$W/restic-repo" RESTIC_CACHE_DIR="$W/restic-cache"
# Borg keeps its config, security data and cache under the work folder (BORG_BASE_DIR also
# makes it ignore XDG_CONFIG_HOME / XDG_CACHE_HOME); the repository is unencrypted.
export BORG_BASE_DIR="$W/borg-base" BORG_CONFIG_DIR="$W/borg-base/config" BORG_CACHE_DIR="$W/borg-cache"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
BORG_CREATE=(borg create --compression zstd,3)

# ---------------------------------------------------------------- database
say "generating a ${SIZE_MIB} MiB SQLite database at $DB"
gen_start=$(date +%s)
python3 "$GEN" create "$DB" "$SIZE_MIB"
wal_clean
DB_SIZE=$(fsize "$DB")
DB_ROWS=$(sqlite3 "$DB" 'SELECT count(*) FROM events')
say "database: $(mib "$DB_SIZE") MiB, $DB_ROWS events, generated in $(($(date +%s) - gen_start))s"

RESTIC_VERSION=$(restic version | head -n 1)
BORG_VERSION=$(borg --version | head -n 1)
RESTIC_INIT=(restic init)
RESTIC_BACKUP=(restic backup)
RESTIC_MODE="no compression (this restic has none)"
if restic --help 2>&1 | grep -q -- '--compression'; then
    RESTIC_INIT+=(--repository-version 2)
    RESTIC_BACKUP+=(--compression auto)
    RESTIC_MODE="repository version 2, --compression auto"
fi

# ---------------------------------------------------------------- full backups
# Plaintext and encrypted full backups alternately, REPEAT times each, each into a fresh
# repository; the first pair (lb-repo, lbe-repo) is kept for the later backups and restores.
# Odd runs go plaintext first, even runs encrypted first (so neither side is always the one
# that follows the other's writes). Keys: lb_full, lbe_full (first run), lb_full_2,
# lbe_full_2, ... (the others).
LB_FULL_KEYS=() LBE_FULL_KEYS=()
for ((i = 1; i <= REPEAT; i++)); do
    sfx=$([[ $i == 1 ]] || echo "_$i")
    sides=(lb lbe)
    if ((i % 2 == 0)); then sides=(lbe lb); fi
    say "lifeboat full backups, run $i of $REPEAT: ${sides[*]}"
    for side in "${sides[@]}"; do
        repo="$W/$side-repo$sfx"
        if [[ $side == lb ]]; then
            lb_init "$repo" none
            timed "lb_full$sfx" "${LB[@]}" --repo "$repo" backup sqlite "$DB"
            LB_FULL_KEYS+=("lb_full$sfx")
        else
            lb_init "$repo" xchacha20-poly1305
            timed "lbe_full$sfx" "${LBE[@]}" --repo "$repo" backup sqlite "$DB"
            LBE_FULL_KEYS+=("lbe_full$sfx")
        fi
        STORED[${side}_full$sfx]=$(stored "$repo")
    done
    if [[ $i != 1 ]]; then rm -rf "$W/lb-repo$sfx" "$W/lbe-repo$sfx"; fi
done
LB_SNAP_FULL=$(lb_last_stored "$W/lb-repo" "${LB[@]}")
LBE_SNAP_FULL=$(lb_last_stored "$W/lbe-repo" "${LBE[@]}")

# What durability costs: the same full backup into a fresh repository under strace, which
# sums the wall time spent inside fsync/fdatasync (every pack, index file and manifest, and
# their folders, in the format's order; docs/reliability.md). strace slows the process a
# little, so this run is not timed against the others; only its fsync share is reported.
say "lifeboat: fsync cost of a full backup (strace -c)"
lb_init "$W/lb-fsync-repo" none
FSYNC_START=$(date +%s.%N)
strace -f -c -w -e trace=fsync,fdatasync -o "$W/logs/fsync.strace" \
    "$LIFEBOAT" --repo "$W/lb-fsync-repo" backup sqlite "$DB" > "$W/logs/lifeboat-fsync.out" 2>&1 \
    || die "lifeboat backup under strace failed (see $W/logs/lifeboat-fsync.out)"
FSYNC_WALL=$(awk -v a="$FSYNC_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
# strace -c's summary ends with a "total" line: "100.00  SECONDS  USECS/CALL  CALLS  ERRORS total".
FSYNC_SECS=$(awk '$NF == "total" { print $2 }' "$W/logs/fsync.strace")
FSYNC_CALLS=$(awk '$NF == "total" { print $4 }' "$W/logs/fsync.strace")
# strace stops the process at every system call, so the traced run is slower than the
# timed one: the share is taken of the untraced full backup's time.
FSYNC_SHARE=$(awk -v f="${FSYNC_SECS:-0}" -v w="${SECS[lb_full]}" 'BEGIN { printf "%.1f", 100 * f / w }')
rm -rf "$W/lb-fsync-repo"

say "restic ($RESTIC_MODE): init and full backup"
"${RESTIC_INIT[@]}" > "$W/logs/restic-init.out" 2>&1 || {
    cat "$W/logs/restic-init.out" >&2
    die "restic init failed"
}
timed restic_full "${RESTIC_BACKUP[@]}" "$DB"
STORED[restic_full]=$(stored "$W/restic-repo")

say "borg (unencrypted, --compression zstd,3): init and full backup"
borg init --encryption=none "$W/borg-repo" > "$W/logs/borg-init.out" 2>&1 || {
    cat "$W/logs/borg-init.out" >&2
    die "borg init failed"
}
timed borg_full "${BORG_CREATE[@]}" "$W/borg-repo::full" "$DB"
STORED[borg_full]=$(stored "$W/borg-repo")

say "runbook: sqlite3 .backup, gzip, sha256sum"
RUNBOOK='sqlite3 "$1" ".backup \"$2.db\"" && gzip -c "$2.db" > "$2.db.gz" && sha256sum "$2.db.gz"'
timed rb_full bash -c "$RUNBOOK" _ "$DB" "$W/copy"
STORED[rb_full]=$(fsize "$W/copy.db.gz")

# ---------------------------------------------------------------- append 1%, second backups
say "appending 1% new rows"
python3 "$GEN" append "$DB"
wal_clean
DB_SIZE2=$(fsize "$DB")
DB_ROWS2=$(sqlite3 "$DB" 'SELECT count(*) FROM events')
SOURCE_ROWS=$(sqlite3 "$DB" 'SELECT count(*), max(id), max(at) FROM events; SELECT count(*) FROM users')
say "database: $(mib "$DB_SIZE2") MiB, $DB_ROWS2 events (+$((DB_ROWS2 - DB_ROWS)))"

before=$(stored "$W/lb-repo")
timed lb_second "${LB[@]}" --repo "$W/lb-repo" backup sqlite "$DB"
STORED[lb_second]=$(($(stored "$W/lb-repo") - before))
LB_SNAP_SECOND=$(lb_last_stored "$W/lb-repo" "${LB[@]}")

before=$(stored "$W/lbe-repo")
timed lbe_second "${LBE[@]}" --repo "$W/lbe-repo" backup sqlite "$DB"
STORED[lbe_second]=$(($(stored "$W/lbe-repo") - before))

before=$(stored "$W/restic-repo")
timed restic_second "${RESTIC_BACKUP[@]}" "$DB"
STORED[restic_second]=$(($(stored "$W/restic-repo") - before))

before=$(stored "$W/borg-repo")
timed borg_second "${BORG_CREATE[@]}" "$W/borg-repo::second" "$DB"
STORED[borg_second]=$(($(stored "$W/borg-repo") - before))

timed rb_second bash -c "$RUNBOOK" _ "$DB" "$W/copy-2"
STORED[rb_second]=$(fsize "$W/copy-2.db.gz")

# ---------------------------------------------------------------- update 1%, third backups
say "updating 1% of the rows, spread over the table"
python3 "$GEN" update "$DB"
wal_clean

before=$(stored "$W/lb-repo")
timed lb_third "${LB[@]}" --repo "$W/lb-repo" backup sqlite "$DB"
STORED[lb_third]=$(($(stored "$W/lb-repo") - before))

before=$(stored "$W/lbe-repo")
timed lbe_third "${LBE[@]}" --repo "$W/lbe-repo" backup sqlite "$DB"
STORED[lbe_third]=$(($(stored "$W/lbe-repo") - before))

before=$(stored "$W/restic-repo")
timed restic_third "${RESTIC_BACKUP[@]}" "$DB"
STORED[restic_third]=$(($(stored "$W/restic-repo") - before))

before=$(stored "$W/borg-repo")
timed borg_third "${BORG_CREATE[@]}" "$W/borg-repo::third" "$DB"
STORED[borg_third]=$(($(stored "$W/borg-repo") - before))

# ---------------------------------------------------------------- restores
say "restores"
# Plaintext and encrypted restores alternately, REPEAT times each, odd runs plaintext first,
# even runs encrypted first, every restored file checked. Both restored files are removed
# before each restore: a restore that ran while the other side's freshly written 505 MiB
# file was still there spent up to twice the system time in write() (seen on the shared
# 2-core machine, for whichever side came second). Keys: lb_restore, lbe_restore (first
# run), lb_restore_2, lbe_restore_2, ...
LB_RESTORE_KEYS=() LBE_RESTORE_KEYS=()
for ((i = 1; i <= REPEAT; i++)); do
    sfx=$([[ $i == 1 ]] || echo "_$i")
    sides=(lb lbe)
    if ((i % 2 == 0)); then sides=(lbe lb); fi
    for side in "${sides[@]}"; do
        if [[ $side == lb ]]; then cmd=("${LB[@]}"); else cmd=("${LBE[@]}"); fi
        out="$W/restored-$side.db"
        rm -f "$W"/restored-lb.db "$W"/restored-lb.db-* "$W"/restored-lbe.db "$W"/restored-lbe.db-*
        warm "$W/$side-repo"
        timed "${side}_restore$sfx" "${cmd[@]}" --repo "$W/$side-repo" restore latest --to "$out"
        check_restored "$out"
        if [[ $side == lb ]]; then LB_RESTORE_KEYS+=("lb_restore$sfx"); else
            LBE_RESTORE_KEYS+=("lbe_restore$sfx"); fi
    done
done

rm -f "$W"/restored-lb.db "$W"/restored-lb.db-* "$W"/restored-lbe.db "$W"/restored-lbe.db-*

# The fixed cost of a command: `snapshots` opens the repository (for the encrypted one,
# derives the key from the password) and lists; alternately, REPEAT times each.
LB_OPEN_KEYS=() LBE_OPEN_KEYS=()
for ((i = 1; i <= REPEAT; i++)); do
    timed "lb_open_$i" "${LB[@]}" --repo "$W/lb-repo" snapshots
    timed "lbe_open_$i" "${LBE[@]}" --repo "$W/lbe-repo" snapshots
    LB_OPEN_KEYS+=("lb_open_$i") LBE_OPEN_KEYS+=("lbe_open_$i")
done

rm -rf "$W/restic-restore"
warm "$W/restic-repo"
timed restic_restore restic restore latest --target "$W/restic-restore"
check_restored "$W/restic-restore$DB"

# borg extract writes the archived (relative) path under the current folder.
rm -rf "$W/borg-restore"
mkdir -p "$W/borg-restore"
warm "$W/borg-repo"
pushd "$W/borg-restore" > /dev/null
timed borg_restore borg extract "$W/borg-repo::third"
popd > /dev/null
check_restored "$W/borg-restore/${DB#/}"

rm -f "$W/restored.db"
warm "$W/copy-2.db.gz"
timed rb_restore bash -c 'gunzip -c "$1" > "$2"' _ "$W/copy-2.db.gz" "$W/restored.db"
check_restored "$W/restored.db"

# ---------------------------------------------------------------- report

LB_RSS_MAX=0
for key in lb_full lb_second lb_third lb_restore; do
    if ((RSS[$key] > LB_RSS_MAX)); then LB_RSS_MAX=${RSS[$key]}; fi
done
LBE_RSS_MAX=0
for key in "${LBE_FULL_KEYS[@]}" lbe_second lbe_third "${LBE_RESTORE_KEYS[@]}"; do
    if ((RSS[$key] > LBE_RSS_MAX)); then LBE_RSS_MAX=${RSS[$key]}; fi
done

# Encrypted / plaintext: medians over the alternated runs.
E_FULL_P=$(median "${LB_FULL_KEYS[@]}") E_FULL_E=$(median "${LBE_FULL_KEYS[@]}")
E_REST_P=$(median "${LB_RESTORE_KEYS[@]}") E_REST_E=$(median "${LBE_RESTORE_KEYS[@]}")
E_OPEN_P=$(median "${LB_OPEN_KEYS[@]}") E_OPEN_E=$(median "${LBE_OPEN_KEYS[@]}")
C_FULL_P=$(cpu_median "${LB_FULL_KEYS[@]}") C_FULL_E=$(cpu_median "${LBE_FULL_KEYS[@]}")
C_REST_P=$(cpu_median "${LB_RESTORE_KEYS[@]}") C_REST_E=$(cpu_median "${LBE_RESTORE_KEYS[@]}")
C_OPEN_P=$(cpu_median "${LB_OPEN_KEYS[@]}") C_OPEN_E=$(cpu_median "${LBE_OPEN_KEYS[@]}")
E_STOR_P=$(stored_median "${LB_FULL_KEYS[@]}") E_STOR_E=$(stored_median "${LBE_FULL_KEYS[@]}")
V_FULL=$(verdict "$E_FULL_E" "$E_FULL_P" "<=" 1.10)
V_REST=$(verdict "$E_REST_E" "$E_REST_P" "<=" 1.10)
V_STOR=$(verdict "$E_STOR_E" "$E_STOR_P" "<=" 1.01)

R_TIME=$(ratio "${SECS[lb_full]}" "${SECS[restic_full]}")
R_STORED=$(ratio "${STORED[lb_full]}" "${STORED[restic_full]}" 3)
P_SECOND_STORED=$(pct "${STORED[lb_second]}" "$DB_SIZE2")
P_SECOND_SNAP=$(pct "$LB_SNAP_SECOND" "$DB_SIZE2")
P_SECOND_TIME=$(pct "${SECS[lb_second]}" "${SECS[lb_full]}")
R_RESTORE=$(ratio "${SECS[lb_restore]}" "${SECS[restic_restore]}")
R_BORG_TIME=$(ratio "${SECS[lb_full]}" "${SECS[borg_full]}")
R_BORG_STORED=$(ratio "${STORED[lb_full]}" "${STORED[borg_full]}" 3)
R_BORG_RESTORE=$(ratio "${SECS[lb_restore]}" "${SECS[borg_restore]}")
RSS_MAX_MIB=$(kib2mib "$LB_RSS_MAX")

ROWS_T=(
    "lifeboat;full backup;lb_full"
    "lifeboat, encrypted;full backup;lbe_full"
    "restic;full backup;restic_full"
    "borg;full backup;borg_full"
    "runbook (.backup | gzip);full backup;rb_full"
    "lifeboat;second backup (+1% rows);lb_second"
    "lifeboat, encrypted;second backup (+1% rows);lbe_second"
    "restic;second backup (+1% rows);restic_second"
    "borg;second backup (+1% rows);borg_second"
    "runbook (.backup | gzip);second backup (+1% rows);rb_second"
    "lifeboat;third backup (1% of rows updated);lb_third"
    "lifeboat, encrypted;third backup (1% of rows updated);lbe_third"
    "restic;third backup (1% of rows updated);restic_third"
    "borg;third backup (1% of rows updated);borg_third"
    "lifeboat;restore;lb_restore"
    "lifeboat, encrypted;restore;lbe_restore"
    "restic;restore;restic_restore"
    "borg;restore;borg_restore"
    "runbook (.backup | gzip);restore (gunzip);rb_restore"
)
RATIOS=(
    "full backup time, lifeboat / restic;${R_TIME}x;<= 0.5x;$(verdict "${SECS[lb_full]}" "${SECS[restic_full]}" "<=" 0.5)"
    "stored after full backup, lifeboat / restic;${R_STORED}x;<= 1.0x;$(verdict "${STORED[lb_full]}" "${STORED[restic_full]}" "<=" 1)"
    "second backup stores, % of DB size (repo growth);${P_SECOND_STORED}%;< 5%;$(verdict "${STORED[lb_second]}" "$DB_SIZE2" "<" 5 100)"
    "second backup time, % of lifeboat full backup;${P_SECOND_TIME}%;<= 20%;$(verdict "${SECS[lb_second]}" "${SECS[lb_full]}" "<=" 20 100)"
    "restore time, lifeboat / restic;${R_RESTORE}x;<= 1.0x;$(verdict "${SECS[lb_restore]}" "${SECS[restic_restore]}" "<=" 1)"
    "lifeboat peak RSS, max over its runs;${RSS_MAX_MIB} MiB;< 128 MiB;$(verdict "$LB_RSS_MAX" 1024 "<" 128)"
    "third backup (1% of rows updated) stores, % of DB size: lifeboat;$(pct "${STORED[lb_third]}" "$DB_SIZE2")%;-;info"
    "third backup (1% of rows updated) stores, % of DB size: restic;$(pct "${STORED[restic_third]}" "$DB_SIZE2")%;-;info"
    "third backup (1% of rows updated) stores, % of DB size: borg;$(pct "${STORED[borg_third]}" "$DB_SIZE2")%;-;info"
    "full backup time, lifeboat / borg;${R_BORG_TIME}x;-;info"
    "stored after full backup, lifeboat / borg;${R_BORG_STORED}x;-;info"
    "restore time, lifeboat / borg;${R_BORG_RESTORE}x;-;info"
    "full backup time, encrypted / plaintext lifeboat (median of $REPEAT alternated);$(ratio "$E_FULL_E" "$E_FULL_P")x;<= 1.10x;$V_FULL"
    "restore time, encrypted / plaintext lifeboat (median of $REPEAT alternated);$(ratio "$E_REST_E" "$E_REST_P")x;<= 1.10x;$V_REST"
    "stored after full backup, encrypted / plaintext lifeboat;$(ratio "$E_STOR_E" "$E_STOR_P" 4)x;<= 1.01x;$V_STOR"
    "lifeboat encrypted peak RSS, max over its runs;$(kib2mib "$LBE_RSS_MAX") MiB;< 128 MiB;$(verdict "$LBE_RSS_MAX" 1024 "<" 128)"
    "second backup stores, encrypted / plaintext lifeboat;$(ratio "${STORED[lbe_second]}" "${STORED[lb_second]}" 4)x;-;info"
    "second backup time, encrypted / plaintext lifeboat (one run each);$(ratio "${SECS[lbe_second]}" "${SECS[lb_second]}")x;-;info"
    "third backup time, encrypted / plaintext lifeboat (one run each);$(ratio "${SECS[lbe_third]}" "${SECS[lb_third]}")x;-;info"
    "open and list (snapshots), encrypted - plaintext (median of $REPEAT);$(awk -v e="$E_OPEN_E" -v p="$E_OPEN_P" 'BEGIN { printf "%.2f s", e - p }');-;info"
    "fsync share of a lifeboat full backup (${FSYNC_CALLS} calls, ${FSYNC_SECS} s in fsync, ${FSYNC_WALL} s traced);${FSYNC_SHARE}%;-;info"
)

LB_VERSION=$("$LIFEBOAT" --version 2> /dev/null || echo lifeboat)
GIT_REV=$(git -C "$ROOT" describe --always --dirty 2> /dev/null || echo unknown)
SETUP="database $(mib "$DB_SIZE") MiB, $DB_ROWS events ($(mib "$DB_SIZE2") MiB, $DB_ROWS2 events after the append); $(nproc) cores; $LB_VERSION ($GIT_REV); $RESTIC_VERSION, $RESTIC_MODE; $BORG_VERSION, unencrypted, zstd,3; $(sqlite3 --version | cut -d' ' -f1-2 | sed 's/^/sqlite3 /'); $(gzip --version | head -n 1)"
NOTES="Stored = repository growth (sum of file sizes) for lifeboat, restic and borg, size of the .gz for the runbook. Lifeboat's own \`stored\`: $(mib "$LB_SNAP_FULL") MiB (full), $(mib "$LB_SNAP_SECOND") MiB = ${P_SECOND_SNAP}% of the DB (second)."

NOTES="$NOTES The \"lifeboat\" and \"lifeboat, encrypted\" rows are the first of $REPEAT alternated runs of the full backup and the restore; medians below. Encrypted lifeboat's own \`stored\`: $(mib "$LBE_SNAP_FULL") MiB (full)."

# SIDE: "measure;plaintext;encrypted;ratio;target;result", printed after the report.
SIDE=(
    "full backup, s;$E_FULL_P ($(range "${LB_FULL_KEYS[@]}"));$E_FULL_E ($(range "${LBE_FULL_KEYS[@]}"));$(ratio "$E_FULL_E" "$E_FULL_P")x;<= 1.10x;$V_FULL"
    "restore, s;$E_REST_P ($(range "${LB_RESTORE_KEYS[@]}"));$E_REST_E ($(range "${LBE_RESTORE_KEYS[@]}"));$(ratio "$E_REST_E" "$E_REST_P")x;<= 1.10x;$V_REST"
    "stored after full backup, bytes;$E_STOR_P ($(stored_range "${LB_FULL_KEYS[@]}"));$E_STOR_E ($(stored_range "${LBE_FULL_KEYS[@]}"));$(ratio "$E_STOR_E" "$E_STOR_P" 4)x;<= 1.01x;$V_STOR"
    "full backup CPU (user + system), s;$C_FULL_P ($(cpu_range "${LB_FULL_KEYS[@]}"));$C_FULL_E ($(cpu_range "${LBE_FULL_KEYS[@]}"));$(ratio "$C_FULL_E" "$C_FULL_P")x;-;info"
    "restore CPU (user + system), s;$C_REST_P ($(cpu_range "${LB_RESTORE_KEYS[@]}"));$C_REST_E ($(cpu_range "${LBE_RESTORE_KEYS[@]}"));$(ratio "$C_REST_E" "$C_REST_P")x;-;info"
    "open and list (snapshots) CPU, s;$C_OPEN_P ($(cpu_range "${LB_OPEN_KEYS[@]}"));$C_OPEN_E ($(cpu_range "${LBE_OPEN_KEYS[@]}"));+$(awk -v e="$C_OPEN_E" -v p="$C_OPEN_P" 'BEGIN { printf "%.2f s", e - p }');-;info"
    "open and list (snapshots), s;$E_OPEN_P ($(range "${LB_OPEN_KEYS[@]}"));$E_OPEN_E ($(range "${LBE_OPEN_KEYS[@]}"));+$(awk -v e="$E_OPEN_E" -v p="$E_OPEN_P" 'BEGIN { printf "%.2f s", e - p }');-;info"
    "second backup (one run), s;${SECS[lb_second]};${SECS[lbe_second]};$(ratio "${SECS[lbe_second]}" "${SECS[lb_second]}")x;-;info"
    "second backup stores, bytes;${STORED[lb_second]};${STORED[lbe_second]};$(ratio "${STORED[lbe_second]}" "${STORED[lb_second]}" 4)x;-;info"
    "third backup (one run), s;${SECS[lb_third]};${SECS[lbe_third]};$(ratio "${SECS[lbe_third]}" "${SECS[lb_third]}")x;-;info"
    "third backup stores, bytes;${STORED[lb_third]};${STORED[lbe_third]};$(ratio "${STORED[lbe_third]}" "${STORED[lb_third]}" 4)x;-;info"
)
SIDE_TITLE="Encrypted vs plaintext lifeboat: median (min-max) of $REPEAT runs, alternated (plaintext, encrypted), (encrypted, plaintext), ..."

report "SQLite benchmark" "$SETUP" "$NOTES"

{
    echo "$SIDE_TITLE"
    echo
    printf '%-34s %-28s %-28s %10s %10s %7s\n' Measure Plaintext Encrypted Enc/plain Target Result
    for row in "${SIDE[@]}"; do
        IFS=';' read -r what p e r t v <<< "$row"
        printf '%-34s %-28s %-28s %10s %10s %7s\n' "$what" "$p" "$e" "$r" "$t" "$v"
    done
    echo
}
{
    echo
    echo "$SIDE_TITLE:"
    echo
    echo "| Measure | Plaintext | Encrypted | Encrypted / plaintext | Target | Result |"
    echo "|---|---:|---:|---:|---:|:---:|"
    for row in "${SIDE[@]}"; do
        IFS=';' read -r what p e r t v <<< "$row"
        echo "| $(md "$what") | $(md "$p") | $(md "$e") | $(md "$r") | $(md "$t") | $v |"
    done
} >> "$W/results.md"

say "markdown written to $W/results.md"
