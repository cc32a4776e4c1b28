//! A crafted snapshot cannot write outside the restore target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use async_trait::async_trait;
use lifeboat_core::{
    Backup, ByteStream, Capture, Kind, MemorySafetyNet, MemorySnapshot, NoProgress, RestoreContext,
    RestoreOptions, RestorePlan,
};
use lifeboat_dir::{DirMetadata, DirRestorePlan};

/// A "folder snapshot" whose tar stream was written by hand, as an attacker would.
struct Crafted(Vec<u8>);

#[async_trait]
impl Backup for Crafted {
    fn kind(&self) -> Kind {
        Kind::DIR
    }
    fn default_name(&self) -> String {
        "crafted".into()
    }
    fn target(&self) -> String {
        "crafted".into()
    }
    async fn capture(&self) -> lifeboat_core::Result<Capture> {
        let reader: ByteStream = Box::pin(std::io::Cursor::new(self.0.clone()));
        Ok(Capture::new(reader, serde_json::to_value(DirMetadata::default()).unwrap()))
    }
}

/// Appends an entry whose name is written raw into the header, bypassing tar-rs's checks.
fn raw_entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaping_entries_are_refused_and_nothing_lands_outside() {
    let outside = tempfile::tempdir().unwrap();
    let parent = outside.path().join("work");
    std::fs::create_dir(&parent).unwrap();
    let mut tar = Vec::new();
    raw_entry(&mut tar, "ok.txt", tar::EntryType::Regular, None, b"fine");
    raw_entry(&mut tar, "../escaped.txt", tar::EntryType::Regular, None, b"evil");
    raw_entry(&mut tar, "a/../../escaped2.txt", tar::EntryType::Regular, None, b"evil");
    let absolute = outside.path().join("absolute.txt");
    raw_entry(&mut tar, absolute.to_str().unwrap(), tar::EntryType::Regular, None, b"evil");
    raw_entry(&mut tar, "up", tar::EntryType::Symlink, Some(outside.path().to_str().unwrap()), b"");
    raw_entry(&mut tar, "up/through-link.txt", tar::EntryType::Regular, None, b"evil");
    raw_entry(&mut tar, "hard", tar::EntryType::Link, Some("../../etc/passwd"), b"");
    tar.extend_from_slice(&[0u8; 1024]);

    let snap = MemorySnapshot::capture(&Crafted(tar), Default::default()).await.unwrap();
    let target = parent.join("restored");
    let plan = DirRestorePlan::new(&snap, &target, &RestoreOptions::default(), &[]).unwrap();
    let net = MemorySafetyNet::default();
    let ctx = RestoreContext { snapshot: &snap, safety_net: &net, progress: &NoProgress };
    let err = plan.execute(&ctx).await.unwrap_err().to_string();
    for name in
        ["../escaped.txt", "a/../../escaped2.txt", "absolute.txt", "up/through-link.txt", "hard"]
    {
        assert!(err.contains(name), "{name} was not reported as refused: {err}");
    }
    // Nothing outside the target, and no target (the restore failed its checks).
    for escaped in ["escaped.txt", "escaped2.txt", "absolute.txt", "through-link.txt"] {
        assert!(!outside.path().join(escaped).exists(), "{escaped} was written outside");
        assert!(!parent.join(escaped).exists(), "{escaped} was written outside");
    }
    assert!(!target.exists(), "a refused restore left a target");
    let leftovers: Vec<_> = std::fs::read_dir(&parent).unwrap().collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert!(Path::new("/etc/passwd").exists());
}
