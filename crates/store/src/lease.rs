//! Leases on the store itself: who holds the repository's maintenance (prune), and which
//! backups are running.
//!
//! The maintenance lease is a sequence of generation objects `locks/maintenance/<gen>`, each
//! written with a conditional create (`If-None-Match: *`) and carrying its holder (host, pid,
//! a random owner id) and an expiry. The newest generation is the lease:
//!
//! - *take*: read the newest generation; if it is live and not ours, the lease is busy; else
//!   create the next generation. Two contenders race for the same key and exactly one create
//!   succeeds.
//! - *renew*: create the next generation with a later expiry. If that key already exists,
//!   someone took the lease over after ours expired: we lost it and must stop.
//! - *release*: delete our generations. A holder that dies simply stops renewing; after the
//!   TTL anyone may take over. Nobody is blocked past the TTL by a dead host. A holder on
//!   this host whose process is gone (killed, or from before this host's last boot: the lease
//!   records host, boot id and pid) is known dead, so its lease is taken over at once, with a
//!   log line saying so; another host's lease, or one without a boot id (older versions),
//!   still waits for the TTL.
//!
//! Only conditional create is used (not If-Match updates) because object_store's local
//! folder backend does not implement conditional updates; generations give the same
//! guarantee with the one primitive every store here has.
//!
//! Backups take shared, non-exclusive leases: `locks/backups/<owner>`, renewed by overwrite
//! while they run and deleted when they end. Prune reads them to know which backups may
//! still be relying on data it is about to delete.

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use object_store::path::Path;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::crypt::Domain;
use crate::error::{Result, StoreError};
use crate::holder::{LeaseInfo, ttl_chrono};
use crate::repository::Repository;

/// Prefix of every lease object.
pub const LOCKS_PREFIX: &str = "locks";
const MAINTENANCE: &str = "locks/maintenance";
const BACKUPS: &str = "locks/backups";

const REPLICAS: &str = "locks/replicas";

fn generation_key(folder: &str, generation: u64) -> Path {
    Path::from(format!("{folder}/{generation:020}"))
}

/// An exclusive lease while held: the maintenance lease (prune, repair), or the lease of one
/// replica (one replicator per database). Both are generation objects in a folder of their
/// own, taken and renewed as the module's doc says.
#[derive(Debug)]
pub struct MaintenanceLease {
    repo: Repository,
    folder: String,
    info: LeaseInfo,
    generation: u64,
    ttl: Duration,
}

impl Repository {
    /// The newest maintenance lease generation and its holder, if any.
    ///
    /// # Errors
    /// Store errors; an unreadable lease object is reported as malformed.
    pub async fn maintenance_holder(&self) -> Result<Option<(u64, LeaseInfo)>> {
        self.exclusive_holder(MAINTENANCE).await
    }

    /// The folder of the lease of replica `name`: named by a keyed hash, as WAL series are.
    fn replica_lease_folder(&self, name: &str) -> String {
        let id = self.chunk_id(format!("lifeboat replica lease {name}").as_bytes());
        format!("{REPLICAS}/{}", &id.to_hex()[..32])
    }

    /// Who holds the lease of replica `name`, if anyone.
    ///
    /// # Errors
    /// As [`Repository::maintenance_holder`].
    pub async fn replica_holder(&self, name: &str) -> Result<Option<LeaseInfo>> {
        Ok(self.exclusive_holder(&self.replica_lease_folder(name)).await?.map(|(_, h)| h))
    }

    /// Takes the lease of replica `name` (one replicator per replica, whatever the host).
    ///
    /// # Errors
    /// [`StoreError::Locked`] naming the holder when another replicator holds it.
    pub async fn acquire_replica_lease(
        &self,
        name: &str,
        operation: &str,
        ttl: Duration,
    ) -> Result<MaintenanceLease> {
        match self.acquire_exclusive(self.replica_lease_folder(name), operation, ttl).await {
            Err(StoreError::Locked { holder }) => {
                Err(StoreError::ReplicaBusy { name: name.into(), holder })
            }
            other => other,
        }
    }

    async fn exclusive_holder(&self, folder: &str) -> Result<Option<(u64, LeaseInfo)>> {
        let mut keys = self.list_keys(folder).await?;
        keys.sort_by_key(|k| k.to_string());
        let Some(key) = keys.pop() else { return Ok(None) };
        let generation = key.filename().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        let body = match self.get_bytes(&key).await {
            Ok(b) => b,
            // Released between list and get: nobody holds it.
            Err(StoreError::Core(lifeboat_core::Error::Missing { .. })) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some((generation, self.decode_lease(&key, body)?)))
    }

