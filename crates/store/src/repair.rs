//! Repair: rebuild what can be derived from the packs.
//!
//! Packs describe themselves (their trailer lists their blobs) and are named by their hash,
//! so the index is derived data: a damaged index file costs nothing once the packs it
//! described are read again. `repair_index` reads every pack that no sound index file
//! describes, checks it hashes to its key, writes one new index file for the sound ones, and
//! only then removes the damaged index files. Killed at any point it leaves a repository at
//! least as usable as before; running it again finishes the job.

use std::collections::HashSet;

use lifeboat_core::Digest;
use serde::Serialize;
use tracing::{info, warn};

use crate::error::Result;
use crate::format::{
    DATA_PREFIX, INDEX_VERSION, IndexFile, PackEntry, id_from_key, read_pack_trailer_in,
};
use crate::repository::{DamagedObject, Repository};

/// What `repair_index` found and did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Sound index files, kept as they are.
    pub sound_indexes: usize,
    /// Damaged index files: removed once the new index file was written.
    pub damaged_indexes: Vec<DamagedObject>,
    /// Packs no sound index file described, read whole and checked.
    pub packs_read: usize,
    /// Of those, packs that were sound and went into the new index file.
    pub packs_indexed: usize,
    /// Chunks in the new index file.
    pub chunks_indexed: usize,
    /// Packs that do not hash to their key or whose trailer is unreadable: left in place,
    /// not indexed. Their chunks are missing until a backup stores them again.
    pub damaged_packs: Vec<DamagedObject>,
    /// The index file written, if any.
    pub new_index: Option<String>,
}

impl RepairReport {
    /// Whether the repository had nothing to repair.
    pub fn clean(&self) -> bool {
        self.damaged_indexes.is_empty() && self.packs_indexed == 0 && self.damaged_packs.is_empty()
    }
}

impl Repository {
    /// Rebuilds the index from the packs (see the module docs), under the maintenance lease.
    ///
    /// # Errors
    /// [`crate::StoreError::Locked`] while a prune runs; store errors.
    pub async fn repair_index(&self, dry_run: bool) -> Result<RepairReport> {
        let mut lease = self.acquire_maintenance("repair index", self.lease_ttl()).await?;
        let result = self.repair_index_locked(dry_run, &mut lease).await;
        let released = lease.release().await;
        let report = result?;
        released?;
        Ok(report)
    }

    async fn repair_index_locked(
        &self,
        dry_run: bool,
        lease: &mut crate::lease::MaintenanceLease,
    ) -> Result<RepairReport> {
        let mut report = RepairReport { dry_run, ..RepairReport::default() };
        // Index files are listed before packs: a backup writes its packs before its index
        // file, so every pack a listed index file describes is in the pack listing too.
        let (files, damaged) = self.read_index_files().await?;
        report.sound_indexes = files.len();
        report.damaged_indexes = damaged;
        let described: HashSet<Digest> =
            files.iter().flat_map(|(_, f)| f.packs.iter().map(|p| p.id)).collect();
        // Packs a prune has marked left the index on purpose.
        let (marks, _) = self.marked_packs().await?;
        let marked: HashSet<Digest> = marks.iter().flatten().map(|p| p.id).collect();
        let mut packs: Vec<PackEntry> = Vec::new();
        for key in self.list_keys(DATA_PREFIX).await? {
            let Some(id) = id_from_key(&key) else { continue };
            if described.contains(&id) || marked.contains(&id) {
                continue;
            }
            lease.keep_alive().await?;
            report.packs_read += 1;
            let bytes = self.get_bytes(&key).await?;
            let actual = Digest::of(&bytes);
            if actual != id {
                let reason = format!("its bytes hash to {actual}");
                warn!(pack = %key, %reason, "damaged pack not indexed");
                report.damaged_packs.push(DamagedObject { key: key.to_string(), reason });
                continue;
            }
            match read_pack_trailer_in(key.as_ref(), &bytes, self.crypt()) {
                Ok(blobs) => packs.push(PackEntry { id, size: bytes.len() as u64, blobs }),
                Err(e) => {
                    warn!(pack = %key, error = %e, "pack with an unreadable trailer not indexed");
                    report
                        .damaged_packs
                        .push(DamagedObject { key: key.to_string(), reason: e.to_string() });
                }
            }
        }
        report.packs_indexed = packs.len();
        report.chunks_indexed = packs.iter().map(|p| p.blobs.len()).sum();
        if dry_run {
            return Ok(report);
        }
        // The replacement first, the damaged files after: never a moment with neither.
        if !packs.is_empty() {
            let key = self.write_index_file(IndexFile { version: INDEX_VERSION, packs }).await?;
            report.new_index = Some(key.to_string());
        }
        for d in &report.damaged_indexes {
            // Rebuilt from the same packs, the new file can be the damaged one's original,
            // under the same key: then writing it has already replaced the damage.
            if report.new_index.as_ref() == Some(&d.key) {
                continue;
            }
            lease.keep_alive().await?;
            self.delete_key(&object_store::path::Path::from(d.key.as_str())).await?;
        }
        self.reload_index().await?;
        info!(
            packs = report.packs_indexed,
            removed = report.damaged_indexes.len(),
            "index repaired"
        );
        Ok(report)
    }
}
