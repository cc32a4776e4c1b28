//! The repository: config, index and snapshot catalog on top of an object store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use lifeboat_core::{ChunkId, Digest, Error as CoreError, Manifest};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use tracing::{debug, warn};

use crate::crypt::{
    Access, ChunkIds, Crypt, Domain, ENCRYPTION, KEYS_PREFIX, KdfParams, KeyFileText, KeySlot,
    MasterKey, Password, Unlocked, new_key_file, slot_key,
};
use crate::error::{Result, StoreError};
use crate::format::{
    CONFIG_KEY, INDEX_PREFIX, INDEX_VERSION, IndexFile, RepoConfig, decode_index_in,
    encode_metadata, index_key,
};
use crate::retry::with_retries;

use crate::url::Location;

/// How many times the index is read when its files keep changing under the reader.
const INDEX_REREADS: u32 = 12;

/// The pause before the index is read again; it doubles each time, up to 2 s (about 15 s
/// in all).
const INDEX_REREAD_FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);

/// How many objects are fetched at once when loading manifests or index files: small
/// objects, so the round trip is the cost, and 64 of them hide it on a 100 ms link.
pub(crate) const LIST_CONCURRENCY: usize = 64;

/// Where one chunk is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: Digest,
    /// Offset of the compressed blob in the pack.
    pub offset: u64,
    /// Compressed length.
    pub length: u32,
    /// Plain length.
    pub plain: u32,
    /// Size of the whole pack object.
    pub pack_size: u64,
    /// For a delta blob, the chunk it was compressed against.
    pub base: Option<ChunkId>,
    /// [`crate::format::head_of`] the plain chunk, when recorded.
    pub head: Option<u64>,
    /// [`crate::format::tail_of`] the plain chunk, when recorded.
    pub tail: Option<u64>,
}

/// The union of all index files: chunk id to location.
pub type ChunkIndex = HashMap<ChunkId, BlobLocation>;

/// An object that failed its checks when read (its bytes do not hash to its key, or it does
/// not parse) and was set aside: reported, never trusted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DamagedObject {
    /// The object's key.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A lifeboat repository. Cheap to clone; clones share the store and the index.
#[derive(Clone)]
pub struct Repository {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    lease_ttl: std::sync::atomic::AtomicU64,
    /// How the read engine reads through this handle.
    read_options: RwLock<crate::read::ReadOptions>,
    url: String,
    pub(crate) store: Arc<dyn ObjectStore>,
    config: RepoConfig,
    /// SHA-256 of the config object as stored (key slots seal it, so a changed config is
    /// refused).
    config_digest: [u8; 32],
    /// Plain, the master key, or a write-only key.
    pub(crate) crypt: Crypt,
    /// How chunks are named here (the config's scheme, keyed by `crypt`).
    ids: ChunkIds,
    /// The key slot this handle was opened (or created) with.
    slot: RwLock<Option<String>>,
    index: RwLock<Arc<ChunkIndex>>,
    /// Locations of chunks in packs a prune has marked but not deleted: used to read, never
    /// to deduplicate against (see `prune.rs`).
    marked: RwLock<Arc<ChunkIndex>>,
    /// Manifests read so far, by snapshot id. Manifests never change (the id is their
    /// digest), so a listing reads only the ones it has not seen: a long-running service
    /// lists thousands of snapshots without reading them again every time.
    pub(crate) manifests: RwLock<HashMap<Digest, (Manifest, Bytes)>>,
    /// Whether `manifests` holds a whole listing, and how many of them the catalog lacks.
    pub(crate) catalog_state: std::sync::Mutex<crate::catalog::CatalogState>,
    /// Index files found damaged by the last read of the index, set aside.
    damaged_indexes: RwLock<Vec<DamagedObject>>,
    /// How many times the index was loaded: readers that found a chunk missing reload it
    /// only when nobody else did since they looked.
    generation: std::sync::atomic::AtomicU64,
    /// How many index files the last load of the index read.
    index_files_loaded: std::sync::atomic::AtomicUsize,
    reloading: tokio::sync::Mutex<()>,
    local_folder: RwLock<Option<Arc<std::path::PathBuf>>>,
    /// The listing of `snapshots/` and the catalog, read while the open derived the key
    /// ([`FoundRepository::list_early`]): the first cold listing uses them once.
    pub(crate) early_listing: std::sync::Mutex<Option<crate::catalog::EarlyListing>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository").field("url", &self.inner.url).finish_non_exhaustive()
    }
}

impl Repository {
    /// Creates a new plaintext repository at `url` (a folder is created if needed).
    ///
    /// # Errors
    /// [`StoreError::AlreadyInitialised`] when one is there; URL and store errors.
    pub async fn init(url: &str) -> Result<Self> {
        Self::init_as(url, None, RepoConfig::new()).await
    }

    /// Creates a new encrypted repository at `url`, opened by `password` (more passwords
    /// can be added with [`Repository::add_key`]).
    ///
    /// # Errors
    /// As [`Repository::init`].
    pub async fn init_encrypted(url: &str, password: &Password) -> Result<Self> {
        Self::init_as(url, Some(password), RepoConfig::new()).await
    }

    /// Creates a new plaintext repository in an already opened object store.
    ///
    /// # Errors
    /// As [`Repository::init`].
    pub async fn init_store(store: Arc<dyn ObjectStore>, url: &str) -> Result<Self> {
        Self::init_store_with(store, url, None).await
    }

    /// Creates a new repository at `url` with `config`'s parameters (its chunk ids, see
    /// [`RepoConfig::with_chunk_ids`]): encrypted, opened by `password`, when one is given.
    ///
    /// # Errors
    /// As [`Repository::init`].
    pub async fn init_as(
        url: &str,
        password: Option<&Password>,
        config: RepoConfig,
    ) -> Result<Self> {
        let location = Location::parse(url)?;
        let store = location.open(url, true)?;
        let repo = Self::init_store_as(store, url, password, config).await?;
        Ok(repo.at(location))
    }