    /// Takes the maintenance lease for `operation`.
    ///
    /// # Errors
    /// [`StoreError::Locked`] naming the holder when someone else holds a live lease.
    pub async fn acquire_maintenance(
        &self,
        operation: &str,
        ttl: Duration,
    ) -> Result<MaintenanceLease> {
        if self.is_write_only() {
            return Err(StoreError::WriteOnly { action: format!("{operation} (maintenance)") });
        }
        self.acquire_exclusive(MAINTENANCE.into(), operation, ttl).await
    }

    async fn acquire_exclusive(
        &self,
        folder: String,
        operation: &str,
        ttl: Duration,
    ) -> Result<MaintenanceLease> {
        let now = Utc::now();
        let current = self.exclusive_holder(&folder).await?;
        if let Some((_, holder)) = &current
            && holder.is_live(now)
        {
            if !holder.holder_gone() {
                return Err(StoreError::Locked { holder: Box::new(holder.clone()) });
            }
            warn!(
                host = %holder.host,
                pid = holder.pid,
                operation = %holder.operation,
                expires = %holder.expires,
                folder,
                "the lease's holder, a process of this host, is gone: taking the lease over before it expires"
            );
        }
        let generation = current.map_or(1, |(g, _)| g + 1);
        let info = LeaseInfo::new(operation, ttl);
        let body = self.encode_lease(&folder, &info)?;
        match self.create_bytes(&generation_key(&folder, generation), body).await {
            Ok(()) => {}
            Err(StoreError::Object {
                source: object_store::Error::AlreadyExists { .. }, ..
            }) => {
                // Someone else created this generation first: they hold it now.
                let holder = self.exclusive_holder(&folder).await?.map(|(_, h)| h).unwrap_or(info);
                return Err(StoreError::Locked { holder: Box::new(holder) });
            }
            Err(e) => return Err(e),
        }
        debug!(generation, folder, "exclusive lease taken");
        let lease = MaintenanceLease { repo: self.clone(), folder, info, generation, ttl };
        lease.forget_older().await;
        Ok(lease)
    }

    /// Removes every maintenance lease generation, whoever holds it (`lifeboat unlock`), and
    /// the backup leases that are expired or whose holder on this host is gone. Returns
    /// what was removed.
    ///
    /// # Errors
    /// Store errors.
    pub async fn unlock(&self) -> Result<Vec<LeaseInfo>> {
        if self.is_write_only() {
            return Err(StoreError::WriteOnly { action: "unlock the repository".into() });
        }
        let mut removed = Vec::new();
        if let Some((_, holder)) = self.maintenance_holder().await? {
            removed.push(holder);
        }
        for key in self.list_keys(MAINTENANCE).await? {
            self.delete_key(&key).await?;
        }
        let now = Utc::now();
        for (key, info) in self.backup_leases().await? {
            if !info.is_live(now) || info.holder_gone() {
                self.delete_key(&key).await?;
                removed.push(info);
            }
        }
        Ok(removed)
    }

