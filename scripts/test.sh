#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need (Debian packages,
# the s3s-fs S3 server from crates.io), then formatting, lints and every test.
#
#   bash scripts/test.sh
#
# Tests talk to real components: SQLite files checked with the sqlite3 tool, an
# S3-compatible server (s3s-fs) and throwaway PostgreSQL clusters (initdb + pg_ctl, as the
# postgres user when run as root) that the test harness starts on 127.0.0.1, and the
# Docker engine (Debian's docker.io; started here when its socket does not answer), with a
# test image the harness builds from a static busybox (no registry needed).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# Debian packages the tests use.
need_pkgs=()
command -v sqlite3 >/dev/null || need_pkgs+=(sqlite3)
command -v sha256sum >/dev/null || need_pkgs+=(coreutils)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
command -v runuser >/dev/null || need_pkgs+=(util-linux)
command -v script >/dev/null || need_pkgs+=(bsdutils)  # a pseudo-terminal for the password prompt test
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need_pkgs+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
# The example of a team's own backend (examples/custom-backend) backs up a real Redis.
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v redis-cli >/dev/null || need_pkgs+=(redis-tools)
command -v strace >/dev/null || need_pkgs+=(strace)
command -v chromium >/dev/null || need_pkgs+=(chromium)  # headless, for the status page test
command -v systemd-analyze >/dev/null || need_pkgs+=(systemd)  # rates the shipped unit
command -v man >/dev/null || need_pkgs+=(man-db)  # renders the generated man pages
command -v adduser >/dev/null || need_pkgs+=(adduser)  # the .deb's postinst makes its user
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing ${need_pkgs[*]} (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# The S3-compatible server the harness starts. 0.14.1 is the newest that builds with our
# toolchain; it implements multipart upload and conditional create and checks signatures.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v s3s-fs >/dev/null; then
  say "installing s3s-fs (cargo install, a few minutes the first time)"
  cargo install s3s-fs@0.14.1 --locked --features binary --quiet
fi

# The Docker engine: the tests need it answering on its socket.
if ! docker version >/dev/null 2>&1; then
  say "starting the Docker engine (dockerd)"
  as_root sh -c 'nohup dockerd > /tmp/lifeboat-dockerd.log 2>&1 &'
  for _ in $(seq 1 120); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
  docker version >/dev/null 2>&1 || {
    echo "the Docker engine did not start; its log:" >&2
    tail -n 30 /tmp/lifeboat-dockerd.log >&2
    exit 1
  }
fi

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

say "cargo test"
cargo test --workspace --no-fail-fast

say "cargo doc (no warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
