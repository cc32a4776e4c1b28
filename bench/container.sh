#!/usr/bin/env bash
# bench/container.sh: lifeboat against the runbooks' `docker export | gzip` (and restic
# reading the same export from stdin) on one container holding ~SIZE_MIB MiB of files.
#
# What it measures, on the same container (a static busybox image plus SIZE_MIB MiB of
# files written into the container: half text-heavy logs and JSON, half random binaries):
#   1. full backup:     wall seconds, stored bytes, peak RSS;
#   2. unchanged:       `--changed-only` right after, nothing changed (the hot backup's
#                       common case): seconds, stored bytes;
#   3. one file changed: `--changed-only` after appending a line to one file: seconds and
#                       stored bytes (lifeboat's own `stored` of the new snapshot and the
#                       repository's growth); the runbook writes a whole new .tar.gz;
#   4. restore:         `lifeboat restore --to container:NEW` against gunzip | docker import
#                       + docker create + start; restored files are compared by SHA-256.
# Targets: full backup at least 2x faster than `docker export | gzip`; the second backup
# (one file changed) stores under 2% of the first.
#
#   bash bench/container.sh                 # ~500 MiB of files
#   SIZE_MIB=100 bash bench/container.sh    # quick run
# Needs: a running Docker engine (docker.io), busybox-static, restic, gzip, python3, GNU
# time, cargo (as root, missing Debian packages are installed with apt-get). Everything is written under bench/work/container (wiped at the start); the
# bench's containers and images are removed at the end.

set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MIB="${SIZE_MIB:-500}"
[[ "$SIZE_MIB" =~ ^[1-9][0-9]*$ ]] || die "SIZE_MIB must be a positive whole number, got '$SIZE_MIB'"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="$ROOT/bench/work/container"
LIFEBOAT="$ROOT/target/release/lifeboat"
C=lifeboat-bench-app
IMAGE=lifeboat-bench/busybox:1

require docker=docker.io restic=restic gzip=gzip gunzip=gzip python3=python3 sha256sum=coreutils \
    /usr/bin/time=time /bin/busybox=busybox-static
command -v cargo > /dev/null 2>&1 || die "missing: cargo (Rust's toolchain, from rustup)"
docker version > /dev/null 2>&1 || die "the Docker engine does not answer: start it (dockerd &)"

say "building the release binary"
(cd "$ROOT" && cargo build --release -p lifeboat-cli)

cleanup() {
    docker rm -f "$C" "$C-restored" "$C-runbook" > /dev/null 2>&1 || true
    docker image rm -f "$IMAGE" lifeboat-bench/runbook:1 > /dev/null 2>&1 || true
    docker image ls --format '{{.Repository}}:{{.Tag}}' | grep "^lifeboat-restore/$C" | xargs -r docker image rm -f > /dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
rm -rf "$W"
mkdir -p "$W/logs" "$W/data"

say "generating $SIZE_MIB MiB of files"
python3 - "$W/data" "$SIZE_MIB" << 'PY'
import json, os, random, sys
root, mib = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
words = ("request response user order invoice payment tenant service error warning info "
         "latency cache queue worker job event message token session region cluster").split()
total, i = 0, 0
while total < mib * 1048576:
    size = rnd.choice([4096, 65536, 262144, 1048576, 4194304])
    folder = os.path.join(root, f"d{i % 40:02d}")
    os.makedirs(folder, exist_ok=True)
    if i % 2:
        data = rnd.randbytes(size)
        name = f"blob{i:05d}.bin"
    else:
        lines, n = [], 0
        while n < size:
            line = json.dumps({"i": n, "at": f"2026-11-{rnd.randrange(1, 29):02d}",
                               "msg": " ".join(rnd.choices(words, k=12)),
                               "v": rnd.randrange(10**6)}) + "\n"
            lines.append(line)
            n += len(line)
        data = "".join(lines).encode()[:size]
        name = f"log{i:05d}.jsonl"
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)
    total += size
    i += 1
print(i, total)
PY

say "building the image and the container"
python3 - "$W/image.tar" << 'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    t.add("/bin/busybox", "bin/busybox")
    for applet in ["sh", "sleep", "cat", "sha256sum", "find", "echo", "xargs", "sort"]:
        info = tarfile.TarInfo(f"bin/{applet}"); info.type = tarfile.SYMTYPE; info.linkname = "busybox"
        t.addfile(info)
    for d in ["tmp", "data", "etc"]:
        info = tarfile.TarInfo(d); info.type = tarfile.DIRTYPE; info.mode = 0o755
        t.addfile(info)
PY
docker import --change 'ENV PATH=/bin' "$W/image.tar" "$IMAGE" > /dev/null
docker create --name "$C" "$IMAGE" sleep 100000 > /dev/null
docker cp "$W/data/." "$C:/data/"
docker start "$C" > /dev/null
rm -rf "$W/data"

files_digest() {  # files_digest CONTAINER: one digest over every file under /data
    docker exec "$1" sh -c 'cd /data && find . -type f | sort | xargs sha256sum' | sha256sum | cut -d' ' -f1
}
EXPECTED=$(files_digest "$C")
EXPORT_SIZE=$(docker export "$C" | wc -c)

"$LIFEBOAT" --repo "$W/lb-repo" init --no-encryption > /dev/null
export RESTIC_PASSWORD=bench RESTIC_REPOSITORY="$W/restic-repo"
RESTIC_VERSION=$(restic version | cut -d' ' -f1-2)
restic init > /dev/null 2>&1
RESTIC_MODE="restic backup --stdin of docker export"
restic backup --help 2> /dev/null | grep -q -- '--compression' && RESTIC_MODE="$RESTIC_MODE, --compression auto"

