//! The backend conformance suite against real folders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use lifeboat_core::conformance::{self, Harness};
use lifeboat_core::drill::ScratchVerifier;
use lifeboat_core::{Backup, RestoreOptions, RestorePlan, Snapshot, Verifier};
use lifeboat_dir::{DirBackup, DirDrill, DirRestorePlan};

struct DirHarness {
    dir: tempfile::TempDir,
    next: AtomicU32,
}

impl DirHarness {
    fn path(&self, stem: &str) -> PathBuf {
        self.dir.path().join(format!("{stem}-{}", self.next.fetch_add(1, Ordering::Relaxed)))
    }
}

/// A listing of a folder: every path with its kind and content, sorted.
fn describe(root: &Path) -> String {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.file_type().is_symlink() {
                out.push(format!("{rel} -> {}", std::fs::read_link(&p).unwrap().display()));
            } else if md.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(p);
            } else {
                out.push(format!("{rel}: {:?}", std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out.join("\n")
}

#[async_trait]
impl Harness for DirHarness {
    async fn source(&self) -> Box<dyn Backup> {
        let root = self.path("live");
        std::fs::create_dir_all(root.join("docs/deep")).unwrap();
        std::fs::write(root.join("readme.txt"), "hello").unwrap();
        std::fs::write(root.join("docs/deep/data.bin"), vec![7u8; 300_000]).unwrap();
        std::os::unix::fs::symlink("readme.txt", root.join("link")).unwrap();
        Box::new(DirBackup::new(root))
    }

    async fn change(&self, source: &dyn Backup) {
        let root = PathBuf::from(source.target());
        std::fs::write(root.join("readme.txt"), "changed").unwrap();
        std::fs::write(root.join("new.txt"), "new").unwrap();
        std::fs::remove_file(root.join("docs/deep/data.bin")).unwrap();
    }

    fn fresh_target(&self) -> String {
        self.path("restored").display().to_string()
    }

    fn live_target(&self, source: &dyn Backup) -> String {
        source.target()
    }

    fn plan(
        &self,
        snapshot: &dyn Snapshot,
        target: &str,
        options: &RestoreOptions,
    ) -> lifeboat_core::Result<Box<dyn RestorePlan>> {
        Ok(Box::new(DirRestorePlan::new(snapshot, Path::new(target), options, &[])?))
    }

    async fn content(&self, target: &str) -> String {
        if !Path::new(target).exists() {
            return "<absent>".into();
        }
        describe(Path::new(target))
    }

    fn verifier(&self) -> Box<dyn Verifier> {
        Box::new(ScratchVerifier(DirDrill))
    }

    fn damage(&self, bytes: &mut Vec<u8>) {
        let at = bytes.len() / 3;
        bytes[at] ^= 0x55;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_backend_conforms() {
    conformance::run_all(&DirHarness {
        dir: tempfile::tempdir().unwrap(),
        next: AtomicU32::new(0),
    })
    .await;
}
