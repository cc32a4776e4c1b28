//! Deep verification: restore into a scratch file and run SQLite's own checks on it.

use async_trait::async_trait;
use lifeboat_core::{Error, NoProgress, Result, Snapshot, Verifier, VerifyReport};

use crate::inspect::check_database;
use crate::restore::{metadata_of, write_stream};

/// Restores a snapshot into a scratch file and checks integrity, schema and row counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct SqliteVerifier;

#[async_trait]
impl Verifier for SqliteVerifier {
    async fn verify(&self, snapshot: &dyn Snapshot) -> Result<VerifyReport> {
        let expected = metadata_of(snapshot.manifest())?;
        let scratch = tempfile::Builder::new()
            .prefix("lifeboat-verify-")
            .tempdir()
            .map_err(|e| Error::io("creating a scratch folder in", std::env::temp_dir(), e))?;
        let path = scratch.path().join("restored.db");
        tokio::fs::File::create(&path).await.map_err(|e| Error::io("creating", &path, e))?;
        let mut report = VerifyReport::new(format!(
            "snapshot {} restored to a scratch file",
            snapshot.id().short()
        ));
        if let Err(e) = write_stream(snapshot, &path, &NoProgress).await {
            report.checks.push(lifeboat_core::Check::fail("restore", e.to_string()));
            return Ok(report);
        }
        report.checks.push(lifeboat_core::Check::pass(
            "restore",
            format!("{} bytes", snapshot.manifest().size),
        ));
        let checks = tokio::task::spawn_blocking(move || check_database(&path, Some(&expected)))
            .await
            .map_err(|e| Error::Backend {
                kind: lifeboat_core::Kind::Sqlite,
                message: e.to_string(),
            })?;
        report.checks.extend(checks);
        Ok(report)
    }
}