    /// Creates a new repository in an already opened object store: encrypted, opened by
    /// `password`, when one is given.
    ///
    /// # Errors
    /// As [`Repository::init`].
    pub async fn init_store_with(
        store: Arc<dyn ObjectStore>,
        url: &str,
        password: Option<&Password>,
    ) -> Result<Self> {
        Self::init_store_as(store, url, password, RepoConfig::new()).await
    }

    /// Creates a new repository in an already opened object store with `config`'s
    /// parameters: encrypted, opened by `password`, when one is given (`config`'s
    /// `encryption` is set to match).
    ///
    /// # Errors
    /// As [`Repository::init`].
    pub async fn init_store_as(
        store: Arc<dyn ObjectStore>,
        url: &str,
        password: Option<&Password>,
        mut config: RepoConfig,
    ) -> Result<Self> {
        config.encryption = "none".into();
        if password.is_some() {
            config.encryption = ENCRYPTION.into();
        }
        let body = serde_json::to_vec_pretty(&config)
            .map_err(|e| StoreError::Malformed { key: CONFIG_KEY.into(), reason: e.to_string() })?;
        let config_digest = Digest::of(&body).0;
        let mut slot_id = None;
        let crypt = match password {
            None => Crypt::Plain,
            Some(password) if password.is_key_file() => {
                return Err(StoreError::Malformed {
                    key: "key file".into(),
                    reason: "a repository is created with a password; key files are added to it \
                             afterwards"
                        .into(),
                });
            }
            Some(password) => {
                let master = MasterKey::random()?;
                // The first slot goes in before the config: a config that says "encrypted"
                // is never visible without a key that opens it.
                let slot = KeySlot::wrap(
                    &master,
                    password,
                    KdfParams::default(),
                    &config.id,
                    &config_digest,
                )?;
                slot_id = Some(write_slot(&store, &slot).await?);
                Crypt::Sealed(Arc::new(master))
            }
        };
        let key = Path::from(CONFIG_KEY);
        // Conditional create: two concurrent `init`s cannot both win and overwrite each other.
        let put = with_retries("put config", || {
            store.put_opts(&key, PutPayload::from(body.clone()), PutMode::Create.into())
        })
        .await;
        match put {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                return Err(StoreError::AlreadyInitialised { url: url.into() });
            }
            Err(e) => return Err(StoreError::object("put", CONFIG_KEY, e)),
        }
        let repo = Self::from_parts(url, store, config, config_digest, crypt);
        repo.set_slot(slot_id);
        Ok(repo)
    }

    fn set_slot(&self, slot: Option<String>) {
        match self.inner.slot.write() {
            Ok(mut guard) => *guard = slot,
            Err(poisoned) => *poisoned.into_inner() = slot,
        }
    }

    /// Opens the repository at `url` and loads its index.
    ///
    /// # Errors
    /// [`StoreError::NotInitialised`] when there is none; URL, access and format errors.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, None).await
    }

    /// Opens the encrypted repository at `url` with `password` (a plaintext repository opens
    /// as with [`Repository::open`]; the password is then not used).
    ///
    /// # Errors
    /// [`StoreError::WrongPassword`] when no key slot opens with it; as [`Repository::open`].
    pub async fn open_with_key(url: &str, password: &Password) -> Result<Self> {
        Self::open_with(url, Some(password)).await
    }

    /// Opens the repository at `url`, with `password` when one is given: the call for a
    /// program that may or may not have one.
    ///
    /// # Errors
    /// [`StoreError::KeyRequired`] when the repository is encrypted and no password is
    /// given; as [`Repository::open_with_key`].
    pub async fn open_with(url: &str, password: Option<&Password>) -> Result<Self> {
        Self::discover(url).await?.open(password).await
    }

    /// Reads the repository's config at `url` without opening it: the first half of an
    /// open, for a program that asks for a password only when the repository needs one.
    ///
    /// ```no_run
    /// # async fn demo() -> lifeboat_store::Result<()> {
    /// let found = lifeboat_store::Repository::discover("/var/backups/lifeboat").await?;
    /// let password = found.is_encrypted().then(|| lifeboat_store::Password::new("secret"));
    /// let repo = found.defer_index().open(password.as_ref()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::NotInitialised`] when there is no repository at `url`; URL and store
    /// errors.
    pub async fn discover(url: &str) -> Result<FoundRepository> {
        let location = Location::parse(url)?;
        let store = location.open(url, false)?;
        let mut found = Self::discover_in_store(store, url).await?;
        found.location = Some(location);
        Ok(found)
    }

    /// As [`Repository::discover`], in an already opened object store.
    ///
    /// # Errors
    /// As [`Repository::discover`].
    pub async fn discover_in_store(
        store: Arc<dyn ObjectStore>,
        url: &str,
    ) -> Result<FoundRepository> {
        let key = Path::from(CONFIG_KEY);
        // The key slots are listed at the same time (once: the config's read is the one that
        // retries and reports): an encrypted repository needs them to unlock, a plaintext
        // one to prove it was not downgraded.
        // Both requests are timed: the quicker one is the round trip the read engine sizes
        // its requests in flight by (see `ReadOptions::for_round_trip`).
        let started = std::time::Instant::now();
        let config = async {
            let got =
                with_retries("get config", || async { store.get(&key).await?.bytes().await }).await;
            (got, started.elapsed())
        };
        let slots_once = async {
            let prefix = Path::from(KEYS_PREFIX);
            let keys: Option<Vec<Path>> =
                store.list(Some(&prefix)).map_ok(|m| m.location).try_collect().await.ok();
            (keys.map(|keys| slot_ids_of(&keys)), started.elapsed())
        };
        let ((config, config_took), (slot_ids, slots_took)) = tokio::join!(config, slots_once);
        let body = match config {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::NotInitialised { url: url.into() });
            }
            Err(e) => return Err(StoreError::object("get", CONFIG_KEY, e)),
        };
        Ok(FoundRepository {
            config: RepoConfig::parse(&body)?,
            config_digest: Digest::of(&body).0,
            slot_ids: match slot_ids {
                Some(ids) => ids,
                None => read_slot_ids(&store).await?,
            },
            store,
            url: url.into(),
            location: None,
            load_index: true,
            list_early: false,
            round_trip: config_took.min(slots_took),
        })
    }

    /// Opens the repository at `url`, creating it first when there is none: the one call a
    /// service that embeds lifeboat needs.
    ///
    /// # Errors
    /// As [`Repository::open`] and [`Repository::init`].
    pub async fn open_or_init(url: &str) -> Result<Self> {
        Self::open_or_init_with(url, None).await
    }

    /// Opens the repository at `url` with `password` when one is given, creating it first
    /// when there is none: encrypted, opened by `password`, when one is given, else as
    /// [`Repository::open_or_init`] does.
    ///
    /// # Errors
    /// As [`Repository::open_with`], [`Repository::init`] and [`Repository::init_encrypted`].
    pub async fn open_or_init_with(url: &str, password: Option<&Password>) -> Result<Self> {
        match Self::open_with(url, password).await {
            Err(StoreError::NotInitialised { .. }) => {
                let created = match password {
                    Some(password) => Self::init_encrypted(url, password).await,
                    None => Self::init(url).await,
                };
                match created {
                    // Another process created it in between: open theirs.
                    Err(StoreError::AlreadyInitialised { .. }) => {
                        Self::open_with(url, password).await
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Opens the repository in an already opened object store, creating it when there is
    /// none.
    ///
    /// # Errors
    /// As [`Repository::open_store`] and [`Repository::init_store`].
    pub async fn open_or_init_store(store: Arc<dyn ObjectStore>, url: &str) -> Result<Self> {
        match Self::open_store(store.clone(), url).await {
            Err(StoreError::NotInitialised { .. }) => match Self::init_store(store.clone(), url)
                .await
            {
                Err(StoreError::AlreadyInitialised { .. }) => Self::open_store(store, url).await,
                other => other,
            },
            other => other,
        }
    }

    /// Records where the store lives when it is a local folder (for the staging files
    /// object_store hides from listings; see `staging.rs`).
    fn at(self, location: Location) -> Self {
        if let Location::Local(path) = location {
            let folder = Arc::new(path);
            match self.inner.local_folder.write() {
                Ok(mut guard) => *guard = Some(folder),
                Err(poisoned) => *poisoned.into_inner() = Some(folder),
            }
        }
        self
    }

    /// The repository's folder, when it is a local one opened by URL.
    pub fn local_folder(&self) -> Option<Arc<std::path::PathBuf>> {
        match self.inner.local_folder.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Opens a repository in an already opened object store.
    ///
    /// # Errors
    /// As [`Repository::open`].
    pub async fn open_store(store: Arc<dyn ObjectStore>, url: &str) -> Result<Self> {
        Self::open_store_with(store, url, None).await
    }

    /// Opens a repository in an already opened object store, with `password` when one is
    /// given. Nothing is written: a wrong password leaves the store as it was.
    ///
    /// # Errors
    /// As [`Repository::open_with`].
    pub async fn open_store_with(
        store: Arc<dyn ObjectStore>,
        url: &str,
        password: Option<&Password>,
    ) -> Result<Self> {
        Self::discover_in_store(store, url).await?.open(password).await
    }

    fn from_parts(
        url: &str,
        store: Arc<dyn ObjectStore>,
        config: RepoConfig,
        config_digest: [u8; 32],
        crypt: Crypt,
    ) -> Self {
        Repository {
            inner: Arc::new(Inner {
                lease_ttl: std::sync::atomic::AtomicU64::new(
                    crate::holder::DEFAULT_LEASE_TTL.as_millis() as u64,
                ),
                read_options: RwLock::new(crate::read::ReadOptions::default()),
                url: url.into(),
                store,
                ids: ChunkIds::new(config.chunk_ids, &crypt),
                config,
                config_digest,
                crypt,
                slot: RwLock::new(None),
                index: RwLock::new(Arc::new(ChunkIndex::new())),
                marked: RwLock::new(Arc::new(ChunkIndex::new())),
                manifests: RwLock::new(HashMap::new()),
                catalog_state: std::sync::Mutex::new(crate::catalog::CatalogState::default()),
                damaged_indexes: RwLock::new(Vec::new()),
                generation: std::sync::atomic::AtomicU64::new(0),
                index_files_loaded: std::sync::atomic::AtomicUsize::new(0),
                reloading: tokio::sync::Mutex::new(()),
                local_folder: RwLock::new(None),
                early_listing: std::sync::Mutex::new(None),
            }),
        }
    }

    /// How long leases taken through this handle live without renewal.
    pub fn lease_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.inner.lease_ttl.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Sets how long leases taken through this handle live without renewal (renewed every
    /// third of it). Short leases free the repository sooner after a crash.
    pub fn set_lease_ttl(&self, ttl: std::time::Duration) {
        self.inner.lease_ttl.store(ttl.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// How snapshots are read back through this handle (requests in flight, window size).
    pub fn read_options(&self) -> crate::read::ReadOptions {
        match self.inner.read_options.read() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Sets how snapshots are read back through this handle and its clones.
    pub fn set_read_options(&self, options: crate::read::ReadOptions) {
        match self.inner.read_options.write() {
            Ok(mut guard) => *guard = options,
            Err(poisoned) => *poisoned.into_inner() = options,
        }
    }

    /// The URL the repository was opened with.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The repository's config object.
    pub fn config(&self) -> &RepoConfig {
        &self.inner.config
    }

    /// The underlying object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// A point-in-time view of the chunk index.
    pub fn index(&self) -> Arc<ChunkIndex> {
        match self.inner.index.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Where a chunk is stored, if it is.
    ///
    /// A snapshot written by a backup that was running while a prune marked its packs can
    /// reference chunks that left the index; until the next prune revives them they are
    /// found in the pending marks, so such a snapshot restores in the meantime too.
    pub fn locate(&self, id: &ChunkId) -> Option<BlobLocation> {
        self.index().get(id).copied().or_else(|| {
            let marked = match self.inner.marked.read() {
                Ok(guard) => Arc::clone(&guard),
                Err(poisoned) => Arc::clone(&poisoned.into_inner()),
            };
            marked.get(id).copied()
        })
    }

    /// How many index files the last load of the index read.
    pub(crate) fn index_files_loaded(&self) -> usize {
        self.inner.index_files_loaded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Which load of the index [`Repository::locate`] answers from now.
    pub(crate) fn index_generation(&self) -> u64 {
        self.inner.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Re-reads the index and the pending marks unless that happened after generation
    /// `seen`: many readers that find chunks missing at once cause one reload, not one each.
    ///
    /// # Errors
    /// As [`Repository::reload_index`].
    pub(crate) async fn reload_index_since(&self, seen: u64) -> Result<()> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        if self.index_generation() != seen {
            return Ok(());
        }
        self.reload_index().await
    }

    /// Loads the index unless this handle has loaded it already (a handle opened with
    /// [`FoundRepository::defer_index`] loads it here, on first need).
    ///
    /// # Errors
    /// As [`Repository::reload_index`].
    pub async fn ensure_index(&self) -> Result<()> {
        self.reload_index_since(0).await
    }

    /// Re-reads every index file from the store.
    ///
    /// # Errors
    /// Store and format errors, naming the index file.
    pub async fn reload_index(&self) -> Result<()> {
        self.load_index(None).await
    }

    /// Loads the index from `prefetched` (read while the key was derived) or from the store.
    async fn load_index(&self, mut prefetched: Option<StoredIndex>) -> Result<()> {
        let mut attempts = 0;
        let (index, marked_packs) = loop {
            let (files, marked) = match prefetched.take().and_then(|p| self.open_prefetched(p)) {
                Some((files, marked)) => (Ok(files), Ok(marked)),
                None => tokio::join!(self.index_files(), self.marked_packs()),
            };
            let mut index = ChunkIndex::new();
            let files = files?;
            for (_, file) in &files {
                add_to_index(&mut index, file);
            }
            self.inner.index_files_loaded.store(files.len(), std::sync::atomic::Ordering::Relaxed);
            // A prune that swept a mark meanwhile may have put its packs back into the
            // index: read both again.
            match marked? {
                (_, false) if attempts < 5 => attempts += 1,
                (marked, _) => break (index, marked),
            }
        };
        debug!(chunks = index.len(), "index loaded");
        self.set_index(index);
        let mut marked = ChunkIndex::new();
        for packs in marked_packs {
            add_to_index(&mut marked, &IndexFile { version: INDEX_VERSION, packs });
        }
        let marked = Arc::new(marked);
        match self.inner.marked.write() {
            Ok(mut guard) => *guard = marked,
            Err(poisoned) => *poisoned.into_inner() = marked,
        }
        self.inner.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }

    /// Every sound index file with its key. A file deleted between listing and reading (a
    /// prune consolidating the index at the same time) makes the whole read start over, so
    /// the result never misses entries that the consolidated file holds.
    ///
    /// A damaged index file (its bytes do not hash to its key, or it does not parse) is left
    /// out with a warning and recorded ([`Repository::damaged_indexes`]): the chunks only it
    /// described are then not indexed, so reads of snapshots needing them fail as missing,
    /// backups store them again, and every other snapshot keeps working. `repair_index`
    /// rebuilds the entries from the packs.
    ///
    /// # Errors
    /// Store errors, naming the index file.
    pub async fn index_files(&self) -> Result<Vec<(Path, IndexFile)>> {
        let (files, damaged) = self.read_index_files().await?;
        self.record_damaged_indexes(damaged);
        Ok(files)
    }

    /// Opens what was read ahead of the key: `None` when an index file was deleted while it
    /// was read (the index is then read again).
    fn open_prefetched(
        &self,
        stored: StoredIndex,
    ) -> Option<(Vec<(Path, IndexFile)>, MarkedPacks)> {
        let bodies: Option<Vec<(Path, Bytes)>> =
            stored.files.into_iter().map(|(key, body)| body.map(|b| (key, b))).collect();
        let (files, damaged) = self.decode_index_files(bodies?);
        self.record_damaged_indexes(damaged);
        let marks = if self.is_write_only() {
            (Vec::new(), true)
        } else {
            let complete = stored.marks.iter().all(|(_, body)| body.is_some());
            let mut packs = Vec::new();
            for (key, body) in stored.marks {
                let Some(body) = body else { continue };
                // A mark that does not open fails the load as reading it afresh would.
                packs.push(self.decode_pending_mark(&key, body).ok()?.packs);
            }
            (packs, complete)
        };
        Some((files, marks))
    }

    fn record_damaged_indexes(&self, damaged: Vec<DamagedObject>) {
        let mut recorded = match self.inner.damaged_indexes.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for d in damaged.iter().filter(|d| !recorded.contains(d)) {
            warn!(index = %d.key, reason = %d.reason, "damaged index file set aside; `lifeboat repair index` rebuilds it from the packs");
        }
        *recorded = damaged;
    }

    /// Index files found damaged by the last read of the index, each with what is wrong.
    pub fn damaged_indexes(&self) -> Vec<DamagedObject> {
        match self.inner.damaged_indexes.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The sound index files and the damaged ones.
    pub(crate) async fn read_index_files(
        &self,
    ) -> Result<(Vec<(Path, IndexFile)>, Vec<DamagedObject>)> {
        // A file listed but gone when read was replaced by a merge or a prune's rewrite,
        // which write the new file first and then delete the old ones, one by one: the
        // whole index is read again once they are done. Without a pause between tries, a
        // merge deleting a few dozen files outlasted five back-to-back reads (a `wal-push`
        // beside a base backup failed that way).
        let mut pause = INDEX_REREAD_FIRST_PAUSE;
        for attempt in 1.. {
            let read = read_all_in(&self.inner.store, INDEX_PREFIX).await?;
            let bodies: Option<Vec<(Path, Bytes)>> =
                read.into_iter().map(|(key, body)| body.map(|b| (key, b))).collect();
            match bodies {
                Some(bodies) => return Ok(self.decode_index_files(bodies)),
                None if attempt < INDEX_REREADS => {
                    debug!(
                        attempt,
                        "an index file was deleted while read; reading the index again"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
                None => break,
            }
        }
        Err(CoreError::Missing {
            object: format!(
                "index files under {INDEX_PREFIX} (deleted while read, {INDEX_REREADS} times)"
            ),
        }
        .into())
    }

    /// Opens and parses index files; those that do not are damaged.
    fn decode_index_files(
        &self,
        bodies: Vec<(Path, Bytes)>,
    ) -> (Vec<(Path, IndexFile)>, Vec<DamagedObject>) {
        let (mut files, mut damaged) = (Vec::new(), Vec::new());
        for (key, body) in bodies {
            match decode_index_in(&key, &body, &self.inner.crypt) {
                Ok(file) => files.push((key, file)),
                Err(e) => {
                    damaged.push(DamagedObject { key: key.to_string(), reason: e.to_string() })
                }
            }
        }
        damaged.sort_by(|a, b| a.key.cmp(&b.key));
        (files, damaged)
    }

    /// Writes one index file (its key is the SHA-256 of its bytes) and adds it to the loaded
    /// index.
    pub(crate) async fn write_index_file(&self, file: IndexFile) -> Result<Path> {
        let body = self.inner.crypt.seal(Domain::Index, encode_metadata(&file, "new index")?)?;
        let key = index_key(&Digest::of(&body));
        self.put_bytes(&key, Bytes::from(body)).await?;
        self.merge_index(&file);
        Ok(key)
    }

    pub(crate) fn merge_index(&self, file: &IndexFile) {
        let mut index = (*self.index()).clone();
        add_to_index(&mut index, file);
        self.set_index(index);
    }

    fn set_index(&self, index: ChunkIndex) {
        let index = Arc::new(index);
        match self.inner.index.write() {
            Ok(mut guard) => *guard = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
    }

    /// Lists every key under `prefix`.
    ///
    /// # Errors
    /// Store errors.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<Path>> {
        list_keys_in(&self.inner.store, prefix).await
    }

    /// Reads a whole object.
    ///
    /// # Errors
    /// Store errors, naming the key.
    pub async fn get_bytes(&self, key: &Path) -> Result<Bytes> {
        get_bytes_in(&self.inner.store, key).await
    }

    /// Reads a byte range of an object.
    ///
    /// # Errors
    /// Store errors, naming the key.
    pub async fn get_range(&self, key: &Path, range: std::ops::Range<u64>) -> Result<Bytes> {
        with_retries("get range", || self.inner.store.get_range(key, range.clone())).await.map_err(
            |e| match e {
                object_store::Error::NotFound { .. } => {
                    StoreError::Core(CoreError::Missing { object: key.to_string() })
                }
                e => StoreError::object("get", key.to_string(), e),
            },
        )
    }

    /// Writes an object, replacing any existing one (content-addressed objects only).
    ///
    /// # Errors
    /// Store errors, naming the key.
    pub async fn put_bytes(&self, key: &Path, body: Bytes) -> Result<()> {
        with_retries("put", || self.inner.store.put(key, PutPayload::from(body.clone())))
            .await
            .map(|_| ())
            .map_err(|e| StoreError::object("put", key.to_string(), e))
    }

    /// Deletes an object; a missing one is not an error.
    ///
    /// # Errors
    /// Store errors, naming the key.
    pub async fn delete_key(&self, key: &Path) -> Result<()> {
        if self.inner.crypt.is_write_only() {
            return Err(StoreError::WriteOnly { action: format!("delete {key}") });
        }
        match with_retries("delete", || self.inner.store.delete(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::object("delete", key.to_string(), e)),
        }
    }

    /// Writes an object only if no object has that key.
    ///
    /// # Errors
    /// Store errors, naming the key; `AlreadyExists` when it is there.
    pub async fn create_bytes(&self, key: &Path, body: Bytes) -> Result<()> {
        with_retries("create", || {
            self.inner.store.put_opts(key, PutPayload::from(body.clone()), PutMode::Create.into())
        })
        .await
        .map(|_| ())
        .map_err(|e| StoreError::object("create", key.to_string(), e))
    }

    /// Total bytes and count of objects under `prefix`.
    ///
    /// # Errors
    /// Store errors.
    pub async fn usage(&self, prefix: &str) -> Result<(u64, usize)> {
        let prefix_path = Path::from(prefix);
        with_retries("list", || async {
            self.inner
                .store
                .list(Some(&prefix_path))
                .try_fold(
                    (0u64, 0usize),
                    |(bytes, n), m| async move { Ok((bytes + m.size, n + 1)) },
                )
                .await
        })
        .await
        .map_err(|e| StoreError::object("list", prefix, e))
    }
}

/// Writes a new key slot under a fresh id (a conditional create: a slot is never replaced).
async fn write_slot(store: &Arc<dyn ObjectStore>, slot: &KeySlot) -> Result<String> {
    let id = hex::encode(rand::random::<[u8; 16]>());
    let key = slot_key(&id);
    let body = serde_json::to_vec_pretty(slot)
        .map_err(|e| StoreError::Malformed { key: key.to_string(), reason: e.to_string() })?;
    with_retries("put key", || {
        store.put_opts(&key, PutPayload::from(body.clone()), PutMode::Create.into())
    })
    .await
    .map_err(|e| StoreError::object("create", key.to_string(), e))?;
    Ok(id)
}

/// The ids of every key slot.
async fn read_slot_ids(store: &Arc<dyn ObjectStore>) -> Result<Vec<String>> {
    let prefix = Path::from(KEYS_PREFIX);
    let keys: Vec<Path> = with_retries("list", || async {
        store.list(Some(&prefix)).map_ok(|m| m.location).try_collect::<Vec<_>>().await
    })
    .await
    .map_err(|e| StoreError::object("list", KEYS_PREFIX, e))?;
    Ok(slot_ids_of(&keys))
}

/// The slot ids of the keys listed under `keys/`, sorted.
fn slot_ids_of(keys: &[Path]) -> Vec<String> {
    let mut ids: Vec<String> =
        keys.iter().filter_map(|key| key.filename().map(str::to_string)).collect();
    ids.sort();
    ids
}

/// The slot `id`; `None` when it is not there.
async fn read_slot(store: &Arc<dyn ObjectStore>, id: &str) -> Result<Option<KeySlot>> {
    let key = slot_key(id);
    let body =
        match with_retries("get key", || async { store.get(&key).await?.bytes().await }).await {
            Ok(body) => body,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(StoreError::object("get", key.to_string(), e)),
        };
    let slot: KeySlot = serde_json::from_slice(&body)
        .map_err(|e| StoreError::Malformed { key: key.to_string(), reason: e.to_string() })?;
    Ok(Some(slot))
}

/// The key slots `ids` that are there (one may be removed between list and get), read at
/// the same time, in id order.
async fn read_slots(
    store: &Arc<dyn ObjectStore>,
    ids: &[String],
) -> Result<Vec<(String, KeySlot)>> {
    let read = futures::future::try_join_all(ids.iter().map(|id| async move {
        Ok::<_, StoreError>(read_slot(store, id).await?.map(|slot| (id.clone(), slot)))
    }))
    .await?;
    Ok(read.into_iter().flatten().collect())
}

/// The slot that `password` opens, and the key in it. Only reads.
async fn unlock(
    store: &Arc<dyn ObjectStore>,
    url: &str,
    config: &RepoConfig,
    slot_ids: &[String],
    password: &Password,
) -> Result<(String, Unlocked)> {
    // A key file names its slot: one read, no guessing.
    let slots = match password.key_file_slot() {
        Some((file, repository, slot)) => {
            if repository != config.id {
                return Err(StoreError::KeyFileMismatch {
                    file: file.into(),
                    expected: repository.into(),
                    url: url.into(),
                    found: config.id.clone(),
                });
            }
            match read_slot(store, slot).await? {
                Some(found) => vec![(slot.to_string(), found)],
                None => {
                    return Err(StoreError::KeyRemoved { slot: slot.into(), url: url.into() });
                }
            }
        }
        None => read_slots(store, slot_ids).await?,
    };
    if slots.is_empty() {
        return Err(StoreError::Malformed {
            key: KEYS_PREFIX.into(),
            reason: "the repository is encrypted but has no key slot".into(),
        });
    }
    for (id, slot) in slots {
        if !slot.fits(password) {
            continue;
        }
        let key = slot_key(&id).to_string();
        let password = password.clone();
        let repo_id = config.id.clone();
        // Argon2 is deliberately slow: off the async workers.
        let opened = tokio::task::spawn_blocking(move || slot.unwrap(&key, &password, &repo_id))
            .await
            .map_err(|e| StoreError::Malformed {
                key: KEYS_PREFIX.into(),
                reason: format!("key derivation task failed: {e}"),
            })??;
        if let Some(unlocked) = opened {
            return Ok((id, unlocked));
        }
    }
    Err(StoreError::WrongPassword { url: url.into() })
}

/// The packs of each pending mark, and whether every listed mark could be read.
type MarkedPacks = (Vec<Vec<crate::format::PackEntry>>, bool);

/// Index files and pending marks as stored (sealed), each `None` when it was deleted
/// between the listing and its read.
struct StoredIndex {
    files: Vec<(Path, Option<Bytes>)>,
    marks: Vec<(Path, Option<Bytes>)>,
}

impl StoredIndex {
    async fn fetch(store: &Arc<dyn ObjectStore>) -> Result<Self> {
        let (files, marks) = tokio::join!(
            read_all_in(store, INDEX_PREFIX),
            read_all_in(store, crate::prune::PENDING_PREFIX)
        );
        Ok(StoredIndex { files: files?, marks: marks? })
    }
}

/// Every object under `prefix`, read several at once; `None` for one deleted between the
/// listing and its read.
pub(crate) async fn read_all_in(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
) -> Result<Vec<(Path, Option<Bytes>)>> {
    let prefix_path = Path::from(prefix);
    let keys: Vec<Path> = with_retries("list", || async {
        store.list(Some(&prefix_path)).map_ok(|m| m.location).try_collect::<Vec<_>>().await
    })
    .await
    .map_err(|e| StoreError::object("list", prefix, e))?;
    futures::stream::iter(keys)
        .map(|key| async move {
            match with_retries("get", || async { store.get(&key).await?.bytes().await }).await {
                Ok(body) => Ok((key, Some(body))),
                Err(object_store::Error::NotFound { .. }) => Ok((key, None)),
                Err(e) => Err(StoreError::object("get", key.to_string(), e)),
            }
        })
        .buffer_unordered(LIST_CONCURRENCY)
        .try_collect()
        .await
}

/// A whole object of `store`, retried; a missing one is [`CoreError::Missing`].
pub(crate) async fn get_bytes_in(store: &Arc<dyn ObjectStore>, key: &Path) -> Result<Bytes> {
    with_retries("get", || async { store.get(key).await?.bytes().await }).await.map_err(|e| match e
    {
        object_store::Error::NotFound { .. } => {
            StoreError::Core(CoreError::Missing { object: key.to_string() })
        }
        e => StoreError::object("get", key.to_string(), e),
    })
}

/// The keys under `prefix` in `store`, retried as every request is.
pub(crate) async fn list_keys_in(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<Vec<Path>> {
    let prefix_path = Path::from(prefix);
    with_retries("list", || async {
        store.list(Some(&prefix_path)).map_ok(|m| m.location).try_collect::<Vec<_>>().await
    })
    .await
    .map_err(|e| StoreError::object("list", prefix, e))
}

/// A repository whose config was read and that is not opened yet
/// ([`Repository::discover`]): it says whether a password is needed before one is asked for.
pub struct FoundRepository {
    store: Arc<dyn ObjectStore>,
    url: String,
    location: Option<Location>,
    config: RepoConfig,
    config_digest: [u8; 32],
    slot_ids: Vec<String>,
    load_index: bool,
    list_early: bool,
    round_trip: std::time::Duration,
}

impl std::fmt::Debug for FoundRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoundRepository")
            .field("url", &self.url)
            .field("encrypted", &self.config.encrypted())
            .field("key_slots", &self.slot_ids.len())
            .finish_non_exhaustive()
    }
}

impl FoundRepository {
    /// How long the quicker of the open's first two requests took (the config's read and
    /// the key slots' listing, sent together): about one round trip to the store, plus a
    /// connection's set-up.
    pub fn round_trip(&self) -> std::time::Duration {
        self.round_trip
    }

    /// Whether opening it needs a password or a key file.
    pub fn is_encrypted(&self) -> bool {
        self.config.encrypted()
    }

    /// Opens without reading the index: for listings (`snapshots`, `stale`, `forget`) that
    /// need only manifests. Whatever needs the index later reads it then
    /// ([`Repository::ensure_index`]; backups, reads and verification do).
    pub fn defer_index(mut self) -> Self {
        self.load_index = false;
        self
    }

    /// Lists the snapshots (and reads the catalog) while the open derives the key or reads
    /// the index, so a command that goes on to list or find a snapshot saves that round
    /// trip. The first cold listing within a few seconds uses them; a handle that never
    /// lists spends one LIST and one GET for nothing, so `wal-push` and `wal-fetch` do not
    /// ask for it.
    pub fn list_early(mut self) -> Self {
        self.list_early = true;
        self
    }

    /// Unlocks the repository with `password` when it is encrypted (a plaintext repository
    /// does not use it). Nothing is written: a wrong password leaves the store as it was.
    ///
    /// # Errors
    /// [`StoreError::KeyRequired`] when the repository is encrypted and no password is
    /// given; [`StoreError::WrongPassword`] when no key slot opens with it; store errors.
    pub async fn open(self, password: Option<&Password>) -> Result<Repository> {
        let FoundRepository {
            store,
            url,
            location,
            config,
            config_digest,
            slot_ids,
            load_index,
            list_early,
            round_trip,
        } = self;
        // Runs beside the key derivation and the index's read, whichever take longer.
        let listing = list_early.then(|| {
            let store = store.clone();
            tokio::spawn(async move { crate::catalog::EarlyListing::fetch(&store).await })
        });
        let (crypt, prefetched) = if config.encrypted() {
            let Some(password) = password else {
                return Err(StoreError::KeyRequired { url });
            };
            // The key derivation takes a while: the index is read meanwhile, sealed.
            let prefetch =
                async { if load_index { StoredIndex::fetch(&store).await.ok() } else { None } };
            let (unlocked, prefetched) =
                tokio::join!(unlock(&store, &url, &config, &slot_ids, password), prefetch);
            let (slot, unlocked) = unlocked?;
            // A slot seals the config it was made with: any other config (weaker settings,
            // another id) is someone's edit in the store.
            if unlocked.config.is_some_and(|sealed| sealed != config_digest) {
                return Err(StoreError::ConfigChanged { url });
            }
            debug!(slot = %slot, write_only = unlocked.crypt.is_write_only(), "repository key opened");
            ((unlocked.crypt, Some(slot)), prefetched)
        } else {
            // Key slots exist only in encrypted repositories: a plaintext config beside them
            // was switched to `none` in the store, to make clients write in the clear.
            if !slot_ids.is_empty() {
                return Err(StoreError::ConfigDowngraded { url });
            }
            ((Crypt::Plain, None), None)
        };
        let repo = Repository::from_parts(&url, store, config, config_digest, crypt.0);
        repo.set_slot(crypt.1);
        let read = crate::read::ReadOptions::for_round_trip(round_trip);
        debug!(
            round_trip_ms = round_trip.as_secs_f64() * 1e3,
            concurrency = read.concurrency,
            "requests in flight follow the round trip measured by the open"
        );
        repo.set_read_options(read);
        if load_index {
            let _one_at_a_time = repo.inner.reloading.lock().await;
            repo.load_index(prefetched).await?;
        }
        if let Some(listing) = listing {
            repo.set_early_listing(listing.await.ok());
        }
        Ok(match location {
            Some(location) => repo.at(location),
            None => repo,
        })
    }
}

/// One key slot as `lifeboat key list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    /// The slot's id (`keys/<id>`).
    pub id: String,
    /// When it was added.
    pub created: chrono::DateTime<chrono::Utc>,
    /// The host that added it.
    pub host: String,
    /// What it may do.
    pub access: Access,
    /// `password` or `key file`.
    pub kind: &'static str,
    /// Whether this handle was opened with it.
    pub current: bool,
}

impl Repository {
    /// Whether the repository's objects are sealed.
    pub fn is_encrypted(&self) -> bool {
        self.inner.crypt.is_sealed()
    }

    /// Whether this handle was opened with a write-only key: it backs up, and reads no data,
    /// no manifest, and deletes nothing.
    pub fn is_write_only(&self) -> bool {
        self.inner.crypt.is_write_only()
    }

    /// The key slots of an encrypted repository (empty for a plaintext one).
    ///
    /// # Errors
    /// Store errors; a slot that does not parse is malformed.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>> {
        let current =
            self.inner.slot.read().map(|g| g.clone()).unwrap_or_else(|p| p.into_inner().clone());
        let ids = read_slot_ids(&self.inner.store).await?;
        Ok(read_slots(&self.inner.store, &ids)
            .await?
            .into_iter()
            .map(|(id, slot)| KeyInfo {
                current: current.as_deref() == Some(id.as_str()),
                kind: if slot.is_key_file() { "key file" } else { "password" },
                id,
                created: slot.created,
                host: slot.host,
                access: slot.access,
            })
            .collect())
    }

    /// The master key, for what only a full key may do (`action`).
    fn master(&self, action: &str) -> Result<&Arc<MasterKey>> {
        match &self.inner.crypt {
            Crypt::Sealed(master) => Ok(master),
            Crypt::WriteOnly(_) => Err(StoreError::WriteOnly { action: action.into() }),
            Crypt::Plain => Err(StoreError::NotEncrypted { url: self.inner.url.clone() }),
        }
    }

    /// Adds a key slot for `password`; returns its id. No data is rewritten.
    ///
    /// # Errors
    /// [`StoreError::NotEncrypted`] for a plaintext repository; store errors.
    pub async fn add_key(&self, password: &Password) -> Result<String> {
        self.add_key_with(password, KdfParams::default()).await
    }

    /// As [`Repository::add_key`], with given Argon2id parameters.
    ///
    /// # Errors
    /// As [`Repository::add_key`].
    pub async fn add_key_with(&self, password: &Password, params: KdfParams) -> Result<String> {
        let master = Arc::clone(self.master("add keys")?);
        let (password, repo_id, config) =
            (password.clone(), self.inner.config.id.clone(), self.inner.config_digest);
        let slot = tokio::task::spawn_blocking(move || {
            KeySlot::wrap(&master, &password, params, &repo_id, &config)
        })
        .await
        .map_err(|e| StoreError::Malformed {
            key: KEYS_PREFIX.into(),
            reason: format!("key derivation task failed: {e}"),
        })??;
        write_slot(&self.inner.store, &slot).await
    }

    /// Adds a key file with `access`: returns the new slot's id and the file's text, to be
    /// written where the user keeps it (it is the only copy of the key). A
    /// [`Access::WriteOnly`] key file lets a host back up into the repository without being
    /// able to read or delete anything in it.
    ///
    /// # Errors
    /// As [`Repository::add_key`].
    pub async fn add_key_file(&self, access: Access) -> Result<(String, KeyFileText)> {
        let master = self.master("add keys")?;
        let secret = zeroize::Zeroizing::new(rand::random::<[u8; 32]>());
        let slot = KeySlot::wrap_key_file(
            master,
            &secret,
            access,
            &self.inner.config.id,
            &self.inner.config_digest,
        )?;
        let id = write_slot(&self.inner.store, &slot).await?;
        let text = new_key_file(&self.inner.config.id, &id, access, &secret)?;
        Ok((id, text))
    }

    /// Removes the key slot `id` (a unique prefix of it is enough). The last full key is
    /// never removed: without one nothing could read the repository again.
    ///
    /// # Errors
    /// [`StoreError::KeyNotFound`], [`StoreError::LastKey`]; store errors.
    pub async fn remove_key(&self, id: &str) -> Result<String> {
        self.master("remove keys")?;
        let ids = read_slot_ids(&self.inner.store).await?;
        let slots = read_slots(&self.inner.store, &ids).await?;
        let matching: Vec<&(String, KeySlot)> =
            slots.iter().filter(|(slot, _)| slot.starts_with(id)).collect();
        let [(found, slot)] = matching.as_slice() else {
            return Err(StoreError::KeyNotFound { id: id.into(), matches: matching.len() });
        };
        let full = slots.iter().filter(|(_, s)| s.access == Access::Full).count();
        if slot.access == Access::Full && full < 2 {
            return Err(StoreError::LastKey { id: found.clone() });
        }
        self.delete_key(&slot_key(found)).await?;
        Ok(found.clone())
    }

    /// How many key slots there are, and those whose form is wrong (see [`KeySlot::check`]):
    /// a damaged slot is otherwise found only when its password stops working.
    ///
    /// # Errors
    /// Store errors listing or reading them.
    pub async fn damaged_key_slots(&self) -> Result<(usize, Vec<DamagedObject>)> {
        let mut damaged = Vec::new();
        let ids = read_slot_ids(&self.inner.store).await?;
        for id in &ids {
            let key = slot_key(id).to_string();
            let problem = match read_slot(&self.inner.store, id).await {
                Ok(Some(slot)) => slot.check(&key).err(),
                Ok(None) => None,
                Err(e) => Some(e),
            };
            if let Some(e) = problem {
                damaged.push(DamagedObject { key, reason: e.to_string() });
            }
        }
        Ok((ids.len(), damaged))
    }

    pub(crate) fn crypt(&self) -> &Crypt {
        &self.inner.crypt
    }

    /// The id of a chunk with these bytes in this repository (also of names that must not be
    /// guessable from the store: WAL series, replica leases).
    pub(crate) fn chunk_id(&self, plain: &[u8]) -> ChunkId {
        self.inner.ids.of(plain)
    }

    /// [`StoreError::WriteOnly`] for a write-only key: checked before the store is asked, so
    /// a host whose bucket policy refuses the request never sends it.
    pub(crate) fn refuse_write_only(&self, action: &str) -> Result<()> {
        if self.is_write_only() {
            return Err(StoreError::WriteOnly { action: action.into() });
        }
        Ok(())
    }
}

fn add_to_index(index: &mut ChunkIndex, file: &IndexFile) {
    for pack in &file.packs {
        for blob in &pack.blobs {
            index.entry(blob.id).or_insert(BlobLocation {
                pack: pack.id,
                offset: blob.offset,
                length: blob.length,
                plain: blob.plain,
                pack_size: pack.size,
                base: blob.base,
                head: blob.head,
                tail: blob.tail,
            });
        }
    }
}
