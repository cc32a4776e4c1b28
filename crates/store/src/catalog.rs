//! The snapshots a repository holds: listed (with a cache of manifests, which never change),
//! loaded by id, found by id, prefix or `latest`, and forgotten.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use lifeboat_core::{Digest, Error as CoreError, Manifest};
use object_store::ObjectStoreExt;

use crate::crypt::Domain;
use crate::error::{Result, StoreError};
use crate::format::{SNAPSHOTS_PREFIX, decode_metadata, id_from_key, snapshot_key};
use crate::repository::{LIST_CONCURRENCY, Repository};
use crate::retry::with_retries;
use crate::snapshot::StoredSnapshot;

impl Repository {
    /// Every snapshot in the repository, oldest first.
    ///
    /// # Errors
    /// Store errors; a manifest whose bytes do not hash to its id is reported as corrupt.
    pub async fn snapshots(&self) -> Result<Vec<StoredSnapshot>> {
        self.refuse_write_only("list or read snapshots")?;
        let keys = self.list_keys(SNAPSHOTS_PREFIX).await?;
        let listed: Vec<Digest> = keys.iter().filter_map(id_from_key).collect();
        // Only what is listed now exists: forget the rest, read what is new.
        {
            let keep: std::collections::HashSet<&Digest> = listed.iter().collect();
            self.manifest_cache().retain(|id, _| keep.contains(id));
        }
        let mut snaps: Vec<StoredSnapshot> = futures::stream::iter(listed)
            .map(|id| {
                let cached = self.manifest_cache().get(&id).cloned();
                async move {
                    if let Some(manifest) = cached {
                        return Ok(Some(StoredSnapshot::new(self.clone(), id, manifest)));
                    }
                    match self.load_snapshot(id).await {
                        Ok(snap) => {
                            self.manifest_cache().insert(id, snap.manifest().clone());
                            Ok(Some(snap))
                        }
                        // Forgotten between listing and reading: it is simply no longer there.
                        Err(StoreError::Core(CoreError::SnapshotNotFound { .. })) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .try_filter_map(|snap| async move { Ok(snap) })
            .try_collect()
            .await?;
        snaps.sort_by(|a, b| a.manifest().time.cmp(&b.manifest().time).then(a.id().cmp(&b.id())));
        Ok(snaps)
    }

    fn manifest_cache(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Digest, Manifest>> {
        match self.inner.manifests.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Loads one snapshot by its full id, always from the store (a forgotten one is not
    /// found, whatever was read before).
    ///
    /// # Errors
    /// [`CoreError::SnapshotNotFound`] when there is no such manifest; corrupt manifests.
    pub async fn load_snapshot(&self, id: Digest) -> Result<StoredSnapshot> {
        self.refuse_write_only("read snapshots")?;
        let key = snapshot_key(&id);
        let body = self.get_bytes(&key).await.map_err(|e| match e {
            StoreError::Core(CoreError::Missing { .. }) => {
                StoreError::Core(CoreError::SnapshotNotFound { id: id.to_hex() })
            }
            other => other,
        })?;
        let actual = Digest::of(&body);
        if actual != id {
            return Err(CoreError::Corrupt {
                object: key.to_string(),
                expected: id.to_hex(),
                actual: actual.to_hex(),
            }
            .into());
        }
        let body = self.crypt().open(key.as_ref(), Domain::Manifest, body)?;
        let manifest: Manifest = decode_metadata(key.as_ref(), &body)?;
        Ok(StoredSnapshot::new(self.clone(), id, manifest))
    }

    /// Removes snapshots from the catalog (their manifests). The data they referenced stays
    /// until prune removes what nothing references any more.
    ///
    /// # Errors
    /// Store errors, naming the manifest that could not be deleted; the ones deleted before
    /// it stay deleted.
    pub async fn forget(&self, ids: &[Digest]) -> Result<()> {
        self.refuse_write_only("forget snapshots")?;
        for id in ids {
            self.manifest_cache().remove(id);
            let key = snapshot_key(id);
            match with_retries("delete", || self.inner.store.delete(&key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(StoreError::object("delete", key.to_string(), e)),
            }
        }
        Ok(())
    }

    /// Finds one snapshot by full id, unique id prefix, or `latest` (optionally of `name`).
    ///
    /// `latest` is the newest *backup*: safety snapshots (`pre-restore`) are restorable by id
    /// but never stand in for a backup, so after a `restore --force` the next `restore latest`
    /// still brings back the backup, not what the restore replaced. Without `name`, `latest`
    /// is refused when the repository holds more than one name, and with it, when that name
    /// is used by snapshots of more than one kind: guessing which one was meant could restore
    /// another target's data.
    ///
    /// # Errors
    /// [`CoreError::SnapshotNotFound`], [`CoreError::AmbiguousSnapshot`], or
    /// [`CoreError::InvalidInput`] for an ambiguous `latest`.
    pub async fn find(&self, selector: &str, name: Option<&str>) -> Result<StoredSnapshot> {
        if let Ok(id) = selector.parse::<Digest>() {
            return self.load_snapshot(id).await;
        }
        let snaps = self.snapshots().await?;
        let by_name = |s: &&StoredSnapshot| name.is_none_or(|n| s.manifest().name == n);
        if selector == "latest" {
            return latest_backup(&snaps, name).cloned();
        }
        let prefix = selector.to_ascii_lowercase();
        let matches: Vec<&StoredSnapshot> =
            snaps.iter().filter(by_name).filter(|s| s.id().to_hex().starts_with(&prefix)).collect();
        match matches.as_slice() {
            [one] if !prefix.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(CoreError::SnapshotNotFound { id: selector.into() }.into()),
            many => {
                Err(CoreError::AmbiguousSnapshot { prefix: selector.into(), matches: many.len() }
                    .into())
            }
        }
    }
}

/// The newest backup (never a safety snapshot) among `snaps` (oldest first), of `name` when
/// given; see [`Repository::find`] for when it is refused as ambiguous.
fn latest_backup<'a>(
    snaps: &'a [StoredSnapshot],
    name: Option<&str>,
) -> Result<&'a StoredSnapshot> {
    let backups: Vec<&StoredSnapshot> = snaps
        .iter()
        .filter(|s| !s.manifest().is_safety())
        .filter(|s| name.is_none_or(|n| s.manifest().name == n))
        .collect();
    let Some(newest) = backups.last() else {
        let safety = snaps
            .iter()
            .filter(|s| s.manifest().is_safety() && name.is_none_or(|n| s.manifest().name == n))
            .count();
        let id = match name {
            Some(n) if safety > 0 => format!(
                "latest of {n:?} ({safety} safety snapshots have that name, but no backup: \
                 a safety snapshot is restored by its id)"
            ),
            Some(n) => format!("latest of {n:?}"),
            None => "latest (the repository has no backups)".into(),
        };
        return Err(CoreError::SnapshotNotFound { id }.into());
    };
    let distinct = |values: Vec<String>| {
        let mut v = values;
        v.sort();
        v.dedup();
        v
    };
    if name.is_none() {
        let names = distinct(backups.iter().map(|s| s.manifest().name.clone()).collect());
        if names.len() > 1 {
            return Err(CoreError::InvalidInput {
                what: format!(
                    "`latest` is ambiguous: the repository holds {} names ({})",
                    names.len(),
                    preview(&names)
                ),
                hint: "name the one you mean, or give a snapshot id".into(),
            }
            .into());
        }
    }
    let kinds = distinct(backups.iter().map(|s| s.manifest().kind.to_string()).collect());
    if kinds.len() > 1 {
        return Err(CoreError::InvalidInput {
            what: format!(
                "`latest` of {:?} is ambiguous: that name is used by {} snapshots",
                newest.manifest().name,
                kinds.join(" and ")
            ),
            hint: "give a snapshot id (see `lifeboat snapshots --name NAME`)".into(),
        }
        .into());
    }
    Ok(newest)
}

/// The first few of `names`, comma-separated, for a one-line message.
fn preview(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut out = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(", and {} more", names.len() - SHOWN));
    }
    out
}