    /// Every backup lease in the store (live or expired), with its key.
    ///
    /// # Errors
    /// Store errors.
    pub async fn backup_leases(&self) -> Result<Vec<(Path, LeaseInfo)>> {
        let mut out = Vec::new();
        for key in self.list_keys(BACKUPS).await? {
            match self.get_bytes(&key).await {
                Ok(body) => match self.decode_lease(&key, body) {
                    Ok(info) => out.push((key, info)),
                    Err(e) => warn!(key = %key, error = %e, "ignoring unreadable backup lease"),
                },
                Err(StoreError::Core(lifeboat_core::Error::Missing { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// How many lease objects there are, and those that do not open or parse (damaged, or
    /// sealed with another key).
    ///
    /// # Errors
    /// Store errors listing or reading them.
    pub async fn damaged_leases(&self) -> Result<(usize, Vec<crate::DamagedObject>)> {
        let keys = self.list_keys(LOCKS_PREFIX).await?;
        let mut damaged = Vec::new();
        for key in &keys {
            let problem = match self.get_bytes(key).await {
                Ok(body) => self.decode_lease(key, body).err(),
                Err(StoreError::Core(lifeboat_core::Error::Missing { .. })) => None,
                Err(e) => return Err(e),
            };
            if let Some(e) = problem {
                damaged.push(crate::DamagedObject { key: key.to_string(), reason: e.to_string() });
            }
        }
        Ok((keys.len(), damaged))
    }

    /// Takes a shared backup lease, renewed in the background until the guard is dropped.
    ///
    /// # Errors
    /// Store errors writing the lease.
    pub async fn start_backup_lease(&self, operation: &str, ttl: Duration) -> Result<BackupLease> {
        let info = LeaseInfo::new(operation, ttl);
        let key = Path::from(format!("{BACKUPS}/{}", info.owner));
        self.write_backup_lease(&key, &info).await?;
        let (repo, renew_key, mut renewed) = (self.clone(), key.clone(), info.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                renewed.expires = Utc::now() + ttl_chrono(ttl);
                if let Err(e) = repo.write_backup_lease(&renew_key, &renewed).await {
                    warn!(error = %e, "could not renew the backup lease");
                }
            }
        });
        Ok(BackupLease { repo: self.clone(), key, info, renewer: Some(renewer) })
    }

    /// Ends a backup lease: deletes it, or, for a write-only key (which deletes nothing),
    /// overwrites it with one that has expired, which prune and `unlock` treat as gone and
    /// remove.
    async fn end_backup_lease(&self, key: &Path, info: &LeaseInfo) -> Result<()> {
        if self.is_write_only() {
            let ended = LeaseInfo { expires: Utc::now(), ..info.clone() };
            return self.write_backup_lease(key, &ended).await;
        }
        self.delete_key(key).await
    }

    async fn write_backup_lease(&self, key: &Path, info: &LeaseInfo) -> Result<()> {
        let body = self.encode_lease(key.as_ref(), info)?;
        self.put_bytes(key, body).await
    }

    /// A lease's bytes: JSON, sealed in an encrypted repository.
    fn encode_lease(&self, key: &str, info: &LeaseInfo) -> Result<Bytes> {
        let body = serde_json::to_vec_pretty(info)
            .map_err(|e| StoreError::Malformed { key: key.into(), reason: e.to_string() })?;
        Ok(Bytes::from(self.crypt().seal(Domain::Lease, body)?))
    }

    /// Reads what [`Repository::encode_lease`] wrote.
    fn decode_lease(&self, key: &Path, body: Bytes) -> Result<LeaseInfo> {
        let body = self.crypt().open(key.as_ref(), Domain::Lease, body)?;
        serde_json::from_slice(&body)
            .map_err(|e| StoreError::Malformed { key: key.to_string(), reason: e.to_string() })
    }
}

impl MaintenanceLease {
    /// The lease's holder information.
    pub fn info(&self) -> &LeaseInfo {
        &self.info
    }

    /// Extends the lease by its TTL.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when another process took the lease over (ours had
    /// expired); the caller must stop deleting at once.
    pub async fn renew(&mut self) -> Result<()> {
        let mut info = self.info.clone();
        let now = Utc::now();
        info.expires = now + ttl_chrono(self.ttl);
        info.renewed = Some(now);
        let next = self.generation + 1;
        let body = self.repo.encode_lease(&self.folder, &info)?;
        match self.repo.create_bytes(&generation_key(&self.folder, next), body).await {
            Ok(()) => {
                self.generation = next;
                self.info = info;
                self.forget_older().await;
                Ok(())
            }
            Err(StoreError::Object {
                source: object_store::Error::AlreadyExists { .. }, ..
            }) => Err(StoreError::LeaseLost { operation: self.info.operation.clone() }),
            Err(e) => Err(e),
        }
    }

    /// Renews when less than two thirds of the TTL is left.
    ///
    /// # Errors
    /// As [`MaintenanceLease::renew`].
    pub async fn keep_alive(&mut self) -> Result<()> {
        let left = self.info.expires.signed_duration_since(Utc::now());
        if left < ttl_chrono(self.ttl * 2 / 3) { self.renew().await } else { Ok(()) }
    }

    /// Gives the lease up.
    ///
    /// # Errors
    /// Store errors deleting the lease objects (it then expires by itself).
    pub async fn release(self) -> Result<()> {
        for key in self.repo.list_keys(&self.folder).await? {
            let generation = key.filename().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            if generation <= self.generation {
                self.repo.delete_key(&key).await?;
            }
        }
        Ok(())
    }

    async fn forget_older(&self) {
        let Ok(keys) = self.repo.list_keys(&self.folder).await else { return };
        for key in keys {
            let generation = key.filename().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            if generation < self.generation {
                let _ = self.repo.delete_key(&key).await;
            }
        }
    }
}

/// A running backup's shared lease; deleted when dropped (renewal stops with it).
#[derive(Debug)]
pub struct BackupLease {
    repo: Repository,
    key: Path,
    info: LeaseInfo,
    renewer: Option<JoinHandle<()>>,
}

impl BackupLease {
    /// The lease's holder information.
    pub fn info(&self) -> &LeaseInfo {
        &self.info
    }

    /// Ends the lease.
    pub async fn end(mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        if let Err(e) = self.repo.end_backup_lease(&self.key, &self.info).await {
            warn!(error = %e, "could not remove the backup lease; it expires by itself");
        }
    }
}

impl Drop for BackupLease {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
            // Dropped without `end` (an error path): remove the lease in the background.
            let (repo, key, info) = (self.repo.clone(), self.key.clone(), self.info.clone());
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = repo.end_backup_lease(&key, &info).await;
                });
            }
        }
    }
}
