# Helpers shared by the benchmark scripts (sourced, not run). A script may define
# `before_timed` to warm its data before every timed command.

declare -A SECS RSS STORED CPU

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# require THING=PACKAGE...: each THING (a command, or a path that must exist) is there, or
# its Debian PACKAGE is installed with apt-get when running as root; dies naming what is
# still missing otherwise. The anchors of every benchmark come from Debian's packages.
require() {
    local spec thing missing=() packages=()
    for spec in "$@"; do
        thing="${spec%%=*}"
        command -v "$thing" > /dev/null 2>&1 || [[ -e "$thing" ]] ||
            { missing+=("$thing"); packages+=("${spec#*=}"); }
    done
    ((${#missing[@]} == 0)) && return 0
    if [[ "$(id -u)" == 0 ]] && command -v apt-get > /dev/null 2>&1; then
        say "installing ${packages[*]} (for ${missing[*]})"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q "${packages[@]}" > /dev/null 2>&1 ||
            { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q "${packages[@]}" > /dev/null; } ||
            die "apt-get install ${packages[*]} failed"
        missing=()
        for spec in "$@"; do
            thing="${spec%%=*}"
            command -v "$thing" > /dev/null 2>&1 || [[ -e "$thing" ]] || missing+=("$thing")
        done
        ((${#missing[@]} == 0)) && return 0
    fi
    die "missing: ${missing[*]} (apt-get install ${packages[*]})"
}

# timed KEY CMD...: runs CMD once, records wall seconds, peak RSS (KiB) and CPU seconds
# (user + system, which waiting for a busy machine's cores does not inflate as it does the
# wall time) in SECS/RSS/CPU; output goes to $W/logs/KEY.{out,err}.
timed() {
    local key=$1
    shift
    if declare -F before_timed > /dev/null; then before_timed; fi
    local s k u y
    if ! /usr/bin/time -f '%e %M %U %S' -o "$W/logs/$key.time" "$@" > "$W/logs/$key.out" 2> "$W/logs/$key.err"; then
        echo "error: $key failed: $*" >&2
        tail -n 20 "$W/logs/$key.err" >&2
        exit 1
    fi
    read -r s k u y < <(tail -n 1 "$W/logs/$key.time")
    SECS[$key]=$s
    RSS[$key]=$k
    CPU[$key]=$(awk -v u="$u" -v y="$y" 'BEGIN { printf "%.2f", u + y }')
    say "$key: ${s}s, peak RSS $((k / 1024)) MiB, CPU ${CPU[$key]}s"
}

# warm FOLDER-OR-FILE...: reads files once so timed commands start from a warm cache.
warm() { find "$@" -type f -exec cat {} + > /dev/null; }

# stored DIR: bytes of all files under DIR (du -sb minus folder entries).
stored() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
fsize() { stat -c %s "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
kib2mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ratio A B [DECIMALS]: A / B with 2 (or DECIMALS) decimals, or n/a when B is 0.
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b == 0) print "n/a"; else printf "%.*f", d, a / b }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", 100 * a / b }'; }

# verdict A B OP LIMIT [SCALE]: PASS when A * SCALE / B OP LIMIT, from the unrounded
# numbers (so a ratio printed as 1.00 may still MISS); MISS when B is 0.
verdict() {
    awk -v a="$1" -v b="$2" -v op="$3" -v l="$4" -v scale="${5:-1}" 'BEGIN {
        if (b == 0) { print "MISS"; exit }
        v = a * scale / b
        ok = (op == "<=") ? (v <= l) : (v < l)
        print ok ? "PASS" : "MISS"
    }'
}

# cell FN VALUE: FN VALUE, or - for a missing value.
cell() { [[ "$2" == - ]] && echo - || "$1" "$2"; }
# md TEXT: TEXT with | escaped for a markdown table.
md() { printf '%s' "${1//|/\\|}"; }

# build_release: builds the workspace's release binaries (the whole workspace, so a shared
# CARGO_TARGET_DIR keeps one set of dependency builds) and checks $LIFEBOAT is there.
build_release() {
    say "building the release binaries (cargo build --release --workspace --bins)"
    (cd "$ROOT" && cargo build --release --workspace --bins)
    [[ -x "$LIFEBOAT" ]] || die "no binary at $LIFEBOAT after the build"
}

# timing_table ROW...: the timing table of rows "tool;phase;key" (SECS, STORED, RSS by key),
# phases PHASE_WIDTH characters wide (34 unless set).
timing_table() {
    local row tool phase key w=${PHASE_WIDTH:-34}
    printf "%-30s %-${w}s %9s %12s %15s\n" Tool Phase Seconds "Stored MiB" "Peak RSS MiB"
    for row in "$@"; do
        IFS=';' read -r tool phase key <<< "$row"
        printf "%-30s %-${w}s %9s %12s %15s\n" "$tool" "$phase" "${SECS[$key]:--}" \
            "$(cell mib "${STORED[$key]:--}")" "$(cell kib2mib "${RSS[$key]:--}")"
    done
}

# timing_table_md ROW...: the same table as markdown.
timing_table_md() {
    local row tool phase key
    echo "| Tool | Phase | Seconds | Stored (MiB) | Peak RSS (MiB) |"
    echo "|---|---|---:|---:|---:|"
    for row in "$@"; do
        IFS=';' read -r tool phase key <<< "$row"
        echo "| $(md "$tool") | $(md "$phase") | ${SECS[$key]:--} | $(cell mib "${STORED[$key]:--}") | $(cell kib2mib "${RSS[$key]:--}") |"
    done
}

# report TITLE SETUP NOTES: prints the timing table (rows of ROWS_T: "tool;phase;key") and the
# ratios table (rows of RATIOS: "measure;value;target;result") on stdout, and writes both as
# markdown to $W/results.md. Fields are separated by ';' so names may hold '|'.
report() {
    local title=$1 setup=$2 notes=$3 row tool phase key what value target result
    {
        echo
        echo "$title: $setup"
        echo
        timing_table "${ROWS_T[@]}"
        echo
        echo "$notes"
        echo
        printf '%-56s %12s %11s %7s\n' Measure Value Target Result
        for row in "${RATIOS[@]}"; do
            IFS=';' read -r what value target result <<< "$row"
            printf '%-56s %12s %11s %7s\n' "$what" "$value" "$target" "$result"
        done
        echo
    }
    {
        echo "## $title"
        echo
        echo "$(date -u +%Y-%m-%d): $setup."
        echo
        timing_table_md "${ROWS_T[@]}"
        echo
        md "$notes"
        echo
        echo
        echo "| Measure | Value | Target | Result |"
        echo "|---|---:|---:|:---:|"
        for row in "${RATIOS[@]}"; do
            IFS=';' read -r what value target result <<< "$row"
            echo "| $(md "$what") | $(md "$value") | $(md "$target") | $result |"
        done
    } > "$W/results.md"
}

# free_port: a free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT [PID]: until 127.0.0.1:PORT accepts connections (10 s), or PID is gone.
wait_port() {
    local i
    for ((i = 0; i < 100; i++)); do
        if [[ -n "${2:-}" ]] && ! kill -0 "$2" 2> /dev/null; then return 1; fi
        if (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# start_latency_proxy TARGET_PORT RTT_MS LOG: the bench's latency proxy on a free port of
# 127.0.0.1 in front of 127.0.0.1:TARGET_PORT, adding RTT_MS to every round trip, its output
# in LOG; sets PROXY_PORT and PROXY_PID, dies if it does not start. By default the proxy is
# bench/latency_proxy.rs, compiled once with `rustc -O` into bench/work/bin/ (a thread per
# direction: 0.2 CPU-s per 300 MB passed, mostly the kernel's socket copies); PROXY_IMPL=python
# runs bench/latency_proxy.py instead (the same delays on Python's event loop: 0.4 CPU-s per
# 300 MB, taken from the 2 cores the client being measured runs on).
start_latency_proxy() {
    local target=$1 rtt=$2 log=$3 root bin
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    PROXY_PORT=$(free_port)
    case "${PROXY_IMPL:-rust}" in
        rust)
            bin="$root/bench/work/bin/latency_proxy"
            if [[ ! -x "$bin" || "$root/bench/latency_proxy.rs" -nt "$bin" ]]; then
                mkdir -p "$(dirname "$bin")"
                rustc -O --edition 2021 "$root/bench/latency_proxy.rs" -o "$bin" ||
                    die "could not compile bench/latency_proxy.rs (rustc, from the Rust toolchain)"
            fi
            "$bin" "$PROXY_PORT" "$target" "$rtt" > "$log" 2>&1 &
            ;;
        python) python3 "$root/bench/latency_proxy.py" serve "$PROXY_PORT" "$target" "$rtt" > "$log" 2>&1 & ;;
        *) die "PROXY_IMPL is rust or python, got '${PROXY_IMPL}'" ;;
    esac
    PROXY_PID=$!
    wait_port "$PROXY_PORT" "$PROXY_PID" || { cat "$log" >&2; die "the latency proxy did not start"; }
}

# start_s3s_fs ROOT LOG: s3s-fs ($S3S_FS) serving the folder ROOT on a free port of
# 127.0.0.1 with fresh credentials (exported as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY),
# its output in LOG; sets S3_PORT, S3_PID and S3S_VERSION, dies if it does not start.
start_s3s_fs() {
    AWS_ACCESS_KEY_ID="bench$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
    AWS_SECRET_ACCESS_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    S3_PORT=$(free_port)
    "$S3S_FS" --host 127.0.0.1 --port "$S3_PORT" --access-key "$AWS_ACCESS_KEY_ID" \
        --secret-key "$AWS_SECRET_ACCESS_KEY" "$1" > "$2" 2>&1 &
    S3_PID=$!
    wait_port "$S3_PORT" "$S3_PID" || { tail -n 20 "$2" >&2; die "s3s-fs did not start"; }
    S3S_VERSION=$("$S3S_FS" --version 2> /dev/null | head -n 1 || echo s3s-fs)
}
