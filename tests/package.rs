//! The Debian package: `scripts/package.sh` builds it from this build's binaries, `dpkg -i`
//! installs it on this machine, its binaries run from where it put them, and `dpkg --purge`
//! takes it all away again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): the .deb test needs dpkg (Debian)")
    });
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn the_deb_installs_runs_its_binaries_and_purges_cleanly() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the .deb test installs the package into this machine: run the suite as root (CI does)"
    );
    let bins = Path::new(env!("CARGO_BIN_EXE_lifeboat")).parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/package.sh");
    let built = Command::new("bash")
        .arg(&script)
        .args(["--fast", "--bin-dir"])
        .arg(bins)
        .env("CARGO_TARGET_DIR", out.path())
        .output()
        .unwrap();
    assert!(built.status.success(), "package.sh: {}", String::from_utf8_lossy(&built.stderr));
    let deb = String::from_utf8_lossy(&built.stdout).trim().lines().last().unwrap().to_string();
    assert!(deb.ends_with(".deb") && Path::new(&deb).exists(), "{deb}");

    let (_, listing) = run("dpkg-deb", &["--contents", &deb]);
    for path in [
        "./usr/bin/lifeboat",
        "./usr/bin/lifeboatd",
        "./lib/systemd/system/lifeboatd.service",
        "./etc/lifeboat/lifeboatd.toml",
        "./usr/share/doc/lifeboat/operations.md",
        "./usr/share/man/man1/lifeboat.1.gz",
        "./usr/share/man/man1/lifeboatd.1.gz",
        "./usr/share/bash-completion/completions/lifeboat",
        "./usr/share/bash-completion/completions/lifeboatd",
        "./usr/share/zsh/vendor-completions/_lifeboat",
        "./usr/share/fish/vendor_completions.d/lifeboat.fish",
    ] {
        assert!(listing.contains(path), "{path} is not in the package:\n{listing}");
    }
    let (_, fields) = run("dpkg-deb", &["--field", &deb, "Package", "Version", "Depends"]);
    assert!(fields.contains("Package: lifeboat") && fields.contains("Version: 0."), "{fields}");

    // A run that died half way may have left it installed.
    run("dpkg", &["--purge", "lifeboat"]);
    let (ok, text) = run("dpkg", &["-i", &deb]);
    assert!(ok, "dpkg -i: {text}");
    let installed = std::panic::catch_unwind(|| {
        let (ok, version) = run("/usr/bin/lifeboat", &["--version"]);
        assert!(ok && version.starts_with("lifeboat 0."), "{version}");
        let (ok, checked) =
            run("/usr/bin/lifeboatd", &["--check", "--config", "/etc/lifeboat/lifeboatd.toml"]);
        assert!(ok && checked.contains("configuration valid"), "{checked}");
        let (ok, user) = run("getent", &["passwd", "lifeboat"]);
        assert!(ok && user.contains("/usr/sbin/nologin"), "the lifeboat user: {user}");
        let (_, unit) = run("cat", &["/lib/systemd/system/lifeboatd.service"]);
        assert!(unit.contains("ExecStart=/usr/bin/lifeboatd"), "{unit}");
        let (ok, page) = run("man", &["-P", "cat", "lifeboat-restore"]);
        assert!(ok && page.contains("lifeboat-restore"), "man lifeboat-restore: {page}");
    });
    let (purged, text) = run("dpkg", &["--purge", "lifeboat"]);
    if let Err(panic) = installed {
        std::panic::resume_unwind(panic);
    }
    assert!(purged, "dpkg --purge: {text}");
    assert!(!Path::new("/usr/bin/lifeboat").exists() && !Path::new("/usr/bin/lifeboatd").exists());
    assert!(!Path::new("/etc/lifeboat/lifeboatd.toml").exists(), "purge keeps no configuration");
    let (still, _) = run("getent", &["passwd", "lifeboat"]);
    assert!(!still, "purge removes the lifeboat user");
}
