//! Prune: delete what no snapshot references, safely, while backups keep running.
//!
//! Two phases, under the exclusive maintenance lease (see `lease.rs`); backups never wait.
//!
//! **Mark.** Find packs holding no chunk any snapshot references (and packs from crashed
//! backups that no index lists), and repack packs that are mostly garbage: copy their live
//! blobs into new packs, then treat the old ones as garbage too. Write a *pending mark*
//! (`prune/pending/<id>`) listing the garbage packs with their entries, then a consolidated
//! index without them, then delete the index files it replaces. From then on new backups do
//! not see the marked packs and store those chunks afresh if they need them.
//!
//! **Sweep** (a later prune, or the same one when the grace period is zero). A mark is swept
//! only when (1) no index file lists a marked pack any more (otherwise the index is cleaned
//! first and the clock restarts), (2) the grace period has passed since the index was clean,
//! and (3) no backup that started before that moment is still running (its shared lease is
//! live). A backup that started earlier may have deduplicated against a marked chunk and not
//! written its manifest yet; waiting for its lease to end or expire closes that window.
//! Then, with a fresh list of snapshots, every marked pack that holds a chunk some snapshot
//! references and that exists nowhere else is *revived*: its entries go back into the index
//! and it is not deleted. The rest are deleted, then the mark.
//!
//! Each step leaves a repository that verifies: a prune killed anywhere is finished by the
//! next one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lifeboat_core::{ChunkId, Digest};
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::crypt::Domain;
use crate::error::{Result, StoreError};
use crate::format::{
    DATA_PREFIX, INDEX_VERSION, IndexFile, PackBuilder, PackEntry, id_from_key, pack_key,
    read_pack_trailer_in,
};
use crate::lease::MaintenanceLease;
use crate::repository::Repository;

pub(crate) const PENDING_PREFIX: &str = "prune/pending";

/// How prune behaves.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// How long marked packs wait, after leaving the index, before they may be deleted.
    pub grace: Duration,
    /// Packs whose referenced bytes are below this fraction of the pack are repacked.
    pub repack_below: f64,
    /// Report what would happen, change nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { grace: Duration::from_secs(3600), repack_below: 0.5, dry_run: false }
    }
}

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Snapshots in the repository.
    pub snapshots: usize,
    /// Packs in the repository before pruning.
    pub packs: usize,
    /// Packs newly marked as garbage.
    pub marked: usize,
    /// Bytes in the newly marked packs.
    pub marked_bytes: u64,
    /// Packs whose live blobs were copied into new packs.
    pub repacked: usize,
    /// Marked packs deleted.
    pub deleted: usize,
    /// Bytes freed by deleting them.
    pub freed_bytes: u64,
    /// Marked packs kept because a snapshot written since references them.
    pub revived: usize,
    /// Marks still waiting, and why.
    pub waiting: Vec<String>,
    /// Staging files of killed writes removed (local folders only).
    pub staging_removed: usize,
    /// Bytes in them.
    pub staging_bytes: u64,
    /// Index files merged into one (0 when there were few enough).
    pub index_files_merged: usize,
}

/// Above this many index files, prune, and a backup that read them, merge them into one:
/// opening a repository reads every index file, and a fleet writes one per backup.
pub const MERGE_INDEX_FILES_ABOVE: usize = 16;

/// A pending mark: packs to delete once it is safe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingMark {
    marked_at: DateTime<Utc>,
    /// When no index file listed any of the packs any more; the grace period counts from here.
    index_clean_at: DateTime<Utc>,
    pub(crate) packs: Vec<PackEntry>,
}

impl Repository {
    /// The packs of every pending mark (for reads that fall back to them), and whether every
    /// mark could be read. When one was swept while being read its packs may just have gone
    /// back into the index, so the caller reads the index again.
    pub(crate) async fn marked_packs(&self) -> Result<(Vec<Vec<PackEntry>>, bool)> {
        // A write-only key reads no data, so it never needs marked packs (and may not read
        // the marks).
        if self.is_write_only() {
            return Ok((Vec::new(), true));
        }
        let (marks, complete) = self.read_pending_marks().await?;
        Ok((marks.into_iter().map(|(_, m)| m.packs).collect(), complete))
    }

    /// Prunes the repository (see the module docs for the protocol).
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another prune holds the maintenance lease; store errors.
    pub async fn prune(&self, options: &PruneOptions) -> Result<PruneReport> {
        let mut lease = self.acquire_maintenance("prune", self.lease_ttl()).await?;
        let result = self.prune_locked(options, &mut lease).await;
        let released = lease.release().await;
        let report = result?;
        released?;
        Ok(report)
    }

