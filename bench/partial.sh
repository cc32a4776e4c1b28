#!/usr/bin/env bash
# bench/partial.sh: one tenant's rows back (`restore --where`) against a full restore, and
# against the runbooks' by-hand way, on one multi-tenant SQLite database.
#
# The database (bench/gen_tenants.py; SIZE_MIB MiB, default 500; TENANTS tenants, default
# 1,000): tenants <- users <- orders <- order_lines with foreign keys and indexes, orders
# spread over the tenants at random. After the backup, one tenant (TENANT) loses every order
# and line, and another tenant's totals change. Then, each from a fresh copy of that damaged
# database and warm:
#   1. full restore:        `lifeboat restore latest --to NEW` (a new path: write, sync,
#                           integrity_check and row counts);
#   2. full restore, live:  `lifeboat restore latest --to LIVE --force` (a safety snapshot
#                           of the live file first, then the same checks and the copy in);
#   3. partial, dry run:    `restore --where "tenant_id = 'TENANT'" --dry-run`;
#   4. partial:             `restore --where "tenant_id = 'TENANT'"` (insert; safety
#                           snapshot, one transaction);
#   5. the runbook way:     gunzip the nightly `.backup` into a scratch file, then
#                           `sqlite3 LIVE` ATTACHing it and INSERT OR IGNORE the tenant's
#                           orders and their lines, by hand.
# The partial restore must bring back exactly the tenant's rows and leave the other tenant's
# changes as they are, or the script fails. Prints the ratios (target: partial <= 0.20x the
# full restore) and writes them as markdown to bench/work/partial/results.md.
#
# Run from anywhere in the repository:
#   bash bench/partial.sh                 # 500 MiB, 1,000 tenants
#   SIZE_MIB=100 bash bench/partial.sh    # quick run
# It builds with `cargo build --release --workspace --bins` and runs
# ${CARGO_TARGET_DIR:-target}/release/lifeboat.
# Needs: cargo, python3, sqlite3, gzip, GNU time (as root, missing Debian packages are
# installed with apt-get). Everything is written under bench/work/partial, wiped at the start.

set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MIB="${SIZE_MIB:-500}"
TENANTS="${TENANTS:-1000}"
TENANT="${TENANT:-tenant-0421}"
[[ "$SIZE_MIB" =~ ^[1-9][0-9]*$ ]] || die "SIZE_MIB must be a positive whole number, got '$SIZE_MIB'"
[[ "$TENANTS" =~ ^[1-9][0-9]*$ ]] || die "TENANTS must be a positive whole number, got '$TENANTS'"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="$ROOT/bench/work/partial"
DB="$W/app.db"
LIFEBOAT="${CARGO_TARGET_DIR:-$ROOT/target}/release/lifeboat"

require sqlite3=sqlite3 gzip=gzip gunzip=gzip python3=python3 /usr/bin/time=time
command -v cargo > /dev/null 2>&1 || die "missing: cargo (Rust's toolchain, from rustup)"

build_release
say "work folder $W (wiped)"
rm -rf "$W"
mkdir -p "$W/logs"

say "making a ${SIZE_MIB} MiB database of ${TENANTS} tenants"
python3 "$ROOT/bench/gen_tenants.py" "$DB" "$SIZE_MIB" "$TENANTS" >&2
REPO="$W/repo"
"$LIFEBOAT" --repo "$REPO" init --no-encryption > /dev/null
"$LIFEBOAT" --repo "$REPO" backup sqlite "$DB" --name app > /dev/null
sqlite3 "$DB" ".backup '$W/nightly.db'" && gzip -1 "$W/nightly.db"

