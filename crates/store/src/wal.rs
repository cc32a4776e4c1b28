//! The WAL archive: files a database server hands over one at a time (PostgreSQL's WAL
//! segments, timeline history and backup-history files), kept per series (a cluster's name)
//! in the same repository as its base backups.
//!
//! A file's bytes go through the usual chunking, deduplication and packs; its entry, written
//! last with one conditional create at `wal/SERIES/FILE`, makes it visible. So an archived
//! file is visible only once it is completely stored, and a name is never given to other
//! bytes: pushing the same file again is a success, pushing other bytes under its name is
//! [`StoreError::WalConflict`].
//!
//! An entry is a header and a sealed body:
//! - 8 bytes `LBWAL 1\n`;
//! - 32 bytes, the equality tag: the repository's chunk id of the file's SHA-256 (keyed in an
//!   encrypted repository), which lets a write-only key tell "the same file again" from "other
//!   bytes" without reading anything sealed;
//! - 32 bytes, the SHA-256 of the sealed body (damage is caught in plaintext repositories
//!   too);
//! - the body: series, file name, host, time, size, SHA-256 and chunk ids, sealed like a
//!   manifest but in a domain of its own.
//!
//! `SERIES` in the key is the first 16 bytes of the chunk id of the series name, in hex:
//! names do not reach the store.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use lifeboat_core::wal::{Segment, WalNeeds};
use lifeboat_core::{Check, ChunkId, Digest, Error as CoreError, NoProgress};
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::crypt::Domain;
use crate::error::{Result, StoreError};
use crate::format::{decode_metadata, encode_metadata};
use crate::repository::{Repository, read_all_in};
use crate::retry::with_retries;

/// Where WAL entries live in the store.
pub const WAL_PREFIX: &str = "wal";

const MAGIC: &[u8; 8] = b"LBWAL 1\n";
const HEADER: usize = MAGIC.len() + 32 + 32;

/// The longest file name the archive takes.
const MAX_FILE_LEN: usize = 64;

/// One archived file's entry: everything needed to read it back.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WalEntry {
    series: String,
    file: String,
    host: String,
    time: DateTime<Utc>,
    size: u64,
    sha256: Digest,
    stored: u64,
    chunks: Vec<ChunkId>,
}

/// What [`Repository::wal_push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalPushed {
    /// The file is archived now; `stored` bytes were new to the repository.
    Stored {
        /// Bytes written to packs (after deduplication and compression).
        stored: u64,
    },
    /// The same file was archived before: nothing was written.
    AlreadyArchived,
}

/// One archived file as the store lists it (nothing is read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalFile {
    /// Its name (`000000010000000000000003`, `00000002.history`).
    pub file: String,
    /// When its entry was written.
    pub archived: DateTime<Utc>,
}

/// Where recovery from a snapshot starts reading the WAL archive, from the snapshot's
/// metadata: `timeline`, `stop_lsn` and `wal_segment_size`, as base backups record them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalStart {
    /// The timeline the base backup was taken on.
    pub timeline: u32,
    /// Where the base backup's own WAL ends.
    pub stop_lsn: u64,
    /// The cluster's WAL segment size.
    pub segment_size: u64,
}

impl WalStart {
    /// The start a snapshot's metadata declares; `None` for snapshots that need no WAL.
    pub fn from_metadata(metadata: &serde_json::Value) -> Option<WalStart> {
        Some(WalStart {
            timeline: u32::try_from(metadata.get("timeline")?.as_u64()?).ok()?,
            stop_lsn: lifeboat_core::wal::parse_lsn(metadata.get("stop_lsn")?.as_str()?)?,
            segment_size: metadata.get("wal_segment_size")?.as_u64()?,
        })
    }
}

/// Checks a file name the archive may hold: 1 to 64 characters of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot.
///
/// # Errors
/// [`CoreError::InvalidInput`] saying what is wrong.
pub fn check_wal_file_name(file: &str) -> Result<()> {
    let ok = !file.is_empty()
        && file.len() <= MAX_FILE_LEN
        && !file.starts_with('.')
        && file.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidInput {
            what: format!("{file:?} is not a WAL file name"),
            hint: "give the file name PostgreSQL passes as %f (such as 000000010000000000000003)"
                .into(),
        }
        .into())
    }
}

