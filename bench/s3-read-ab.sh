#!/usr/bin/env bash
# bench/s3-read-ab.sh: how many range requests a restore keeps in flight, several counts
# against each other, interleaved in one run (issue #20: the read engine's default, which
# follows the round trip the open measures).
#
# One SQLite database (SIZE_MIB, default 300; bench/gen_sqlite.py) is backed up once into an
# encrypted repository on s3s-fs; then, for each round-trip time in RTTS (ms, default "20";
# a latency proxy each, bench/lib.sh's start_latency_proxy), it is restored ROUNDS times (default 5) with
# LIFEBOAT_READ_CONCURRENCY set to each of COUNTS in turn (default "16 24"; "auto" leaves it
# unset, so the default rule chooses), each to a fresh path. The median wall seconds of each
# count are printed with their ratio to the first count's. Every restore must pass (lifeboat
# checks integrity and counts).
#
#   bash bench/s3-read-ab.sh
#   RTTS="0 20 100" COUNTS="auto 8 16 24 32" ROUNDS=3 bash bench/s3-read-ab.sh
# Needs what bench/s3.sh needs, without restic. Writes under bench/work/s3-ab (wiped). The
# bucket is `abtest`: s3s-fs takes no bucket name shorter than 3 characters.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MIB="${SIZE_MIB:-300}"
RTTS="${RTTS:-${RTT:-20}}"
ROUNDS="${ROUNDS:-5}"
COUNTS="${COUNTS:-16 24}"
for v in SIZE_MIB ROUNDS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive whole number, got '${!v}'"
done
for rtt in $RTTS; do
    [[ "$rtt" =~ ^(0|[1-9][0-9]*)$ ]] || die "RTTS must hold whole milliseconds, got '$rtt'"
done
for n in $COUNTS; do
    [[ "$n" =~ ^([1-9][0-9]*|auto)$ ]] || die "COUNTS must hold positive whole numbers or auto, got '$n'"
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="$ROOT/bench/work/s3-ab"
LIFEBOAT="${CARGO_TARGET_DIR:-$ROOT/target}/release/lifeboat"
S3S_FS="${S3S_FS:-$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")}"
require sqlite3=sqlite3 python3=python3 /usr/bin/time=time
[[ -x "$S3S_FS" ]] || die "missing: s3s-fs (cargo install s3s-fs, or S3S_FS=PATH)"
build_release

rm -rf "$W"
mkdir -p "$W/logs" "$W/s3root/abtest"
PIDS=()
trap 'kill "${PIDS[@]}" 2> /dev/null || true' EXIT

start_s3s_fs "$W/s3root" "$W/logs/s3s-fs.log"
PIDS+=("$S3_PID")
say "generating a ${SIZE_MIB} MiB SQLite database"
python3 "$ROOT/bench/gen_sqlite.py" create "$W/bench.db" "$SIZE_MIB"
printf 'ab bench password\n' > "$W/password"
lb() {
    env "AWS_ENDPOINT=http://127.0.0.1:$1" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
        "LIFEBOAT_PASSWORD_FILE=$W/password" "$LIFEBOAT" --repo s3://abtest/repo "${@:2}"
}
lb "$S3_PORT" init > /dev/null
lb "$S3_PORT" backup sqlite "$W/bench.db" --name bench > /dev/null

median() { tr ' ' '\n' <<< "$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
SUMMARY=()
for rtt in $RTTS; do
    start_latency_proxy "$S3_PORT" "$rtt" "$W/logs/proxy-$rtt.log"
    proxy_pid=$PROXY_PID
    PIDS+=("$proxy_pid")
    declare -A TIMES=()
    for ((round = 1; round <= ROUNDS; round++)); do
        for n in $COUNTS; do
            out="$W/restored-$n-$round.db"
            start=$(date +%s.%N)
            if [[ "$n" == auto ]]; then
                (unset LIFEBOAT_READ_CONCURRENCY; lb "$PROXY_PORT" restore latest --name bench --to "$out" > /dev/null)
            else
                LIFEBOAT_READ_CONCURRENCY=$n lb "$PROXY_PORT" restore latest --name bench --to "$out" > /dev/null
            fi
            secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
            TIMES[$n]+="$secs "
            rm -f "$out"
            say "${rtt} ms, round $round, $n in flight: ${secs}s"
        done
    done
    first=""
    SUMMARY+=("restore of ${SIZE_MIB} MiB at ${rtt} ms, ${ROUNDS} rounds interleaved:")
    for n in $COUNTS; do
        m=$(median "${TIMES[$n]}")
        [[ -n "$first" ]] || first=$m
        SUMMARY+=("  $n in flight: ${TIMES[$n]}-> median ${m}s ($(ratio "$m" "$first")x the first)")
    done
    kill "$proxy_pid" 2> /dev/null || true
    unset TIMES
done
echo
echo "lifeboat $(git -C "$ROOT" rev-parse --short HEAD):"
printf '%s\n' "${SUMMARY[@]}"