q() { sqlite3 "$1" "$2"; }
tenant_rows() {
    q "$1" "SELECT count(*), sum(o.total), sum(length(o.note)), (SELECT count(*) FROM order_lines l JOIN orders o2 ON o2.id = l.order_id WHERE o2.tenant_id = '$TENANT') FROM orders o WHERE o.tenant_id = '$TENANT'"
}
WANT=$(tenant_rows "$DB")
OTHER="tenant-0007"
[[ "$OTHER" != "$TENANT" ]] || OTHER="tenant-0008"
sqlite3 "$DB" "PRAGMA foreign_keys = ON; DELETE FROM orders WHERE tenant_id = '$TENANT'; UPDATE orders SET total = 0 WHERE tenant_id = '$OTHER';"
sqlite3 "$DB" "PRAGMA wal_checkpoint(TRUNCATE)" > /dev/null
[[ "$(tenant_rows "$DB")" != "$WANT" ]] || die "the damage changed nothing"
OTHER_AFTER=$(q "$DB" "SELECT sum(total) FROM orders WHERE tenant_id = '$OTHER'")
cp "$DB" "$W/damaged.db"

fresh() { rm -f "$1" "$1-wal" "$1-shm"; cp "$W/damaged.db" "$1"; }
before_timed() { warm "$REPO" "$W/damaged.db"; }

rm -f "$W/full.db"
timed full "$LIFEBOAT" --repo "$REPO" restore latest --name app --to "$W/full.db"
fresh "$W/live.db"
timed full_live "$LIFEBOAT" --repo "$REPO" restore latest --name app --to "$W/live.db" --force
fresh "$W/partial.db"
timed dry "$LIFEBOAT" --repo "$REPO" restore latest --name app --to "$W/partial.db" --where "tenant_id = '$TENANT'" --dry-run
timed partial "$LIFEBOAT" --repo "$REPO" restore latest --name app --to "$W/partial.db" --where "tenant_id = '$TENANT'"
[[ "$(tenant_rows "$W/partial.db")" == "$WANT" ]] || die "the partial restore did not bring back $TENANT's rows"
[[ "$(q "$W/partial.db" "SELECT sum(total) FROM orders WHERE tenant_id = '$OTHER'")" == "$OTHER_AFTER" ]] ||
    die "the partial restore changed $OTHER's rows"
[[ "$(q "$W/partial.db" "PRAGMA integrity_check")" == ok ]] || die "the partial restore left a damaged database"

fresh "$W/runbook.db"
cat > "$W/runbook.sh" << SH
set -e
gunzip -c "$W/nightly.db.gz" > "$W/scratch.db"
sqlite3 "$W/runbook.db" "ATTACH '$W/scratch.db' AS s;
  INSERT OR IGNORE INTO orders SELECT * FROM s.orders WHERE tenant_id = '$TENANT';
  INSERT OR IGNORE INTO order_lines SELECT * FROM s.order_lines
    WHERE order_id IN (SELECT id FROM s.orders WHERE tenant_id = '$TENANT');"
rm -f "$W/scratch.db"
SH
timed runbook bash "$W/runbook.sh"
[[ "$(tenant_rows "$W/runbook.db")" == "$WANT" ]] || die "the runbook way did not bring back $TENANT's rows"

ROWS_T=(
    "lifeboat;full restore, new path;full"
    "lifeboat;full restore over the live file;full_live"
    "lifeboat;--where, dry run;dry"
    "lifeboat;--where (insert);partial"
    "runbook (gunzip + ATTACH + INSERT);one tenant by hand;runbook"
)
RATIOS=(
    "partial / full restore (new path);$(ratio "${SECS[partial]}" "${SECS[full]}");<= 0.20;$(verdict "${SECS[partial]}" "${SECS[full]}" "<=" 0.20)"
    "partial / full restore over the live file;$(ratio "${SECS[partial]}" "${SECS[full_live]}");info;info"
    "partial / runbook way;$(ratio "${SECS[partial]}" "${SECS[runbook]}");info;info"
    "dry run / full restore (new path);$(ratio "${SECS[dry]}" "${SECS[full]}");info;info"
)
report "Partial restore (SQLite, one tenant)" \
    "$(mib "$(fsize "$W/damaged.db")") MiB database, $TENANTS tenants, tenant $TENANT ($WANT: orders, total, note bytes, lines)" \
    "Each command ran once, warm, on a fresh copy of the damaged database."
cat "$W/results.md" > /dev/null
