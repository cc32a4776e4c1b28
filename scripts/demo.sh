#!/usr/bin/env bash
# The main job on the embedded default: a local repository folder and a SQLite database.
# Builds lifeboat, makes a sample database, backs it up twice into an encrypted repository
# (the second time stores only what changed), lists, verifies every byte, and restores it to
# a new file. The password is a random one written to demo/lifeboat-password, so nothing is
# asked.
#
#   bash scripts/demo.sh          # everything lands in ./demo/
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v sqlite3 >/dev/null; then
  echo "==> installing sqlite3 (apt)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq sqlite3 >/dev/null; fi
fi

echo "==> building lifeboat (release)"
cargo build --release --quiet -p lifeboat-cli
lifeboat=${CARGO_TARGET_DIR:-$PWD/target}/release/lifeboat

rm -rf demo && mkdir demo && cd demo
export LIFEBOAT_REPO=$PWD/lifeboat-repo

# Repositories are encrypted by default: a random password in a file only we may read.
(umask 077 && head -c 32 /dev/urandom | base64 > lifeboat-password)
export LIFEBOAT_PASSWORD_FILE=$PWD/lifeboat-password
echo "==> the repository password is in demo/lifeboat-password: without it these backups cannot be read"

echo "==> a sample database: demo/app.db"
sqlite3 app.db <<'SQL'
PRAGMA journal_mode=WAL;
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer TEXT, total REAL, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
INSERT INTO orders(customer, total, note)
SELECT 'customer-' || (i % 977), i * 1.25, 'order note ' || hex(randomblob(40)) FROM n;
SQL

set -x
"$lifeboat" init
"$lifeboat" backup sqlite app.db --tag env=demo
sqlite3 app.db "INSERT INTO orders(customer, total, note) VALUES ('late customer', 9.99, 'after the first backup');"
"$lifeboat" backup sqlite app.db --tag env=demo
"$lifeboat" snapshots
"$lifeboat" verify --all --read-data
"$lifeboat" restore latest --name app --to restored.db
sqlite3 restored.db "PRAGMA integrity_check; SELECT count(*) FROM orders;"
"$lifeboat" restore latest --name app --to app.db --force --dry-run
