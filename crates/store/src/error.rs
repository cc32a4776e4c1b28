//! Errors of the repository.
//!
//! Every variant names the repository URL or object key involved. Cases a caller can act on
//! (not found, corrupt, missing) convert into the matching [`lifeboat_core::Error`] variant.

use lifeboat_core::Error as CoreError;

/// What can go wrong opening, reading or writing a repository.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The repository URL's scheme is not one lifeboat knows.
    #[error("unknown repository URL scheme in {url:?}")]
    UnknownScheme {
        /// The URL as given.
        url: String,
    },
    /// The repository URL could not be understood.
    #[error("invalid repository URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// There is no repository at the URL.
    #[error("no lifeboat repository at {url} (the config object is missing)")]
    NotInitialised {
        /// The repository URL.
        url: String,
    },
    /// `init` found a repository already there.
    #[error("a lifeboat repository already exists at {url}")]
    AlreadyInitialised {
        /// The repository URL.
        url: String,
    },
    /// The repository was written by a newer lifeboat.
    #[error(
        "repository format version {found} is not supported (this lifeboat reads versions {} \
         to {supported})",
        crate::format::OLDEST_FORMAT_VERSION
    )]
    UnsupportedVersion {
        /// Version found in the config object.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The store refused the credentials.
    #[error("the store refused access to {key}: {source}")]
    AccessDenied {
        /// The object key.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// The local file system refused a write or read for good: it is full, read-only, or
    /// the folder's permissions do not allow it. Not retried.
    #[error("{op} {key} failed: {problem}: {source}")]
    LocalDisk {
        /// The operation ("put", "get", "list").
        op: &'static str,
        /// The object key.
        key: String,
        /// Which refusal it is.
        problem: DiskProblem,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// S3 credentials are not configured, and probing the cloud's metadata service for them
    /// was not asked for.
    #[error("no S3 credentials for {url}: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")]
    NoCredentials {
        /// The repository URL.
        url: String,
    },
    /// A store operation failed after retries.
    #[error("{op} {key} failed: {source}")]
    Object {
        /// The operation ("put", "get", "list").
        op: &'static str,
        /// The object key.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// An object's contents are not what lifeboat wrote.
    #[error("{key} is malformed: {reason}")]
    Malformed {
        /// The object key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds the repository's maintenance lease.
    #[error("the repository is locked by {} on {} (pid {}) since {} until {}", holder.operation, holder.host, holder.pid, holder.acquired.to_rfc3339(), holder.expires.to_rfc3339())]
    Locked {
        /// Who holds it.
        holder: Box<crate::holder::LeaseInfo>,
    },
    /// Another replicator holds the lease of this replica.
    #[error("replica {name:?} is already replicated by {} on {} (pid {}) since {}; its lease runs until {}", holder.operation, holder.host, holder.pid, holder.acquired.to_rfc3339(), holder.expires.to_rfc3339())]
    ReplicaBusy {
        /// The replica.
        name: String,
        /// Who holds it.
        holder: Box<crate::holder::LeaseInfo>,
    },
    /// The maintenance lease was taken over while we held it (ours had expired).
    #[error("the maintenance lease for {operation} was lost to another process")]
    LeaseLost {
        /// What we were doing.
        operation: String,
    },
    /// The repository is encrypted and no password was given.
    #[error("the repository at {url} is encrypted: give a password")]
    KeyRequired {
        /// The repository URL.
        url: String,
    },
    /// No key slot of the repository opens with the password given.
    #[error("wrong password for the repository at {url}: no key of it opens with this password")]
    WrongPassword {
        /// The repository URL.
        url: String,
    },
    /// A key operation on a plaintext repository.
    #[error("the repository at {url} is not encrypted: it has no keys")]
    NotEncrypted {
        /// The repository URL.
        url: String,
    },
    /// No key slot, or more than one, has the id given.
    #[error("{matches} keys match {id:?}")]
    KeyNotFound {
        /// The id (or prefix) given.
        id: String,
        /// How many slots it matched.
        matches: usize,
    },
    /// Removing the repository's only key was refused.
    #[error("key {id} is the repository's last key: removing it would lock everyone out")]
    LastKey {
        /// The slot's id.
        id: String,
    },
    /// A write-only key was asked to read data or manifests, or to delete.
    #[error("this key is write-only: it cannot {action}")]
    WriteOnly {
        /// What was attempted.
        action: String,
    },
    /// A key file made for another repository.
    #[error("the key file {file} is for repository {expected}, not for {url} (repository {found})")]
    KeyFileMismatch {
        /// The key file.
        file: String,
        /// The repository id the key file names.
        expected: String,
        /// The repository URL opened.
        url: String,
        /// Its id.
        found: String,
    },
    /// The key slot a key file names is not in the repository (the key was removed).
    #[error("the key {slot} of the key file is not in the repository at {url}: it was removed")]
    KeyRemoved {
        /// The slot id.
        slot: String,
        /// The repository URL.
        url: String,
    },
    /// The config object is not the one the key was made with.
    #[error(
        "the config of the repository at {url} is not the one its keys were made with: it was changed in the store"
    )]
    ConfigChanged {
        /// The repository URL.
        url: String,
    },
    /// The config says plaintext, yet key slots exist.
    #[error(
        "the repository at {url} has keys but its config says it is not encrypted: the config was changed in the store"
    )]
    ConfigDowngraded {
        /// The repository URL.
        url: String,
    },
    /// Another file is already archived under this name in this WAL series: the archive
    /// never replaces a file.
    #[error(
        "{file} is already in the WAL archive of {series} with other content: refusing to replace it"
    )]
    WalConflict {
        /// The series (the cluster's name).
        series: String,
        /// The file's name.
        file: String,
    },
    /// A domain error (corrupt chunk, snapshot not found, capture failure).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl StoreError {
    /// A one-line suggestion of what to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::UnknownScheme { .. } | StoreError::InvalidUrl { .. } => {
                Some("use a path, file:///path, s3://bucket/prefix or memory://".into())
            }
            StoreError::NotInitialised { .. } => {
                Some("create it first (`lifeboat init`), or check the repository URL".into())
            }
            StoreError::AlreadyInitialised { .. } => {
                Some("nothing to do: use the repository as it is".into())
            }
            StoreError::UnsupportedVersion { .. } => Some("upgrade lifeboat".into()),
            StoreError::AccessDenied { .. } => Some(
                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's permissions"
                    .into(),
            ),
            StoreError::LocalDisk { problem, .. } => Some(
                match problem {
                    DiskProblem::Full => {
                        "free space on the file system holding the repository (see `df`), then \
                         run the command again: what was written so far is not visible"
                    }
                    DiskProblem::ReadOnly => {
                        "the repository's file system is mounted read-only: remount it \
                         read-write, or use a repository elsewhere"
                    }
                    DiskProblem::Denied => {
                        "check the owner and permissions of the repository folder: this user \
                         must be able to read and write everything in it"
                    }
                }
                .into(),
            ),
            StoreError::NoCredentials { .. } => Some(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT for a server \
                 other than AWS); on an EC2 instance with a role, set \
                 AWS_EC2_METADATA_DISABLED=false to use it"
                    .into(),
            ),
            StoreError::Object { .. } => {
                Some("check the store is reachable (AWS_ENDPOINT, network) and try again".into())
            }
            StoreError::Malformed { .. } => Some(
                "run `lifeboat verify --all --read-data` to see which snapshots are affected"
                    .into(),
            ),
            StoreError::Locked { .. } => Some(
                "wait for it to finish; if that process is gone, the lease expires by itself, or \
                 run `lifeboat unlock`"
                    .into(),
            ),
            StoreError::ReplicaBusy { .. } => Some(
                "one replicator per database: stop that one first; a killed replicator's lease is \
                 taken over at once on its own host, or once it expires"
                    .into(),
            ),
            StoreError::LeaseLost { .. } => {
                Some("nothing was deleted after the loss; run the command again".into())
            }
            StoreError::KeyRequired { .. } => Some(
                "set LIFEBOAT_PASSWORD_FILE, LIFEBOAT_PASSWORD or LIFEBOAT_KEY_FILE, or pass \
                 --password-file, --password-command or --key-file"
                    .into(),
            ),
            StoreError::WrongPassword { .. } => Some(
                "check the password (LIFEBOAT_PASSWORD, --password-file); nothing was written"
                    .into(),
            ),
            StoreError::NotEncrypted { .. } => Some(
                "keys exist only in encrypted repositories (made without --no-encryption)".into(),
            ),
            StoreError::KeyNotFound { .. } => Some(
                "`lifeboat key list` shows the ids; give one, or enough of it to be unique".into(),
            ),
            StoreError::LastKey { .. } => {
                Some("add another key first (`lifeboat key add`), then remove this one".into())
            }
            StoreError::WriteOnly { .. } => Some(
                "a write-only key only backs up; restore, cat, ls, snapshots, verify, forget, \
                 prune, unlock and replicate need a full key (a password or a full key file)"
                    .into(),
            ),
            StoreError::KeyFileMismatch { .. } => {
                Some("give the key file made for this repository, or the right --repo".into())
            }
            StoreError::KeyRemoved { .. } => {
                Some("ask for a new key (`lifeboat key add --out FILE` with a full key)".into())
            }
            StoreError::ConfigChanged { .. } | StoreError::ConfigDowngraded { .. } => Some(
                "nothing was read or written: restore the config object from a copy and check \
                 who can write to the store"
                    .into(),
            ),
            StoreError::WalConflict { .. } => Some(
                "two servers may be archiving under one name (a restored copy or a promoted \
                 standby): give each its own --name; the archived file was left as it is"
                    .into(),
            ),
            StoreError::Core(e) => e.hint(),
        }
    }

    pub(crate) fn object(
        op: &'static str,
        key: impl Into<String>,
        source: object_store::Error,
    ) -> Self {
        let key = key.into();
        if let Some(problem) = disk_problem(&source) {
            return StoreError::LocalDisk { op, key, problem, source };
        }
        match source {
            object_store::Error::Unauthenticated { .. }
            | object_store::Error::PermissionDenied { .. } => {
                StoreError::AccessDenied { key, source }
            }
            source if is_access_denied(&source) => StoreError::AccessDenied { key, source },
            source => StoreError::Object { op, key, source },
        }
    }
}

