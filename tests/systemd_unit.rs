//! The systemd unit shipped in `docs/lifeboatd.service` stays hardened: `systemd-analyze
//! security` rates it at most 3.0 ("OK"), and it keeps what lifeboatd needs to work there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn unit() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/lifeboatd.service")
}

#[test]
fn the_shipped_unit_is_rated_at_most_3_0_by_systemd_analyze_security() {
    let analyze = lifeboat_testkit::find_program("systemd-analyze")
        .expect("this test needs systemd-analyze (apt-get install systemd) to rate the unit");
    // systemd-analyze reads a unit file by its name: a copy named lifeboatd.service.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("lifeboatd.service");
    std::fs::copy(unit(), &copy).unwrap();
    let out = Command::new(analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&copy)
        .env("SYSTEMD_COLORS", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let overall =
        text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| {
            panic!("no overall rating in:\n{text}\n{}", String::from_utf8_lossy(&out.stderr))
        });
    let score: f64 = overall
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the rating in {overall:?}"));
    assert!(score <= 3.0, "the unit is rated {score} (at most 3.0 wanted):\n{text}");
    assert!(overall.contains("OK"), "{overall}");
}

#[test]
fn the_shipped_unit_keeps_what_lifeboatd_needs() {
    let text = std::fs::read_to_string(unit()).unwrap();
    let has = |line: &str| text.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "WatchdogSec=2min",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=lifeboat",
        "StateDirectory=lifeboatd",
        "ProtectSystem=strict",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "CapabilityBoundingSet=",
        "NoNewPrivileges=true",
    ] {
        assert!(has(line), "the unit lost {line:?}");
    }
    // lifeboat reads /proc/sys/kernel/random/boot_id to judge a lease's holder, and raises
    // its descriptor limit (setrlimit, in @resources): neither may be taken away.
    assert!(!has("ProcSubset=pid"), "ProcSubset=pid hides the boot id");
    assert!(
        !text.lines().any(|l| l.starts_with("SystemCallFilter=~") && l.contains("@resources")),
        "setrlimit is needed"
    );
}