lb_last() {  # lb_last FIELD: FIELD of the newest snapshot
    "$LIFEBOAT" --repo "$W/lb-repo" snapshots --json | python3 -c "import json, sys; print(json.load(sys.stdin)[-1]['$1'])"
}

# ---------------------------------------------------------------- full backup
timed lb_full "$LIFEBOAT" --repo "$W/lb-repo" backup container "$C" --changed-only
STORED[lb_full]=$(stored "$W/lb-repo")
timed rb_full sh -c "docker export $C | gzip > '$W/full.tar.gz'"
STORED[rb_full]=$(fsize "$W/full.tar.gz")
timed restic_full sh -c "docker export $C | restic backup --stdin --stdin-filename $C.tar --quiet"
STORED[restic_full]=$(stored "$W/restic-repo")

# ---------------------------------------------------------------- nothing changed
before=$(stored "$W/lb-repo")
timed lb_unchanged "$LIFEBOAT" --repo "$W/lb-repo" backup container "$C" --changed-only
STORED[lb_unchanged]=$(($(stored "$W/lb-repo") - before))
[[ "$(lb_last unchanged 2> /dev/null || echo False)" == True ]] || grep -q unchanged "$W/logs/lb_unchanged.out" || die "lifeboat did not see the container as unchanged"

# ---------------------------------------------------------------- one file changed
FILE=$(docker exec "$C" sh -c 'find /data -name "log*" | sort | sed -n 2p')
docker exec "$C" sh -c "echo '{\"changed\": true}' >> $FILE"
EXPECTED=$(files_digest "$C")
before=$(stored "$W/lb-repo")
timed lb_second "$LIFEBOAT" --repo "$W/lb-repo" backup container "$C" --changed-only
STORED[lb_second]=$(($(stored "$W/lb-repo") - before))
LB_SNAP_SECOND=$(lb_last stored)
timed rb_second sh -c "docker export $C | gzip > '$W/second.tar.gz'"
STORED[rb_second]=$(fsize "$W/second.tar.gz")
before=$(stored "$W/restic-repo")
timed restic_second sh -c "docker export $C | restic backup --stdin --stdin-filename $C.tar --quiet"
STORED[restic_second]=$(($(stored "$W/restic-repo") - before))

# ---------------------------------------------------------------- restore
SNAP=$(lb_last id)
timed lb_restore "$LIFEBOAT" --repo "$W/lb-repo" restore "$SNAP" --to "container:$C-restored" --settle 1s
[[ "$(files_digest "$C-restored")" == "$EXPECTED" ]] || die "lifeboat's restored files differ"
timed rb_restore sh -c "gunzip -c '$W/second.tar.gz' | docker import - lifeboat-bench/runbook:1 > /dev/null && docker run -d --name $C-runbook lifeboat-bench/runbook:1 sleep 100000 > /dev/null"
[[ "$(files_digest "$C-runbook")" == "$EXPECTED" ]] || die "the runbook's restored files differ"

ROWS_T=(
    "lifeboat;full backup;lb_full"
    "docker export | gzip (runbook);full backup;rb_full"
    "restic (export on stdin);full backup;restic_full"
    "lifeboat --changed-only;nothing changed;lb_unchanged"
    "lifeboat --changed-only;one file changed;lb_second"
    "docker export | gzip (runbook);one file changed (new .tar.gz);rb_second"
    "restic (export on stdin);one file changed;restic_second"
    "lifeboat;restore (new container);lb_restore"
    "gunzip | docker import + run;restore (new container);rb_restore"
)
RATIOS=(
    "full backup time, lifeboat / docker export | gzip;$(ratio "${SECS[lb_full]}" "${SECS[rb_full]}")x;<= 0.5x;$(verdict "${SECS[lb_full]}" "${SECS[rb_full]}" "<=" 0.5)"
    "stored after full backup, lifeboat / gzip;$(ratio "${STORED[lb_full]}" "${STORED[rb_full]}" 3)x;-;info"
    "second backup (one file changed) stores, % of first;$(pct "${STORED[lb_second]}" "${STORED[lb_full]}")%;< 2%;$(verdict "${STORED[lb_second]}" "${STORED[lb_full]}" "<" 2 100)"
    "unchanged --changed-only time, % of full backup;$(pct "${SECS[lb_unchanged]}" "${SECS[lb_full]}")%;-;info"
    "full backup time, lifeboat / restic;$(ratio "${SECS[lb_full]}" "${SECS[restic_full]}")x;-;info"
    "restore time, lifeboat / runbook;$(ratio "${SECS[lb_restore]}" "${SECS[rb_restore]}")x;-;info"
)
GIT_REV=$(git -C "$ROOT" describe --always --dirty 2> /dev/null || echo unknown)
SETUP="container with $(mib "$EXPORT_SIZE") MiB export ($SIZE_MIB MiB of files: half JSON lines, half random); $(nproc) cores; lifeboat ($GIT_REV); Docker $(docker version --format '{{.Server.Version}}'); $RESTIC_VERSION, $RESTIC_MODE; $(gzip --version | head -n 1)"
NOTES="Stored = repository growth (sum of file sizes) for lifeboat and restic, the .tar.gz's size for the runbook. Lifeboat's own \`stored\` for the one-file-changed snapshot: $(mib "$LB_SNAP_SECOND") MiB."
report "Container benchmark" "$SETUP" "$NOTES"
say "markdown written to $W/results.md"
