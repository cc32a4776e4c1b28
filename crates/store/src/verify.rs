//! Repository verification: structure (every referenced pack and chunk exists) and data
//! (every byte read back, decompressed and hashed).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use futures::StreamExt;
use lifeboat_core::{Check, Digest, Snapshot, Verifier, VerifyReport};
use object_store::ObjectStoreExt;

use crate::error::Result;
use crate::format::{
    BlobEntry, PACK_FOOTER, PackEntry, decode_metadata, pack_key, pack_trailer_len,
};
use crate::repository::{DamagedObject, Repository};
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

    /// Checks that the snapshot's manifest object is in the store and intact (a listing may
    /// have read it from the catalog), that every chunk of it is indexed, and that every
    /// pack it needs exists with the size the index says.
    pub async fn check_structure(&self, snapshot: &dyn Snapshot) -> Vec<Check> {
        let manifest = snapshot.manifest();
        let stored = match self.repo.load_snapshot(snapshot.id()).await {
            Ok(stored) if stored.manifest() == manifest => {
                Check::pass("manifest", format!("snapshots/{} hashes to its id", snapshot.id()))
            }
            Ok(_) => Check::fail(
                "manifest",
                format!("snapshots/{} differs from the manifest being verified", snapshot.id()),
            ),
            Err(e) => Check::fail("manifest", e.to_string()),
        };
        let mut missing_chunks = Vec::new();
        if let Err(e) = self.repo.ensure_index().await {
            return vec![stored, Check::fail("index", e.to_string())];
        }
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
        let mut checks = vec![
            stored,
            if missing_chunks.is_empty() {
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
            },
        ];
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

    /// Checks the repository's index: no index file is damaged, and every indexed pack (or
    /// only those in `packs`, when given) exists with its indexed size and a trailer that
    /// lists exactly the indexed blobs (ids, offsets, lengths). Reads only pack trailers,
    /// not data.
    ///
    /// # Errors
    /// When the index files cannot be listed or read at all.
    pub async fn check_index(&self, packs: Option<&HashSet<Digest>>) -> Result<VerifyReport> {
        let mut report = VerifyReport::new("repository index");
        // Index files, key slots and leases are independent reads: one round trip, not three.
        let key_slots = async {
            if self.repo.is_encrypted() { Some(self.repo.damaged_key_slots().await) } else { None }
        };
        let (files, key_slots, leases) =
            tokio::join!(self.repo.index_files(), key_slots, self.repo.damaged_leases());
        let files = files?;
        report.checks.push(objects_check(
            "index files",
            format!("{} index files hash to their keys", files.len()),
            &self.repo.damaged_indexes(),
            " set aside, the chunks only they listed count as missing; `lifeboat repair index` \
             rebuilds them from the packs",
        ));
        if let Some(key_slots) = key_slots {
            report.checks.push(match key_slots {
                Ok((slots, damaged)) => objects_check(
                    "key slots",
                    format!("{slots} key slots are well-formed"),
                    &damaged,
                    ": its password or key file no longer opens the repository; add a new key \
                     with `lifeboat key add` and remove this one",
                ),
                Err(e) => Check::fail("key slots", e.to_string()),
            });
        }
        let (leases, damaged) = leases?;
        report.checks.push(objects_check(
            "leases",
            format!("{leases} leases open and parse"),
            &damaged,
            "; `lifeboat unlock` removes the maintenance lease, and an unreadable backup lease \
             is ignored",
        ));
        let mut indexed: HashMap<Digest, PackEntry> = HashMap::new();
        for pack in files.into_iter().flat_map(|(_, f)| f.packs) {
            if packs.is_none_or(|p| p.contains(&pack.id)) {
                indexed.entry(pack.id).or_insert(pack);
            }
        }
        let checked = indexed.len();
        let problems: Vec<String> = futures::stream::iter(indexed.into_values())
            .map(|pack| async move { self.pack_disagrees(&pack).await })
            .buffer_unordered(16)
            .filter_map(futures::future::ready)
            .collect()
            .await;
        report.checks.push(if problems.is_empty() {
            Check::pass(
                "index agrees with packs",
                format!("{checked} packs: sizes and trailers match the index"),
            )
        } else {
            Check::fail("index agrees with packs", summarize(&problems))
        });
        Ok(report)
    }

    /// What is wrong with `pack` on the store compared to its index entry, if anything.
    async fn pack_disagrees(&self, pack: &PackEntry) -> Option<String> {
        let key = pack_key(&pack.id);
        let trailer = match self.trailer(pack).await {
            Ok(Some(blobs)) => blobs,
            Ok(None) => return Some(format!("{key} is missing")),
            Err(e) => return Some(e),
        };
        if trailer == pack.blobs {
            return None;
        }
        let listed: HashMap<_, _> = trailer.iter().map(|b| (b.id, b)).collect();
        let wrong = pack.blobs.iter().find(|b| listed.get(&b.id).is_none_or(|t| *t != *b));
        Some(match wrong {
            Some(b) => format!(
                "{key}: the index places chunk {} at {}+{}, the pack's trailer {}",
                b.id.short(),
                b.offset,
                b.length,
                match listed.get(&b.id) {
                    Some(t) => format!("at {}+{}", t.offset, t.length),
                    None => "does not list it".into(),
                }
            ),
            None => format!(
                "{key}: the trailer lists {} blobs, the index {}",
                trailer.len(),
                pack.blobs.len()
            ),
        })
    }

    /// The blob list in the trailer of `pack` (fetched by range), `None` when the pack is
    /// missing; an error line when its size differs or its trailer is damaged.
    async fn trailer(
        &self,
        pack: &PackEntry,
    ) -> std::result::Result<Option<Vec<BlobEntry>>, String> {
        /// Most trailers fit: one range request reads footer and trailer together.
        const TAIL: u64 = 64 << 10;
        let key = pack_key(&pack.id);
        let name = key.to_string();
        // One request: the last TAIL bytes by the indexed size, and the object's real size
        // with them (not a suffix range: some servers refuse one longer than the object).
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(pack.size.saturating_sub(TAIL)..pack.size)),
            ..Default::default()
        };
        let got = crate::retry::with_retries("get range", || async {
            let got = self.repo.store().get_opts(&key, options.clone()).await?;
            let (size, range) = (got.meta.size, got.range.clone());
            Ok((size, range, got.bytes().await?))
        })
        .await;
        let (size, range, tail) = match got {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            // A pack shorter than indexed can make the range unsatisfiable: say so.
            Err(e) => {
                return Err(match self.repo.store().head(&key).await {
                    Ok(meta) if meta.size != pack.size => {
                        format!("{key} has {} bytes, expected {}", meta.size, pack.size)
                    }
                    _ => format!("{key}: {e}"),
                });
            }
        };
        if size != pack.size {
            return Err(format!("{key} has {size} bytes, expected {}", pack.size));
        }
        let start = range.start;
        if range.end != size || tail.len() as u64 != size - start {
            return Err(format!("{key}: asked for its last {TAIL} bytes, got {range:?}"));
        }
        let len = pack_trailer_len(&name, &tail, size).map_err(|e| e.to_string())?;
        let trailer_start = size - PACK_FOOTER as u64 - len;
        let body = if trailer_start >= start {
            tail.slice((trailer_start - start) as usize..tail.len() - PACK_FOOTER)
        } else {
            self.repo
                .get_range(&key, trailer_start..size - PACK_FOOTER as u64)
                .await
                .map_err(|e| e.to_string())?
        };
        let body = self
            .repo
            .crypt()
            .open(&name, crate::crypt::Domain::Trailer, body)
            .map_err(|e| e.to_string())?;
        decode_metadata::<Vec<BlobEntry>>(&name, &body).map(Some).map_err(|e| e.to_string())
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

/// A check named `name` over objects of one kind: `passed` when none is damaged, else the
/// damaged ones listed, followed by `advice`.
fn objects_check(name: &str, passed: String, damaged: &[DamagedObject], advice: &str) -> Check {
    if damaged.is_empty() {
        return Check::pass(name, passed);
    }
    let list: Vec<String> =
        damaged.iter().map(|d| format!("{} is damaged ({})", d.key, d.reason)).collect();
    Check::fail(name, format!("{}{advice}", summarize(&list)))
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
        // A base backup is only as good as the WAL after it.
        let manifest = snapshot.manifest();
        if let Some(start) = crate::WalStart::from_metadata(&manifest.metadata) {
            report.checks.push(self.repo.check_wal(&manifest.name, &start, self.read_data).await);
        }
        // So is a replica's base snapshot, by the segments of its generation.
        if let Some(base) = crate::replica::ReplicaBase::from_metadata(&manifest.metadata) {
            report
                .checks
                .push(self.repo.check_segments(&manifest.name, &base, self.read_data).await);
        }
        Ok(report)
    }
}
