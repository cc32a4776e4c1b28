#!/usr/bin/env bash
# bench/binaries.sh: what a user installs and waits for before any work. The release
# binaries' sizes, their start-up time (`--version`), and `snapshots` on an empty local
# repository (plaintext and encrypted: opening an encrypted one derives its key from the
# password), side by side with restic (always encrypted) and borg (plaintext) doing the same.
#
#   bash bench/binaries.sh          # RUNS=50 by default
#
# It builds with `cargo build --release --workspace --bins` and reads
# ${CARGO_TARGET_DIR:-target}/release. Times are the mean wall time of RUNS runs, in ms.
# Writes bench/work/binaries/results.md. Targets (issue #22): each binary under 30 MB.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS="${RUNS:-50}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="$ROOT/bench/work/binaries"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
LIFEBOAT="$BIN/lifeboat"

require restic=restic borg=borgbackup python3=python3
build_release
rm -rf "$W"
mkdir -p "$W"

# mean_ms CMD...: the mean wall time of RUNS runs of CMD, in milliseconds.
mean_ms() {
    python3 - "$RUNS" "$@" <<'PY'
import subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
start = time.perf_counter()
for _ in range(runs):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"{(time.perf_counter() - start) * 1000 / runs:.1f}")
PY
}

export RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
"$LIFEBOAT" --repo "$W/lifeboat" init --no-encryption > /dev/null
LIFEBOAT_PASSWORD=bench "$LIFEBOAT" --repo "$W/lifeboat-enc" init > /dev/null
restic init --repo "$W/restic" > /dev/null 2>&1
borg init --encryption=none "$W/borg" > /dev/null 2>&1

size() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1000000 }'; }
lb_size=$(size "$LIFEBOAT")
lbd_size=$(size "$BIN/lifeboatd")
restic_size=$(size "$(command -v restic)")
lb_ver=$(mean_ms "$LIFEBOAT" --version)
lbd_ver=$(mean_ms "$BIN/lifeboatd" --version)
restic_ver=$(mean_ms restic version)
borg_ver=$(mean_ms borg --version)
lb_snaps=$(mean_ms "$LIFEBOAT" --repo "$W/lifeboat" snapshots)
lb_enc_snaps=$(LIFEBOAT_PASSWORD=bench mean_ms "$LIFEBOAT" --repo "$W/lifeboat-enc" snapshots)
restic_snaps=$(mean_ms restic --repo "$W/restic" snapshots --no-lock)
borg_snaps=$(mean_ms borg list "$W/borg")

ok30() { awk -v s="$1" 'BEGIN { print (s < 30 ? "ok" : "MISS") }'; }
{
    echo "## Release binaries"
    echo
    echo "$(date -u +%Y-%m-%d): mean of $RUNS runs each, warm; \`bash bench/binaries.sh\`."
    echo
    echo "| | lifeboat | lifeboatd | restic | borg |"
    echo "|---|---:|---:|---:|---:|"
    echo "| size (MB) | $lb_size | $lbd_size | $restic_size | (Python) |"
    echo "| \`--version\` (ms) | $lb_ver | $lbd_ver | $restic_ver | $borg_ver |"
    echo "| \`snapshots\` of an empty local repository, plaintext (ms) | $lb_snaps | | | $borg_snaps |"
    echo "| \`snapshots\` of an empty local repository, encrypted (ms) | $lb_enc_snaps | | $restic_snaps | |"
    echo
    echo "Size target (under 30 MB each): lifeboat $(ok30 "$lb_size"), lifeboatd $(ok30 "$lbd_size")."
} | tee "$W/results.md"
