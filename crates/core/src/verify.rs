//! The `Verifier` role: checks that answer "is this restorable and right?".

use async_trait::async_trait;
use serde::Serialize;

use crate::{Result, Snapshot};

/// The result of one named check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked ("integrity_check", "row count of users").
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

impl Check {
    /// A check that held.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check { name: name.into(), ok: true, detail: detail.into() }
    }

    /// A check that failed.
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check { name: name.into(), ok: false, detail: detail.into() }
    }

    /// A check that holds when `ok`.
    pub fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Check { name: name.into(), ok, detail: detail.into() }
    }
}

/// Every check run on one subject.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// What was verified (a snapshot id, a restored path).
    pub subject: String,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl VerifyReport {
    /// An empty report about `subject`.
    pub fn new(subject: impl Into<String>) -> Self {
        VerifyReport { subject: subject.into(), checks: Vec::new() }
    }

    /// Whether every check held.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The failed checks, one line each.
    pub fn failures(&self) -> Vec<String> {
        self.checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.name, c.detail)).collect()
    }
}

/// Checks a stored snapshot.
#[async_trait]
pub trait Verifier: Send + Sync {
    /// Runs this verifier's checks on `snapshot`. A failed check is reported, not returned as
    /// an error; errors mean the verification itself could not run.
    ///
    /// # Errors
    /// When the checks cannot be run at all.
    async fn verify(&self, snapshot: &dyn Snapshot) -> Result<VerifyReport>;
}
