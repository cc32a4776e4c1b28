//! The snapshots a repository holds: listed (with a cache of manifests, which never change),
//! loaded by id, found by id, prefix or `latest`, and forgotten.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use lifeboat_core::{Digest, Error as CoreError, Manifest};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tracing::{debug, warn};

use crate::crypt::Domain;
use crate::error::{Result, StoreError};
use crate::format::{
    CATALOG_KEY, SNAPSHOTS_PREFIX, decode_catalog, decode_metadata, encode_catalog, id_from_key,
    snapshot_key,
};
use crate::repository::{LIST_CONCURRENCY, Repository, get_bytes_in, list_keys_in};
use crate::retry::with_retries;
use crate::snapshot::StoredSnapshot;

/// How many manifests a listing reads one by one (or how many forgotten ones the catalog
/// still holds) before it writes the catalog anew: about one round of parallel requests.
pub const CATALOG_SLACK: usize = 8;

/// A catalog this small is written again with every new snapshot: one small PUT that saves
/// the next reader one GET per manifest it lacks.
const SMALL_CATALOG: usize = 64;

/// How old a listing read during the open may be and still stand for a listing.
const EARLY_LISTING_FRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// The listing of `snapshots/` and the catalog, read while the open derived the key
/// ([`FoundRepository::list_early`](crate::FoundRepository::list_early)).
pub(crate) struct EarlyListing {
    /// When the reads began: the listing is as old as that.
    started: std::time::Instant,
    keys: Result<Vec<Path>>,
    catalog: HashMap<Digest, Bytes>,
}

impl EarlyListing {
    /// Lists `snapshots/` and reads the catalog, at once (neither needs the key).
    pub(crate) async fn fetch(store: &Arc<dyn ObjectStore>) -> Self {
        let started = std::time::Instant::now();
        let (keys, catalog) =
            tokio::join!(list_keys_in(store, SNAPSHOTS_PREFIX), read_catalog_in(store));
        EarlyListing { started, keys, catalog }
    }
}

/// The catalog's entries, snapshot id to manifest bytes as stored; empty when there is no
/// catalog or it cannot be read (it only saves requests, so it never fails a listing).
async fn read_catalog_in(store: &Arc<dyn ObjectStore>) -> HashMap<Digest, Bytes> {
    let key = Path::from(CATALOG_KEY);
    let body = match get_bytes_in(store, &key).await {
        Ok(body) => body,
        Err(StoreError::Core(CoreError::Missing { .. })) => return HashMap::new(),
        Err(e) => {
            debug!(error = %e, "catalog unreadable; reading manifests one by one");
            return HashMap::new();
        }
    };
    match decode_catalog(&body) {
        Ok(entries) => entries,
        Err(reason) => {
            warn!(%key, %reason, "catalog damaged; reading manifests one by one and writing it anew");
            HashMap::new()
        }
    }
}

/// What this handle knows of the catalog.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CatalogState {
    /// The manifest cache holds every snapshot of a listing (not just those loaded by id).
    listed: bool,
    /// How many of those (and of the snapshots saved since) the catalog lacks.
    lacks: usize,
}

impl Repository {
    fn catalog_state(&self) -> std::sync::MutexGuard<'_, CatalogState> {
        match self.inner.catalog_state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records a snapshot this handle just saved: into the manifest cache and, when the
    /// cache holds a whole listing and the catalog is small or lacks `CATALOG_SLACK`
    /// manifests, into a catalog written anew. A later listing then reads it with the
    /// others in one GET. Best effort, like every catalog write.
    pub(crate) async fn catalog_saved(&self, id: Digest, manifest: Manifest, body: Bytes) {
        self.manifest_cache().insert(id, (manifest, body));
        let due = {
            let mut state = self.catalog_state();
            state.lacks += 1;
            let due = state.listed
                && (self.manifest_cache().len() <= SMALL_CATALOG || state.lacks >= CATALOG_SLACK);
            if due {
                state.lacks = 0;
            }
            due
        };
        if due {
            let body = {
                let cache = self.manifest_cache();
                encode_catalog(cache.iter().map(|(id, (_, body))| (id, body)))
            };
            self.write_catalog(body).await;
        }
    }

