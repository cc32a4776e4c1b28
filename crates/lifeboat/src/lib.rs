//! # lifeboat
//!
//! Back up, verify and restore SQLite and PostgreSQL databases, Docker containers and
//! folders into one deduplicated, checksummed repository, from your own Rust service.
//!
//! This crate gathers the parts:
//! - the domain from `lifeboat-core` at the root: [`Backup`], [`Snapshot`], [`RestorePlan`],
//!   [`Kind`], the [`Backend`] trait and its [`Registry`];
//! - the repository from `lifeboat-store`: [`Repository`], and all of it under [`store`];
//! - the built-in backends, each behind a Cargo feature of its name (all on by default):
//!   [`sqlite`], [`postgres`], [`container`], [`dir`];
//! - [`backends`]: a [`Registry`] of the built-in backends this build has.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use lifeboat::{BackupOptions, NoProgress, Repository, TargetSpec};
//!
//! let folder = tempfile::tempdir()?;
//! std::fs::write(folder.path().join("notes.txt"), "hello")?;
//! let repo = Repository::open_or_init("memory://").await?;
//! let target = TargetSpec::new(lifeboat::Kind::DIR, folder.path().display().to_string());
//! let outcomes = repo
//!     .backup_target(&lifeboat::backends(), &target, &BackupOptions::default(), &NoProgress, &mut |_| {})
//!     .await?;
//! assert!(outcomes[0].result.is_ok());
//! # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

pub use lifeboat_core::*;
pub use lifeboat_store::{
    BackupOptions, MemberOutcome, Repository, RepositoryVerifier, StoreError, StoredSnapshot,
};

/// The repository: everything of `lifeboat-store`.
pub mod store {
    pub use lifeboat_store::*;
}

/// SQLite database files (feature `sqlite`).
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use lifeboat_sqlite::*;
}

/// PostgreSQL databases (feature `postgres`).
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use lifeboat_postgres::*;
}

/// Docker containers (feature `container`).
#[cfg(feature = "container")]
pub mod container {
    pub use lifeboat_container::*;
}

/// Folders (feature `dir`).
#[cfg(feature = "dir")]
pub mod dir {
    pub use lifeboat_dir::*;
}

/// A registry of the built-in backends this build has, by feature.
pub fn backends() -> Registry {
    let mut registry = Registry::new();
    let add = |result: Result<&mut Registry>| {
        if let Err(e) = result {
            tracing::error!("a built-in backend did not register: {e}");
        }
    };
    #[cfg(feature = "sqlite")]
    add(registry.register(lifeboat_sqlite::SqliteBackend));
    #[cfg(feature = "postgres")]
    add(registry.register(lifeboat_postgres::PostgresBackend));
    #[cfg(feature = "postgres")]
    add(registry.register(lifeboat_postgres::PostgresClusterBackend));
    #[cfg(feature = "container")]
    add(registry.register(lifeboat_container::ContainerBackend));
    #[cfg(feature = "dir")]
    add(registry.register(lifeboat_dir::DirBackend));
    registry
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// A backend's error reaches an embedding service whole: its message and hint, and its
    /// own typed error down the `source()` chain.
    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn a_backends_error_keeps_its_typed_source() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_database = dir.path().join("notes.txt");
        std::fs::write(&not_a_database, "just text, not SQLite").unwrap();
        let repo = crate::Repository::open_or_init("memory://").await.unwrap();
        let spec =
            crate::TargetSpec::new(crate::Kind::SQLITE, not_a_database.display().to_string());
        let outcomes = repo
            .backup_target(
                &super::backends(),
                &spec,
                &Default::default(),
                &crate::NoProgress,
                &mut |_| {},
            )
            .await
            .unwrap();
        let err = outcomes.into_iter().next().unwrap().result.unwrap_err();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        let mut typed = None;
        while let Some(e) = cause {
            typed = typed.or(e.downcast_ref::<crate::sqlite::SqliteError>());
            cause = e.source();
        }
        assert!(typed.is_some(), "no SqliteError below {err}");
    }

    #[test]
    fn every_built_in_backend_registers() {
        let kinds = super::backends().kinds();
        let expected = usize::from(cfg!(feature = "sqlite"))
            + 2 * usize::from(cfg!(feature = "postgres"))
            + usize::from(cfg!(feature = "container"))
            + usize::from(cfg!(feature = "dir"));
        assert_eq!(kinds.len(), expected, "{kinds:?}");
    }
}
