//! The local-folder store: object_store's [`LocalFileSystem`] made durable and private.
//!
//! The format's crash safety rests on an order of writes: packs, then the index file that
//! describes them, then the manifest (see `backup.rs`). On a disk that order only holds
//! across a power loss if each write has reached the disk before the next begins, so every
//! put, copy and rename here fsyncs the file, then renames it into place and fsyncs its
//! folder (and any folder it created) before returning. Deletes fsync the folder too: prune
//! relies on an old index file staying gone once a newer one replaced it.
//!
//! Objects are created owner-only (0600) and folders 0700, as restic does: a repository
//! holds every byte of the databases backed up into it.

use std::collections::HashSet;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// Mode of every object file.
pub const OBJECT_MODE: u32 = 0o600;
/// Mode of every folder of the repository, the repository's own included.
pub const FOLDER_MODE: u32 = 0o700;

/// A repository folder on the local file system (see the module docs).
#[derive(Debug)]
pub struct LocalStore {
    inner: LocalFileSystem,
    root: PathBuf,
    /// Folders already made private by this process: each is changed once, not per object.
    private: Arc<Mutex<HashSet<PathBuf>>>,
}

impl fmt::Display for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalStore({})", self.root.display())
    }
}

impl LocalStore {
    /// The store for the existing folder `root`.
    ///
    /// # Errors
    /// When `root` cannot be resolved.
    pub fn new(root: &FsPath) -> Result<Self> {
        let inner = LocalFileSystem::new_with_prefix(root)?.with_fsync(true);
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        Ok(LocalStore { inner, root, private: Arc::new(Mutex::new(HashSet::new())) })
    }

    /// Makes a freshly written object at `location` private, with every folder between it
    /// and the root.
    async fn make_private(&self, location: &Path) -> Result<()> {
        let file = self.inner.path_to_filesystem(location)?;
        let root = self.root.clone();
        let private = Arc::clone(&self.private);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(OBJECT_MODE))?;
            let mut dir = file.parent();
            while let Some(d) = dir.filter(|d| d.starts_with(&root) && *d != root) {
                let known = private.lock().map(|set| set.contains(d)).unwrap_or(false);
                if !known {
                    std::fs::set_permissions(d, std::fs::Permissions::from_mode(FOLDER_MODE))?;
                    if let Ok(mut set) = private.lock() {
                        set.insert(d.to_path_buf());
                    }
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
        .map_err(|e| generic(std::io::Error::other(e)))?
        .map_err(generic)
    }
}

fn generic(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic { store: "LocalStore", source: Box::new(e) }
}

/// Fsyncs the folder holding `file`, so a removed entry stays removed.
fn sync_parent(file: &FsPath) -> std::io::Result<()> {
    match file.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await?;
        self.make_private(location).await?;
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        // Durable (fsync is on); lifeboat itself writes no multipart objects.
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let fs = self.inner.clone();
        self.inner
            .delete_stream(locations)
            .then(move |deleted| {
                let fs = fs.clone();
                async move {
                    let location = deleted?;
                    let file = fs.path_to_filesystem(&location)?;
                    tokio::task::spawn_blocking(move || sync_parent(&file))
                        .await
                        .map_err(|e| generic(std::io::Error::other(e)))?
                        .map_err(generic)?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.make_private(to).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        self.make_private(to).await
    }
}
