//! A replica's base snapshot: streamed from a read transaction begun at a known place in
//! the `-wal` (see `Replicator::base_snapshot`), with that place in its metadata.

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lifeboat_core::{Backup, Capture, Kind, Result};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::walfile::WalPosition;
use crate::error::backend;

/// Where a replica's base snapshot stands in its history (in its metadata, `replica`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaPoint {
    /// The replica's name.
    pub name: String,
    /// The generation this snapshot starts or belongs to.
    pub generation: u32,
    /// The last transaction the snapshot holds.
    pub txid: u64,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Where reading the `-wal` stood (`None`: there was no `-wal`; the next one's frames all
    /// follow).
    pub wal: Option<WalPosition>,
    /// Transactions laid over the base to make this file (a restore to a point): when not
    /// 0, the snapshot's table counts and schema hash are its base's, not this file's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub applied: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A base snapshot streamed from an anchored read transaction.
pub(crate) struct AnchoredCapture {
    pub path: PathBuf,
    pub conn: Mutex<Option<Connection>>,
    pub point: ReplicaPoint,
}

#[async_trait]
impl Backup for AnchoredCapture {
    fn kind(&self) -> Kind {
        Kind::SQLITE
    }

    fn default_name(&self) -> String {
        self.point.name.clone()
    }

    fn target(&self) -> String {
        self.path.display().to_string()
    }

    async fn capture(&self) -> Result<Capture> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| backend("the anchored connection was poisoned"))?
            .take()
            .ok_or_else(|| backend("an anchored capture can be taken once"))?;
        crate::backup::page_capture(
            conn,
            self.path.clone(),
            "wal".into(),
            crate::backup::Transaction::Begun,
            Some(self.point.clone()),
        )
    }
}