impl Repository {
    /// The store folder of a series.
    fn wal_series_key(&self, series: &str) -> String {
        let id = self.chunk_id(format!("lifeboat wal series {series}").as_bytes());
        format!("{WAL_PREFIX}/{}", &id.to_hex()[..32])
    }

    pub(crate) fn wal_key(&self, series: &str, file: &str) -> Path {
        Path::from(format!("{}/{file}", self.wal_series_key(series)))
    }

    /// Archives `content` as `file` of `series`: stored, then made visible by one
    /// conditional create. Idempotent: the same bytes again are
    /// [`WalPushed::AlreadyArchived`].
    ///
    /// # Errors
    /// [`StoreError::WalConflict`] when other bytes are archived under that name (nothing is
    /// written); invalid names; store errors naming the object.
    pub async fn wal_push(&self, series: &str, file: &str, content: Bytes) -> Result<WalPushed> {
        lifeboat_core::check_snapshot_name(series)?;
        check_wal_file_name(file)?;
        let key = self.wal_key(series, file);
        let sha256 = Digest::of(&content);
        let tag = self.wal_tag_of(&sha256);
        let conflict = || StoreError::WalConflict { series: series.into(), file: file.into() };
        // A retry after a push whose success PostgreSQL never heard of is the common case.
        if let Some(existing) = self.wal_tag(&key).await? {
            return if existing == tag { Ok(WalPushed::AlreadyArchived) } else { Err(conflict()) };
        }
        let lease =
            self.start_backup_lease(&format!("wal-push {series} {file}"), self.lease_ttl()).await?;
        let pushed = async {
            self.reload_index().await?;
            self.store_wal_file(series, file, key, sha256, content).await
        }
        .await;
        lease.end().await;
        pushed
    }

    /// As [`Repository::wal_push`], for a caller that holds a backup lease for as long as it
    /// pushes (a replicator) and is the only writer of `series`: no lease and no index reload
    /// per file, one request less to tell a retry.
    ///
    /// # Errors
    /// As [`Repository::wal_push`].
    pub async fn wal_push_held(
        &self,
        series: &str,
        file: &str,
        content: Bytes,
    ) -> Result<WalPushed> {
        lifeboat_core::check_snapshot_name(series)?;
        check_wal_file_name(file)?;
        let key = self.wal_key(series, file);
        self.store_wal_file(series, file, key, Digest::of(&content), content).await
    }

    /// The equality tag of a file whose SHA-256 is `sha256` (keyed, so the store cannot
    /// confirm a file it knows).
    fn wal_tag_of(&self, sha256: &Digest) -> Digest {
        self.chunk_id(&sha256.0)
    }

    /// Stores a file's bytes (`sha256` their SHA-256) and makes its entry visible with one
    /// conditional create.
    async fn store_wal_file(
        &self,
        series: &str,
        file: &str,
        key: Path,
        sha256: Digest,
        content: Bytes,
    ) -> Result<WalPushed> {
        let tag = self.wal_tag_of(&sha256);
        let conflict = || StoreError::WalConflict { series: series.into(), file: file.into() };
        {
            let size = content.len() as u64;
            let reader: lifeboat_core::ByteStream = Box::pin(std::io::Cursor::new(content));
            let stored = self.store_stream(reader, &[], &NoProgress).await?;
            if stored.sha256 != sha256 || stored.size != size {
                return Err(StoreError::Malformed {
                    key: key.to_string(),
                    reason: "the stored stream is not the file given".into(),
                });
            }
            let entry = WalEntry {
                series: series.into(),
                file: file.into(),
                host: crate::host_name(),
                time: Utc::now(),
                size,
                sha256,
                stored: stored.new_bytes,
                chunks: stored.chunks,
            };
            let body = self.encode_wal_entry(tag, &entry)?;
            match self.create_bytes(&key, body).await {
                Ok(()) => {
                    info!(series, file, size, stored = entry.stored, "WAL file archived");
                    Ok(WalPushed::Stored { stored: entry.stored })
                }
                Err(StoreError::Object {
                    source: object_store::Error::AlreadyExists { .. },
                    ..
                }) => {
                    // Another push of this name won the race: fine if it is the same file.
                    match self.wal_tag(&key).await? {
                        Some(existing) if existing == tag => Ok(WalPushed::AlreadyArchived),
                        _ => Err(conflict()),
                    }
                }
                Err(e) => Err(e),
            }
        }
    }

