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
    #[error("repository format version {found} is not supported (this lifeboat reads {supported})")]
    UnsupportedVersion {
        /// Version found in the config object.
        found: u32,
        /// Version this build supports.
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
        holder: Box<crate::lease::LeaseInfo>,
    },
    /// The maintenance lease was taken over while we held it (ours had expired).
    #[error("the maintenance lease for {operation} was lost to another process")]
    LeaseLost {
        /// What we were doing.
        operation: String,
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
                Some("create it with `lifeboat init`, or check --repo / LIFEBOAT_REPO".into())
            }
            StoreError::AlreadyInitialised { .. } => {
                Some("nothing to do: use the repository as it is".into())
            }
            StoreError::UnsupportedVersion { .. } => Some("upgrade lifeboat".into()),
            StoreError::AccessDenied { .. } => Some(
                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's permissions"
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
            StoreError::LeaseLost { .. } => {
                Some("nothing was deleted after the loss; run the command again".into())
            }
            StoreError::Core(e) => e.hint(),
        }
    }

    pub(crate) fn object(
        op: &'static str,
        key: impl Into<String>,
        source: object_store::Error,
    ) -> Self {
        let key = key.into();
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
