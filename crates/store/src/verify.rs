//! Repository verification: structure (every referenced pack and chunk exists) and data
//! (every byte read back, decompressed and hashed).

use std::collections::HashMap;

use async_trait::async_trait;
use futures::StreamExt;
use lifeboat_core::{Check, Digest, Snapshot, Verifier, VerifyReport};
use object_store::ObjectStoreExt;

use crate::format::pack_key;
use crate::repository::Repository;
use crate::snapshot::StoredSnapshot;

/// Verifies snapshots against the repository they are stored in.
#[derive(Debug, Clone)]
pub struct RepositoryVerifier {
    repo: Repository,
    read_data: bool,
}

impl RepositoryVerifier {
    /// A verifier of structure only, or of every byte when `read_data` is set.
    pub fn new(repo: Repository, read_data: bool) -> Self {
        RepositoryVerifier { repo, read_data }
    }

    /// Checks that every chunk of `manifest` is indexed and every pack it needs exists with
    /// the size the index says.
    pub async fn check_structure(&self, snapshot: &dyn Snapshot) -> Vec<Check> {
        let manifest = snapshot.manifest();
        let mut missing_chunks = Vec::new();
        let mut packs: HashMap<Digest, u64> = HashMap::new();
        for id in &manifest.chunks {
            match self.repo.locate(id) {
                Some(loc) => {
                    packs.insert(loc.pack, loc.pack_size);
                    // A delta needs its base too.
                    if let Some(base) = loc.base {
                        match self.repo.locate(&base) {
                            Some(b) => {
                                packs.insert(b.pack, b.pack_size);
                            }
                            None => missing_chunks.push(format!(
                                "{} (base of {})",
                                base.short(),
                                id.short()
                            )),
                        }
                    }
                }
                None => missing_chunks.push(id.short()),
            }
        }
        let mut checks = vec![if missing_chunks.is_empty() {
            Check::pass("chunks indexed", format!("{} chunks", manifest.chunks.len()))
        } else {
            Check::fail(
                "chunks indexed",
                format!(
                    "{} chunks are in no index: {}",
                    missing_chunks.len(),
                    summarize(&missing_chunks)
                ),
            )
        }];
        let store = self.repo.store().clone();
        let problems: Vec<String> = futures::stream::iter(packs)
            .map(|(pack, size)| {
                let store = store.clone();
                async move {
                    let key = pack_key(&pack);
                    match store.head(&key).await {
                        Ok(meta) if meta.size == size => None,
                        Ok(meta) => Some(format!("{key} has {} bytes, expected {size}", meta.size)),
                        Err(object_store::Error::NotFound { .. }) => {
                            Some(format!("{key} is missing"))
                        }
                        Err(e) => Some(format!("{key}: {e}")),
                    }
                }
            })
            .buffer_unordered(16)
            .filter_map(futures::future::ready)
            .collect()
            .await;
        checks.push(if problems.is_empty() {
            Check::pass("packs present", "every referenced pack exists with its indexed size")
        } else {
            Check::fail("packs present", summarize(&problems))
        });
        checks
    }

    /// Reads the whole snapshot back, checking every chunk's hash and the stream's digest.
    pub async fn check_data(&self, snapshot: &StoredSnapshot) -> Check {
        let result = async {
            let mut reader = snapshot.open().await?;
            let mut sink = tokio::io::sink();
            tokio::io::copy(&mut reader, &mut sink)
                .await
                .map_err(|e| lifeboat_core::Error::from_stream("reading the snapshot", e))
        };
        match result.await {
            Ok(n) => Check::pass(
                "data",
                format!("{n} bytes read, every chunk and the stream digest match"),
            ),
            Err(e) => Check::fail("data", e.to_string()),
        }
    }
}

fn summarize(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}

#[async_trait]
impl Verifier for RepositoryVerifier {
    async fn verify(&self, snapshot: &dyn Snapshot) -> lifeboat_core::Result<VerifyReport> {
        let mut report = VerifyReport::new(format!("snapshot {}", snapshot.id()));
        report.checks = self.check_structure(snapshot).await;
        if self.read_data && report.ok() {
            // Read through this repository even when handed a foreign Snapshot impl.
            let stored =
                StoredSnapshot::new(self.repo.clone(), snapshot.id(), snapshot.manifest().clone());
            report.checks.push(self.check_data(&stored).await);
        }
        Ok(report)
    }
}