    /// The equality tag of the entry at `key`, `None` when there is none.
    async fn wal_tag(&self, key: &Path) -> Result<Option<Digest>> {
        match self.get_range(key, 0..HEADER as u64).await {
            Ok(head) if head.len() == HEADER && head.starts_with(MAGIC) => {
                let mut tag = [0; 32];
                tag.copy_from_slice(&head[MAGIC.len()..MAGIC.len() + 32]);
                Ok(Some(Digest(tag)))
            }
            Ok(_) => Err(StoreError::Malformed {
                key: key.to_string(),
                reason: "not a WAL entry (its header is wrong)".into(),
            }),
            Err(StoreError::Core(CoreError::Missing { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads `file` of `series` back, checked chunk by chunk and as a whole; `None` when it
    /// is not archived.
    ///
    /// # Errors
    /// A damaged entry or chunk ([`CoreError::Corrupt`], [`StoreError::Malformed`]) naming
    /// the file; a write-only key; store errors.
    pub async fn wal_fetch(&self, series: &str, file: &str) -> Result<Option<Bytes>> {
        lifeboat_core::check_snapshot_name(series)?;
        check_wal_file_name(file)?;
        let key = self.wal_key(series, file);
        let body = match self.get_bytes(&key).await {
            Ok(body) => body,
            Err(StoreError::Core(CoreError::Missing { .. })) => return Ok(None),
            Err(e) => return Err(e),
        };
        let entry = self.decode_wal_entry(&key, body)?;
        if entry.series != series || entry.file != file {
            return Err(StoreError::Malformed {
                key: key.to_string(),
                reason: format!(
                    "it holds {} of {}, not {file} of {series}: it was moved",
                    entry.file, entry.series
                ),
            });
        }
        let chunks: Vec<Bytes> = crate::read::read_chunks(
            self.clone(),
            &entry.chunks,
            self.read_options(),
            // The content is checked whole below before anything uses it.
            crate::read::ChunkChecks::LeftToTheWhole,
        )
        .try_collect()
        .await?;
        let mut content = Vec::with_capacity(entry.size as usize);
        for chunk in chunks {
            content.extend_from_slice(&chunk);
        }
        let actual = Digest::of(&content);
        if actual != entry.sha256 || content.len() as u64 != entry.size {
            return Err(CoreError::Corrupt {
                object: format!("WAL file {file} of {series}"),
                expected: entry.sha256.to_hex(),
                actual: actual.to_hex(),
            }
            .into());
        }
        Ok(Some(Bytes::from(content)))
    }

    /// The files archived in `series`, in name order (one listing; nothing is read).
    ///
    /// # Errors
    /// Store errors.
    pub async fn wal_files(&self, series: &str) -> Result<Vec<WalFile>> {
        lifeboat_core::check_snapshot_name(series)?;
        let prefix = Path::from(self.wal_series_key(series));
        let mut files: Vec<WalFile> = with_retries("list", || async {
            self.store().list(Some(&prefix)).try_collect::<Vec<_>>().await
        })
        .await
        .map_err(|e| StoreError::object("list", prefix.to_string(), e))?
        .into_iter()
        .filter_map(|meta| {
            let file = meta.location.filename()?.to_string();
            Some(WalFile { file, archived: meta.last_modified })
        })
        .collect();
        files.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(files)
    }

    /// When the newest file of `series` was archived: its RPO is that file's age.
    ///
    /// # Errors
    /// Store errors.
    pub async fn wal_newest(&self, series: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self.wal_files(series).await?.into_iter().map(|f| f.archived).max())
    }

    /// When the newest WAL file was archived, for each name among `snapshots` that has base
    /// backups (one listing per such name): such a name is as fresh as its archive. For a
    /// SQLite replica, its newest segment's time or, while its replicator holds the replica's
    /// lease, the lease's last renewal.
    ///
    /// # Errors
    /// Store errors listing an archive.
    pub async fn wal_newest_by_name(
        &self,
        snapshots: &[crate::StoredSnapshot],
    ) -> Result<BTreeMap<String, DateTime<Utc>>> {
        let mut newest = BTreeMap::new();
        for name in wal_series_of(snapshots) {
            if let Some(time) = self.wal_newest(name).await? {
                newest.insert(name.to_string(), time);
            }
        }
        // A replica is as fresh as its newest segment, or, while its replicator runs (its
        // lease renewed), as its lease's last renewal: an idle database ships nothing.
        for name in replica_names_of(snapshots) {
            let shipped = self.newest_shipped(name).await?;
            let alive = self
                .replica_holder(name)
                .await?
                .filter(|h| h.is_live(Utc::now()))
                .map(|h| h.renewed.unwrap_or(h.acquired).min(Utc::now()));
            if let Some(time) = shipped.into_iter().chain(alive).max() {
                newest.insert(name.to_string(), time);
            }
        }
        Ok(newest)
    }

    /// What recovery from a base backup of `series` that starts at `start` reads from the
    /// archive, and the gaps in it (history files read to follow timelines).
    ///
    /// # Errors
    /// Store errors; a history file that cannot be read.
    pub async fn wal_needs(&self, series: &str, start: &WalStart) -> Result<WalNeeds> {
        let present: BTreeSet<String> =
            self.wal_files(series).await?.into_iter().map(|f| f.file).collect();
        let mut histories = BTreeMap::new();
        for name in &present {
            let Some(timeline) = lifeboat_core::wal::history_timeline(name) else { continue };
            let content = self.wal_fetch(series, name).await?.unwrap_or_default();
            histories.insert(
                timeline,
                lifeboat_core::wal::parse_history(&String::from_utf8_lossy(&content)),
            );
        }
        Ok(lifeboat_core::wal::wal_needs(
            start.timeline,
            start.stop_lsn,
            start.segment_size,
            &present,
            &histories,
        ))
    }

    /// The `wal` check of a snapshot that needs the archive: no gap from its end to the
    /// newest archived segment along the newest timeline; with `read_data`, every segment
    /// read back and checked.
    pub async fn check_wal(&self, series: &str, start: &WalStart, read_data: bool) -> Check {
        let needs = match self.wal_needs(series, start).await {
            Ok(needs) => needs,
            Err(e) => return Check::fail("wal", format!("the WAL archive of {series}: {e}")),
        };
        let timelines =
            needs.timelines.iter().map(u32::to_string).collect::<Vec<_>>().join(" then ");
        if !needs.missing.is_empty() {
            let count = needs.missing.len();
            let shown = needs.missing.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            return Check::fail(
                "wal",
                format!(
                    "the WAL archive of {series} lacks {count} segment(s) recovery needs: \
                     {shown}; recovery from this backup stops before the first"
                ),
            );
        }
        let (Some(first), Some(last)) = (needs.needed.first(), needs.needed.last()) else {
            return Check::pass(
                "wal",
                format!(
                    "nothing archived in {series} after this backup yet: it restores to its own end"
                ),
            );
        };
        let mut detail = format!(
            "{} segments from {first} to {last} (timeline {timelines}), no gap",
            needs.needed.len()
        );
        if read_data {
            let failures = self.wal_read_back(series, needs.needed.clone()).await;
            if !failures.is_empty() {
                return Check::fail("wal", failures.join("; "));
            }
            detail.push_str(", every byte read back");
        }
        Check::pass("wal", detail)
    }

    /// Reads each of `files` of `series` back, 4 at a time, checked; what failed, each as
    /// `FILE: why` (for `verify --read-data`).
    pub(crate) async fn wal_read_back(&self, series: &str, files: Vec<String>) -> Vec<String> {
        futures::stream::iter(files)
            .map(|name: String| async move {
                match self.wal_fetch(series, &name).await {
                    Ok(Some(_)) => None,
                    Ok(None) => Some(format!("{name}: gone")),
                    Err(e) => Some(format!("{name}: {e}")),
                }
            })
            .buffered(4)
            .filter_map(|f| async move { f })
            .collect()
            .await
    }

    /// After `removed` were forgotten: deletes the archived segments that no remaining base
    /// backup of their series needs (those before the segment holding the oldest remaining
    /// one's end, on every timeline). History files stay; a series whose base backups are
    /// all gone keeps its whole archive. Their data goes with the next prune. Returns how many
    /// entries were deleted.
    ///
    /// # Errors
    /// Store errors listing or deleting entries.
    pub(crate) async fn forget_unneeded_wal(
        &self,
        snapshots: &[crate::StoredSnapshot],
        removed: &[Digest],
    ) -> Result<usize> {
        let removed: HashSet<&Digest> = removed.iter().collect();
        let mut series: BTreeSet<&str> = BTreeSet::new();
        for snapshot in snapshots.iter().filter(|s| removed.contains(&s.id())) {
            if WalStart::from_metadata(&snapshot.manifest().metadata).is_some() {
                series.insert(snapshot.manifest().name.as_str());
            }
        }
        let mut deleted = 0;
        for name in series {
            let oldest = snapshots
                .iter()
                .filter(|s| !removed.contains(&s.id()) && s.manifest().name == name)
                .filter_map(|s| WalStart::from_metadata(&s.manifest().metadata))
                .map(|start| (start.stop_lsn / start.segment_size.max(1), start.segment_size))
                .min();
            let Some((first_needed, size)) = oldest else { continue };
            for file in self.wal_files(name).await? {
                // Segments, and the `.partial` and `.backup` files named after one.
                let Some(segment) =
                    file.file.get(..24).and_then(|head| Segment::parse_sized(head, size))
                else {
                    continue;
                };
                if segment.number < first_needed {
                    self.delete_key(&self.wal_key(name, &file.file)).await?;
                    deleted += 1;
                }
            }
            info!(series = name, deleted, "forgot WAL no kept base backup needs");
        }
        Ok(deleted)
    }

    /// Every chunk an archived file needs: what prune must keep.
    ///
    /// # Errors
    /// An entry that cannot be read: prune must not go on without knowing what it needs.
    pub(crate) async fn wal_chunks(&self) -> Result<HashSet<ChunkId>> {
        let mut chunks = HashSet::new();
        for (key, body) in read_all_in(self.store(), WAL_PREFIX).await? {
            // Gone between the listing and the read: nothing to keep for it.
            let Some(body) = body else { continue };
            chunks.extend(self.decode_wal_entry(&key, body)?.chunks);
        }
        Ok(chunks)
    }

    fn encode_wal_entry(&self, tag: Digest, entry: &WalEntry) -> Result<Bytes> {
        let sealed = self.crypt().seal(Domain::Wal, encode_metadata(entry, "new WAL entry")?)?;
        let mut body = Vec::with_capacity(HEADER + sealed.len());
        body.extend_from_slice(MAGIC);
        body.extend_from_slice(&tag.0);
        body.extend_from_slice(&Digest::of(&sealed).0);
        body.extend_from_slice(&sealed);
        Ok(Bytes::from(body))
    }

    fn decode_wal_entry(&self, key: &Path, body: Bytes) -> Result<WalEntry> {
        let name = key.to_string();
        if body.len() < HEADER || !body.starts_with(MAGIC) {
            return Err(StoreError::Malformed {
                key: name,
                reason: "not a WAL entry (its header is wrong)".into(),
            });
        }
        let sealed = body.slice(HEADER..);
        let check = &body[MAGIC.len() + 32..HEADER];
        let actual = Digest::of(&sealed);
        if actual.0 != check {
            return Err(CoreError::Corrupt {
                object: name,
                expected: hex::encode(check),
                actual: actual.to_hex(),
            }
            .into());
        }
        let plain = self.crypt().open(&name, Domain::Wal, sealed)?;
        let entry: WalEntry = decode_metadata(&name, &plain)?;
        let expected = self.wal_key(&entry.series, &entry.file);
        if &expected != key {
            return Err(StoreError::Malformed {
                key: name,
                reason: format!("it holds {} of {}: it was moved", entry.file, entry.series),
            });
        }
        Ok(entry)
    }
}

/// The names among `snapshots` that are SQLite replicas (their base snapshots record
/// `replica`).
pub fn replica_names_of(snapshots: &[crate::StoredSnapshot]) -> BTreeSet<&str> {
    snapshots
        .iter()
        .filter(|s| s.manifest().metadata.get("replica").is_some())
        .map(|s| s.manifest().name.as_str())
        .collect()
}

/// The names among `snapshots` that have base backups: the WAL series their archives are
/// kept under.
pub fn wal_series_of(snapshots: &[crate::StoredSnapshot]) -> BTreeSet<&str> {
    snapshots
        .iter()
        .filter(|s| WalStart::from_metadata(&s.manifest().metadata).is_some())
        .map(|s| s.manifest().name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Password;

    async fn repo(encrypted: bool) -> Repository {
        let store: std::sync::Arc<dyn object_store::ObjectStore> =
            std::sync::Arc::new(object_store::memory::InMemory::new());
        if encrypted {
            let password = Password::new("wal test");
            Repository::init_store_with(store, "memory://wal", Some(&password)).await.unwrap()
        } else {
            Repository::init_store(store, "memory://wal").await.unwrap()
        }
    }

    fn segment(seed: u8) -> Bytes {
        // 1 MiB that compresses, differs by seed.
        Bytes::from((0..1 << 20).map(|i: u32| (i % 251) as u8 ^ seed).collect::<Vec<u8>>())
    }

    #[tokio::test]
    async fn a_file_is_archived_once_and_read_back() {
        for encrypted in [false, true] {
            let repo = repo(encrypted).await;
            let file = "000000010000000000000001";
            assert_eq!(repo.wal_fetch("db", file).await.unwrap(), None);
            let pushed = repo.wal_push("db", file, segment(1)).await.unwrap();
            assert!(matches!(pushed, WalPushed::Stored { stored } if stored > 0));
            assert_eq!(
                repo.wal_push("db", file, segment(1)).await.unwrap(),
                WalPushed::AlreadyArchived
            );
            let err = repo.wal_push("db", file, segment(2)).await.unwrap_err();
            assert!(matches!(err, StoreError::WalConflict { .. }), "{err}");
            assert_eq!(repo.wal_fetch("db", file).await.unwrap(), Some(segment(1)));
            // Series do not see each other's files.
            assert_eq!(repo.wal_fetch("other", file).await.unwrap(), None);
            let listed = repo.wal_files("db").await.unwrap();
            assert_eq!(listed.iter().map(|f| f.file.as_str()).collect::<Vec<_>>(), [file]);
            assert_eq!(repo.wal_chunks().await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn a_damaged_or_moved_entry_is_refused() {
        let repo = repo(false).await;
        let (a, b) = ("000000010000000000000001", "000000010000000000000002");
        repo.wal_push("db", a, segment(1)).await.unwrap();
        let key = repo.wal_key("db", a);
        let mut body = repo.get_bytes(&key).await.unwrap().to_vec();
        let last = body.len() - 1;
        body[last] ^= 1;
        repo.put_bytes(&key, Bytes::from(body)).await.unwrap();
        let err = repo.wal_fetch("db", a).await.unwrap_err();
        assert!(err.to_string().contains(&key.to_string()), "{err}");
        assert!(repo.wal_chunks().await.is_err(), "prune must not go on past a damaged entry");

        // An intact entry copied to another name is not that file.
        let repo = self::repo(true).await;
        repo.wal_push("db", a, segment(1)).await.unwrap();
        let body = repo.get_bytes(&repo.wal_key("db", a)).await.unwrap();
        repo.put_bytes(&repo.wal_key("db", b), body).await.unwrap();
        let err = repo.wal_fetch("db", b).await.unwrap_err();
        assert!(err.to_string().contains("moved"), "{err}");
    }

    /// Prune keeps what archived files need and deletes what only a forgotten snapshot did.
    #[tokio::test]
    async fn prune_keeps_archived_files() {
        use lifeboat_core::{Kind, MemoryBackup};
        let repo = repo(true).await;
        let file = "000000010000000000000001";
        repo.wal_push("db", file, segment(3)).await.unwrap();
        let source =
            MemoryBackup { name: "gone".into(), kind: Kind::DIR, data: segment(9).to_vec() };
        let snapshot =
            repo.backup(&source, &crate::BackupOptions::default(), &NoProgress).await.unwrap();
        repo.forget(&[snapshot.id()]).await.unwrap();
        let options =
            crate::PruneOptions { grace: std::time::Duration::ZERO, ..Default::default() };
        let first = repo.prune(&options).await.unwrap();
        assert!(first.marked > 0, "the forgotten snapshot's pack is marked: {first:?}");
        repo.prune(&options).await.unwrap();
        assert_eq!(repo.wal_fetch("db", file).await.unwrap(), Some(segment(3)));
        assert!(repo.get_bytes(&repo.wal_key("db", file)).await.is_ok());
    }

    #[test]
    fn file_names_are_checked() {
        for good in ["000000010000000000000003", "00000002.history", "x.partial"] {
            assert!(check_wal_file_name(good).is_ok(), "{good}");
        }
        for bad in ["", "../config", ".hidden", "a/b", &"0".repeat(65)] {
            assert!(check_wal_file_name(bad).is_err(), "{bad}");
        }
    }
}
