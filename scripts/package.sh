#!/usr/bin/env bash
# Builds the Debian package of lifeboat: both binaries, the systemd unit, a `lifeboat` system
# user (made by the package's postinst), the docs, shell completions and man pages.
#
#   bash scripts/package.sh                 # release build, package in target/debian/
#   bash scripts/package.sh --bin-dir DIR   # package binaries already built in DIR
#   bash scripts/package.sh --fast          # no compression (for tests)
#
# Prints the path of the .deb it wrote. Needs dpkg-deb (Debian's dpkg) and gzip.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=""
compress=(-Zxz)
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --fast) compress=(-Znone); shift ;;
    *) echo "unknown option $1 (use --bin-dir DIR, --fast)" >&2; exit 2 ;;
  esac
done

if [ -z "$bin_dir" ]; then
  cargo build --release --locked -p lifeboat-cli --bins >&2
  bin_dir="${CARGO_TARGET_DIR:-target}/release"
fi
for b in lifeboat lifeboatd; do
  [ -x "$bin_dir/$b" ] || { echo "no $bin_dir/$b: build it first (cargo build --release)" >&2; exit 1; }
done

version="$("$bin_dir/lifeboat" --version | awk '{print $2}')"
arch="$(dpkg --print-architecture)"
out_dir="${CARGO_TARGET_DIR:-target}/debian"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$out_dir"

install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/lifeboat" \
  "$root/usr/share/doc/lifeboat" "$root/usr/share/man/man1" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d"
install -m 0755 "$bin_dir/lifeboat" "$bin_dir/lifeboatd" "$root/usr/bin/"
# The unit as documented, with the binaries where the package puts them.
sed 's#/usr/local/bin/lifeboatd#/usr/bin/lifeboatd#g' docs/lifeboatd.service \
  > "$root/lib/systemd/system/lifeboatd.service"
install -m 0640 examples/lifeboatd.toml "$root/etc/lifeboat/lifeboatd.toml"
install -m 0644 README.md docs/*.md "$root/usr/share/doc/lifeboat/"
install -m 0644 examples/lifeboatd.toml "$root/usr/share/doc/lifeboat/lifeboatd.example.toml"
printf 'lifeboat\nLicense: Apache-2.0\n' > "$root/usr/share/doc/lifeboat/copyright"
"$bin_dir/lifeboat" completions bash > "$root/usr/share/bash-completion/completions/lifeboat"
"$bin_dir/lifeboat" completions zsh > "$root/usr/share/zsh/vendor-completions/_lifeboat"
"$bin_dir/lifeboat" completions fish > "$root/usr/share/fish/vendor_completions.d/lifeboat.fish"
"$bin_dir/lifeboat" completions bash --for lifeboatd > "$root/usr/share/bash-completion/completions/lifeboatd"
"$bin_dir/lifeboat" completions zsh --for lifeboatd > "$root/usr/share/zsh/vendor-completions/_lifeboatd"
"$bin_dir/lifeboat" completions fish --for lifeboatd > "$root/usr/share/fish/vendor_completions.d/lifeboatd.fish"
"$bin_dir/lifeboat" man --out "$root/usr/share/man/man1" >/dev/null
gzip -9n "$root"/usr/share/man/man1/*.1

cat > "$root/DEBIAN/control" <<EOF
Package: lifeboat
Version: $version
Architecture: $arch
Maintainer: lifeboat developers <lifeboat@example.invalid>
Section: admin
Priority: optional
Depends: adduser
Recommends: sqlite3
Suggests: postgresql-client, docker.io
Installed-Size: $(du -sk "$root" | cut -f1)
Description: backups of SQLite, PostgreSQL, containers and folders, proven restorable
 lifeboat backs up, verifies and restores SQLite and PostgreSQL databases, Docker
 containers and folders into one deduplicated, checksummed, encrypted repository on
 S3-compatible storage or a local folder, and proves every backup restorable with
 automated restore drills. lifeboatd runs scheduled backups with health, alerts,
 metrics and an HTTP API.
EOF
echo /etc/lifeboat/lifeboatd.toml > "$root/DEBIAN/conffiles"

cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd lifeboat >/dev/null; then
    adduser --system --group --home /var/lib/lifeboatd --no-create-home \
      --shell /usr/sbin/nologin --quiet lifeboat
  fi
  chown root:lifeboat /etc/lifeboat/lifeboatd.toml
  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
exit 0
EOF
cat > "$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
if [ "$1" = purge ] && getent passwd lifeboat >/dev/null; then
  deluser --system --quiet lifeboat || true
fi
exit 0
EOF
cat > "$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl stop lifeboatd.service 2>/dev/null || true
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm" "$root/DEBIAN/prerm"

deb="$out_dir/lifeboat_${version}_${arch}.deb"
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >&2
echo "$deb"