    async fn prune_locked(
        &self,
        options: &PruneOptions,
        lease: &mut MaintenanceLease,
    ) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        self.sweep(options, lease, &mut report).await?;
        lease.keep_alive().await?;
        self.mark(options, lease, &mut report).await?;
        if options.grace.is_zero() && !options.dry_run {
            lease.keep_alive().await?;
            report.waiting.clear();
            self.sweep(options, lease, &mut report).await?;
        }
        (report.staging_removed, report.staging_bytes) =
            self.remove_stale_staging(options.grace, options.dry_run).await?;
        let files = self.index_files().await?;
        if files.len() > MERGE_INDEX_FILES_ABOVE {
            report.index_files_merged = files.len();
            if !options.dry_run {
                lease.keep_alive().await?;
                self.rewrite_index(&files, &HashSet::new()).await?;
            }
        }
        Ok(report)
    }

    async fn pending_marks(&self) -> Result<Vec<(Path, PendingMark)>> {
        Ok(self.read_pending_marks().await?.0)
    }

    /// Every pending mark with its key, and whether all listed marks could be read: a mark
    /// deleted between listing and reading (a prune sweeping it) is left out.
    async fn read_pending_marks(&self) -> Result<(Vec<(Path, PendingMark)>, bool)> {
        let mut marks = Vec::new();
        let mut complete = true;
        for (key, body) in crate::repository::read_all_in(self.store(), PENDING_PREFIX).await? {
            let Some(body) = body else {
                debug!(%key, "a pending mark was swept while being read");
                complete = false;
                continue;
            };
            let mark = self.decode_pending_mark(&key, body)?;
            marks.push((key, mark));
        }
        Ok((marks, complete))
    }

    /// Opens and parses the pending mark at `key`.
    pub(crate) fn decode_pending_mark(&self, key: &Path, body: Bytes) -> Result<PendingMark> {
        let body = self.crypt().open(key.as_ref(), Domain::Mark, body)?;
        serde_json::from_slice(&body)
            .map_err(|e| StoreError::Malformed { key: key.to_string(), reason: e.to_string() })
    }

    async fn sweep(
        &self,
        options: &PruneOptions,
        lease: &mut MaintenanceLease,
        report: &mut PruneReport,
    ) -> Result<()> {
        for (key, mut mark) in self.pending_marks().await? {
            // (0) Revive at once what snapshots written since the mark need, so the index
            // cleaning below never takes away a pack a snapshot relies on.
            let (revive, rest) = self.split_revived(&mark.packs).await?;
            if !revive.is_empty() {
                report.revived += revive.len();
                if options.dry_run {
                    continue;
                }
                self.write_index_file(IndexFile { version: INDEX_VERSION, packs: revive }).await?;
                if rest.is_empty() {
                    self.delete_key(&key).await?;
                    continue;
                }
                mark.packs = rest;
                self.put_json(&key, &mark).await?;
            }
            let marked: HashSet<Digest> = mark.packs.iter().map(|p| p.id).collect();
            // (1) The index must not list marked packs: clean it and restart the clock.
            let files = self.index_files().await?;
            if files.iter().any(|(_, f)| f.packs.iter().any(|p| marked.contains(&p.id))) {
                if options.dry_run {
                    report.waiting.push(format!("{key}: the index still lists its packs"));
                    continue;
                }
                self.rewrite_index(&files, &marked).await?;
                mark.index_clean_at = Utc::now();
                self.put_json(&key, &mark).await?;
                report
                    .waiting
                    .push(format!("{key}: index cleaned now; deletable after the grace period"));
                if !options.grace.is_zero() {
                    continue;
                }
            }
            // (2) The grace period.
            let now = Utc::now();
            let grace =
                chrono::Duration::from_std(options.grace).unwrap_or(chrono::Duration::hours(1));
            if now < mark.index_clean_at + grace {
                report.waiting.push(format!(
                    "{key}: grace period until {}",
                    (mark.index_clean_at + grace).to_rfc3339()
                ));
                continue;
            }
            // (3) No backup that may have loaded the old index is still running. One whose
            // process on this host is gone (killed) is not: its lease goes.
            let mut blockers = Vec::new();
            for (lease_key, l) in self.backup_leases().await? {
                if !l.is_live(now) || l.acquired > mark.index_clean_at {
                    continue;
                }
                if l.holder_gone() {
                    warn!(operation = %l.operation, pid = l.pid, "the backup that holds this lease is gone (killed): it no longer holds up the prune");
                    if !options.dry_run {
                        self.delete_key(&lease_key).await?;
                    }
                    continue;
                }
                blockers.push(format!("{} on {} (pid {})", l.operation, l.host, l.pid));
            }
            if !blockers.is_empty() {
                report
                    .waiting
                    .push(format!("{key}: waiting for running backups: {}", blockers.join(", ")));
                continue;
            }
            // Revive what snapshots written in the meantime reference, delete the rest.
            let (revive, delete) = self.split_revived(&mark.packs).await?;
            report.revived += revive.len();
            report.deleted += delete.len();
            report.freed_bytes += delete.iter().map(|p| p.size).sum::<u64>();
            if options.dry_run {
                continue;
            }
            if !revive.is_empty() {
                self.write_index_file(IndexFile { version: INDEX_VERSION, packs: revive }).await?;
            }
            for pack in &delete {
                lease.keep_alive().await?;
                self.delete_key(&pack_key(&pack.id)).await?;
            }
            self.delete_key(&key).await?;
            info!(deleted = delete.len(), "swept a pending mark");
        }
        Ok(())
    }

    async fn mark(
        &self,
        options: &PruneOptions,
        lease: &mut MaintenanceLease,
        report: &mut PruneReport,
    ) -> Result<()> {
        let pending: HashSet<Digest> = self
            .pending_marks()
            .await?
            .into_iter()
            .flat_map(|(_, m)| m.packs.into_iter().map(|p| p.id))
            .collect();
        let snapshots = self.snapshots().await?;
        report.snapshots = snapshots.len();
        let mut referenced: HashSet<ChunkId> =
            snapshots.iter().flat_map(|s| s.manifest().chunks.iter().copied()).collect();
        referenced.extend(self.wal_chunks().await?);
        let files = self.index_files().await?;
        let mut indexed: HashMap<Digest, PackEntry> = HashMap::new();
        for (_, file) in &files {
            for pack in &file.packs {
                indexed.entry(pack.id).or_insert_with(|| pack.clone());
            }
        }
        // Packs on the store that no index lists: left by a crashed backup, or by one still
        // running (its index file comes last). Marking them is safe: the sweep waits for
        // every backup that started before, and revives what their snapshots reference.
        let mut all_packs: Vec<PackEntry> = indexed.values().cloned().collect();
        for key in self.list_keys(DATA_PREFIX).await? {
            let Some(id) = id_from_key(&key) else { continue };
            if indexed.contains_key(&id) || pending.contains(&id) {
                continue;
            }
            let bytes = self.get_bytes(&key).await?;
            let blobs =
                read_pack_trailer_in(key.as_ref(), &bytes, self.crypt()).unwrap_or_default();
            all_packs.push(PackEntry { id, size: bytes.len() as u64, blobs });
        }
        report.packs = all_packs.len() + pending.len();
        let referenced = with_bases(referenced, &all_packs);

        let mut garbage: Vec<PackEntry> = Vec::new();
        let mut to_repack: Vec<PackEntry> = Vec::new();
        let mut claimed: HashSet<ChunkId> = HashSet::new();
        for pack in all_packs.into_iter().filter(|p| !pending.contains(&p.id)) {
            let total: u64 = pack.blobs.iter().map(|b| u64::from(b.length)).sum();
            let live: u64 = pack
                .blobs
                .iter()
                .filter(|b| referenced.contains(&b.id))
                .map(|b| u64::from(b.length))
                .sum();
            if live == 0 {
                garbage.push(pack);
            } else if (live as f64) < options.repack_below * total as f64 {
                to_repack.push(pack);
            } else {
                claimed.extend(pack.blobs.iter().map(|b| b.id));
            }
        }
        report.repacked = to_repack.len();
        if options.dry_run {
            report.marked = garbage.len() + to_repack.len();
            report.marked_bytes = garbage.iter().chain(&to_repack).map(|p| p.size).sum();
            return Ok(());
        }
        // Copy live blobs out of mostly-garbage packs, compressed as they are.
        let mut new_packs = Vec::new();
        let mut builder = PackBuilder::with_capacity(self.config().pack_size as usize);
        for pack in &to_repack {
            lease.keep_alive().await?;
            let key = pack_key(&pack.id);
            let bytes = self.get_bytes(&key).await?;
            for blob in pack.blobs.iter().filter(|b| referenced.contains(&b.id)) {
                if !claimed.insert(blob.id) {
                    continue; // already kept elsewhere, or copied from another pack
                }
                let (start, end) =
                    (blob.offset as usize, blob.offset as usize + blob.length as usize);
                let data = bytes.get(start..end).ok_or_else(|| StoreError::Malformed {
                    key: key.to_string(),
                    reason: format!("blob {} lies outside the pack", blob.id),
                })?;
                builder.push(*blob, data);
                if builder.len() as u64 >= self.config().pack_size {
                    let full = std::mem::replace(
                        &mut builder,
                        PackBuilder::with_capacity(self.config().pack_size as usize),
                    );
                    new_packs.push(self.write_pack(full).await?);
                }
            }
            garbage.push(pack.clone());
        }
        if !builder.is_empty() {
            new_packs.push(self.write_pack(builder).await?);
        }
        if !new_packs.is_empty() {
            self.write_index_file(IndexFile { version: INDEX_VERSION, packs: new_packs }).await?;
        }
        if garbage.is_empty() {
            return Ok(());
        }
        report.marked = garbage.len();
        report.marked_bytes = garbage.iter().map(|p| p.size).sum();
        // The mark first, then the index without the marked packs: a crash in between leaves
        // packs both marked and indexed, which the sweep handles (it cleans the index first).
        let now = Utc::now();
        let mark = PendingMark { marked_at: now, index_clean_at: now, packs: garbage };
        let body = serde_json::to_vec(&mark)
            .map_err(|e| StoreError::Malformed { key: "mark".into(), reason: e.to_string() })?;
        let body = self.crypt().seal(Domain::Mark, body)?;
        let mark_key = Path::from(format!("{PENDING_PREFIX}/{}", Digest::of(&body)));
        self.put_bytes(&mark_key, Bytes::from(body)).await?;
        let marked: HashSet<Digest> = mark.packs.iter().map(|p| p.id).collect();
        let files = self.index_files().await?;
        self.rewrite_index(&files, &marked).await?;
        // The index became clean only now: restart the grace period from here.
        let mark = PendingMark { index_clean_at: Utc::now(), ..mark };
        self.put_json(&mark_key, &mark).await?;
        debug!(marked = mark.packs.len(), "packs marked");
        Ok(())
    }

    /// Splits marked packs into those a current snapshot needs (it references a chunk that
    /// no unmarked indexed pack holds) and the rest.
    async fn split_revived(&self, packs: &[PackEntry]) -> Result<(Vec<PackEntry>, Vec<PackEntry>)> {
        let mut referenced: HashSet<ChunkId> = self
            .snapshots()
            .await?
            .iter()
            .flat_map(|s| s.manifest().chunks.iter().copied())
            .collect();
        referenced.extend(self.wal_chunks().await?);
        let marked: HashSet<Digest> = packs.iter().map(|p| p.id).collect();
        let files = self.index_files().await?;
        let indexed: Vec<PackEntry> = files
            .iter()
            .flat_map(|(_, f)| f.packs.iter())
            .cloned()
            .chain(packs.iter().cloned())
            .collect();
        let referenced = with_bases(referenced, &indexed);
        let elsewhere: HashSet<ChunkId> = files
            .iter()
            .flat_map(|(_, f)| f.packs.iter())
            .filter(|p| !marked.contains(&p.id))
            .flat_map(|p| p.blobs.iter().map(|b| b.id))
            .collect();
        Ok(packs.iter().cloned().partition(|p| {
            p.blobs.iter().any(|b| referenced.contains(&b.id) && !elsewhere.contains(&b.id))
        }))
    }

    /// Replaces `files` by one consolidated index file without the packs in `drop`.
    pub(crate) async fn rewrite_index(
        &self,
        files: &[(Path, IndexFile)],
        drop: &HashSet<Digest>,
    ) -> Result<()> {
        let mut seen = HashSet::new();
        let mut packs: Vec<PackEntry> = Vec::new();
        for pack in files.iter().flat_map(|(_, f)| f.packs.iter()) {
            if !drop.contains(&pack.id) && seen.insert(pack.id) {
                packs.push(pack.clone());
            }
        }
        // New file first, old ones after: a reader never sees an index missing live packs.
        let written = if packs.is_empty() {
            None
        } else {
            Some(self.write_index_file(IndexFile { version: INDEX_VERSION, packs }).await?)
        };
        for (key, _) in files {
            if Some(key) != written.as_ref() {
                self.delete_key(key).await?;
            }
        }
        self.reload_index().await
    }

    async fn write_pack(&self, pack: PackBuilder) -> Result<PackEntry> {
        let (bytes, entry) = pack.finish_in(self.crypt())?;
        self.put_bytes(&pack_key(&entry.id), Bytes::from(bytes)).await?;
        Ok(entry)
    }

    async fn put_json<T: Serialize>(&self, key: &Path, value: &T) -> Result<()> {
        let body = serde_json::to_vec(value)
            .map_err(|e| StoreError::Malformed { key: key.to_string(), reason: e.to_string() })?;
        let body = self.crypt().seal(Domain::Mark, body)?;
        self.put_bytes(key, Bytes::from(body)).await
    }
}

/// `referenced` plus the base of every delta in it: a base lives as long as a delta needs it.
fn with_bases(mut referenced: HashSet<ChunkId>, packs: &[PackEntry]) -> HashSet<ChunkId> {
    let bases: Vec<ChunkId> = packs
        .iter()
        .flat_map(|p| p.blobs.iter())
        .filter(|b| referenced.contains(&b.id))
        .filter_map(|b| b.base)
        .collect();
    referenced.extend(bases);
    referenced
}
