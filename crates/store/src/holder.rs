//! Who holds a lease, as stored in the lease objects: the data alone, so that errors and the
//! repository can name a holder without depending on how leases are taken.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How long a lease lives without renewal, unless configured.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(120);

/// Who holds a lease, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// Random id of the holding process.
    pub owner: String,
    /// Host of the holder.
    pub host: String,
    /// Process id of the holder.
    pub pid: u32,
    /// The holder host's boot id, so a pid is only trusted during the boot that recorded it.
    /// Absent in leases written by older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// What it is doing (`prune`, `backup auth`).
    pub operation: String,
    /// When the holder first took it.
    pub acquired: DateTime<Utc>,
    /// When it expires unless renewed.
    pub expires: DateTime<Utc>,
    /// When it was last taken or renewed (absent in leases of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed: Option<DateTime<Utc>>,
}

impl LeaseInfo {
    pub(crate) fn new(operation: &str, ttl: Duration) -> Self {
        let now = Utc::now();
        LeaseInfo {
            owner: hex::encode(rand::random::<[u8; 12]>()),
            host: lifeboat_core::host::host_name(),
            pid: std::process::id(),
            boot_id: lifeboat_core::host::boot_id(),
            operation: operation.into(),
            acquired: now,
            expires: now + ttl_chrono(ttl),
            renewed: Some(now),
        }
    }

    /// Whether it is still in force at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires > now
    }

    /// Whether its holder is known to be gone: a process of this host (and boot) that no
    /// longer runs, or one from before this host's last boot.
    pub fn holder_gone(&self) -> bool {
        lifeboat_core::host::holder_gone(&self.host, self.boot_id.as_deref(), self.pid)
    }
}

pub(crate) fn ttl_chrono(ttl: Duration) -> chrono::Duration {
    chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(120))
}