/// How a local file system refused an operation for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiskProblem {
    /// No space left (ENOSPC) or quota exceeded (EDQUOT).
    Full,
    /// The file system is mounted read-only (EROFS).
    ReadOnly,
    /// Permission denied (EACCES, EPERM).
    Denied,
}

impl std::fmt::Display for DiskProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DiskProblem::Full => "no space left on the repository's file system",
            DiskProblem::ReadOnly => "the repository's file system is read-only",
            DiskProblem::Denied => "permission denied in the repository folder",
        })
    }
}

/// The local file system refusal behind `e`, if that is what it is: found by the
/// [`std::io::Error`] in its chain of sources.
pub(crate) fn disk_problem(e: &object_store::Error) -> Option<DiskProblem> {
    use std::io::ErrorKind as K;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            match io.kind() {
                K::StorageFull | K::QuotaExceeded => return Some(DiskProblem::Full),
                K::ReadOnlyFilesystem => return Some(DiskProblem::ReadOnly),
                K::PermissionDenied => return Some(DiskProblem::Denied),
                _ => {}
            }
        }
        cause = c.source();
    }
    None
}

fn is_access_denied(e: &object_store::Error) -> bool {
    let text = e.to_string();
    ["403 Forbidden", "SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"]
        .iter()
        .any(|needle| text.contains(needle))
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Core(inner) => inner,
            other => {
                let hint = other.hint();
                CoreError::Repository { message: other.to_string(), hint }
            }
        }
    }
}

/// Result with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