    /// Every snapshot in the repository, oldest first.
    ///
    /// The listing of `snapshots/` says which exist. Their manifests come from this handle's
    /// cache, then from the catalog object (one GET for all of them, each entry checked
    /// against its id), and only the rest one GET each. When that rest, or the catalog's
    /// entries for forgotten snapshots, reach `CATALOG_SLACK` (8), the catalog is
    /// written anew (see "The catalog" in `docs/repository-format.md`).
    ///
    /// # Errors
    /// Store errors; a manifest whose bytes do not hash to its id is reported as corrupt.
    pub async fn snapshots(&self) -> Result<Vec<StoredSnapshot>> {
        self.refuse_write_only("list or read snapshots")?;
        // A handle that holds no manifest yet will need the catalog: read it while listing.
        let cold = self.manifest_cache().is_empty();
        let (keys, early_catalog) = if let Some(early) = self.take_early_listing().filter(|_| cold)
        {
            (early.keys?, Some(early.catalog))
        } else if cold {
            let (keys, catalog) =
                tokio::join!(self.list_keys(SNAPSHOTS_PREFIX), self.read_catalog());
            (keys?, Some(catalog))
        } else {
            (self.list_keys(SNAPSHOTS_PREFIX).await?, None)
        };
        let listed: Vec<Digest> = keys.iter().filter_map(id_from_key).collect();
        // Only what is listed now exists: forget the rest, read what is new.
        let missing: Vec<Digest> = {
            let keep: HashSet<&Digest> = listed.iter().collect();
            let mut cache = self.manifest_cache();
            cache.retain(|id, _| keep.contains(id));
            listed.iter().filter(|id| !cache.contains_key(id)).copied().collect()
        };
        if !missing.is_empty() {
            let catalog = match early_catalog {
                Some(catalog) => catalog,
                None => self.read_catalog().await,
            };
            let wanted: HashSet<&Digest> = missing.iter().collect();
            let listed_set: HashSet<&Digest> = listed.iter().collect();
            let stale = catalog.keys().filter(|id| !listed_set.contains(id)).count();
            let in_catalog = catalog.len() - stale;
            let mut from_catalog = 0usize;
            for (id, body) in catalog {
                if !wanted.contains(&id) {
                    continue;
                }
                match self.parse_manifest(id, body.clone()) {
                    Ok(manifest) => {
                        self.manifest_cache().insert(id, (manifest, body));
                        from_catalog += 1;
                    }
                    Err(e) => debug!(snapshot = %id, error = %e, "catalog entry unusable"),
                }
            }
            let fetched = self.fetch_manifests(&missing).await?;
            debug!(listed = listed.len(), from_catalog, fetched, stale, "manifests read");
            // Forgotten snapshots the catalog still holds, or manifests it lacks: rewrite it
            // once either is worth more than a round of requests.
            let rewrite =
                fetched >= CATALOG_SLACK || (stale >= CATALOG_SLACK && stale * 4 >= in_catalog);
            if rewrite {
                let body = {
                    let cache = self.manifest_cache();
                    encode_catalog(cache.iter().map(|(id, (_, body))| (id, body)))
                };
                self.write_catalog(body).await;
            }
            let mut state = self.catalog_state();
            state.lacks = if rewrite { 0 } else { fetched };
        }
        self.catalog_state().listed = true;
        let cache = self.manifest_cache();
        let mut snaps: Vec<StoredSnapshot> = listed
            .iter()
            .filter_map(|id| {
                cache.get(id).map(|(m, _)| StoredSnapshot::new(self.clone(), *id, m.clone()))
            })
            .collect();
        drop(cache);
        snaps.sort_by(|a, b| a.manifest().time.cmp(&b.manifest().time).then(a.id().cmp(&b.id())));
        Ok(snaps)
    }

    /// Reads the manifests of `ids` that the cache still lacks into it, one GET each, several
    /// at once; returns how many it read. A manifest forgotten since the listing is skipped.
    async fn fetch_manifests(&self, ids: &[Digest]) -> Result<usize> {
        let todo: Vec<Digest> = {
            let cache = self.manifest_cache();
            ids.iter().filter(|id| !cache.contains_key(id)).copied().collect()
        };
        let count = todo.len();
        futures::stream::iter(todo)
            .map(|id| async move {
                match self.fetch_manifest(id).await {
                    Ok((manifest, body)) => {
                        self.manifest_cache().insert(id, (manifest, body));
                        Ok(())
                    }
                    // Forgotten between listing and reading: it is simply no longer there.
                    Err(StoreError::Core(CoreError::SnapshotNotFound { .. })) => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        Ok(count)
    }

    fn manifest_cache(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<Digest, (Manifest, Bytes)>> {
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
        let (manifest, _) = self.fetch_manifest(id).await?;
        Ok(StoredSnapshot::new(self.clone(), id, manifest))
    }

    /// The manifest stored as `snapshots/<id>`, parsed, and its bytes as stored.
    async fn fetch_manifest(&self, id: Digest) -> Result<(Manifest, Bytes)> {
        let key = snapshot_key(&id);
        let body = self.get_bytes(&key).await.map_err(|e| match e {
            StoreError::Core(CoreError::Missing { .. }) => {
                StoreError::Core(CoreError::SnapshotNotFound { id: id.to_hex() })
            }
            other => other,
        })?;
        Ok((self.parse_manifest(id, body.clone())?, body))
    }

    /// The manifest in `body`, the bytes stored as `snapshots/<id>`: checked against its id,
    /// opened and parsed.
    fn parse_manifest(&self, id: Digest, body: Bytes) -> Result<Manifest> {
        let key = snapshot_key(&id);
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
        decode_metadata(key.as_ref(), &body)
    }

    async fn read_catalog(&self) -> HashMap<Digest, Bytes> {
        read_catalog_in(&self.inner.store).await
    }

    /// Keeps what the open read early for the first cold listing.
    pub(crate) fn set_early_listing(&self, early: Option<EarlyListing>) {
        match self.inner.early_listing.lock() {
            Ok(mut guard) => *guard = early,
            Err(poisoned) => *poisoned.into_inner() = early,
        }
    }

    /// The early listing, once, while it is fresh.
    fn take_early_listing(&self) -> Option<EarlyListing> {
        let early = match self.inner.early_listing.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }?;
        (early.started.elapsed() <= EARLY_LISTING_FRESH).then_some(early)
    }

    /// Replaces the catalog with `body` (see [`encode_catalog`]). A failure (a read-only
    /// credential, a full disk) only costs later listings requests.
    async fn write_catalog(&self, body: Vec<u8>) {
        let key = Path::from(CATALOG_KEY);
        match self.put_bytes(&key, Bytes::from(body)).await {
            Ok(()) => debug!("catalog written"),
            Err(e) => debug!(error = %e, "catalog not written"),
        }
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
        // The catalog stops holding them too, so forgotten manifests leave the store.
        let mut catalog = self.read_catalog().await;
        let before = catalog.len();
        for id in ids {
            catalog.remove(id);
        }
        if catalog.len() != before {
            self.write_catalog(encode_catalog(catalog.iter())).await;
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
