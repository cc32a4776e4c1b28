//! Which names are stale: their newest backup is older than their limit, or they have none.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::StoredSnapshot;
use chrono::{DateTime, Utc};
use lifeboat_core::format_duration;
use serde::Serialize;

/// How fresh one name is.
#[derive(Debug, Clone, Serialize)]
pub struct Freshness {
    /// Snapshot name.
    pub name: String,
    /// When its newest snapshot was taken.
    pub newest: Option<DateTime<Utc>>,
    /// Age of the newest snapshot.
    pub age_seconds: Option<u64>,
    /// The limit it is held to.
    pub limit_seconds: u64,
    /// Whether it is older than the limit, or missing.
    pub stale: bool,
    /// Why, for people.
    pub reason: String,
}

/// The freshness of every name in `limits` (name → maximum age) as of `now`; a name with no
/// snapshot is stale.
pub fn freshness(
    snaps: &[StoredSnapshot],
    limits: &BTreeMap<String, Duration>,
    now: DateTime<Utc>,
) -> Vec<Freshness> {
    freshness_with_wal(snaps, &BTreeMap::new(), limits, now)
}

/// As [`freshness`], where a name with a base backup is as fresh as its newest archived WAL
/// file (`wal`: name → when it was archived): its RPO is the age of that file.
pub fn freshness_with_wal(
    snaps: &[StoredSnapshot],
    wal: &BTreeMap<String, DateTime<Utc>>,
    limits: &BTreeMap<String, Duration>,
    now: DateTime<Utc>,
) -> Vec<Freshness> {
    let mut newest: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    // Only backups make a name fresh: a safety snapshot taken before a restore holds what
    // the restore replaced, not a backup of the name.
    for s in snaps.iter().filter(|s| !s.manifest().is_safety()) {
        let m = s.manifest();
        if limits.contains_key(&m.name) {
            let entry = newest.entry(&m.name).or_insert(m.time);
            *entry = (*entry).max(m.time);
        }
    }
    // The WAL counts only after a base backup it applies to.
    let mut from_wal: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for (name, time) in newest.iter_mut() {
        if let Some(&archived) = wal.get(*name)
            && archived > *time
        {
            *time = archived;
            from_wal.insert(name, archived);
        }
    }
    limits
        .iter()
        .map(|(name, limit)| {
            let limit_seconds = limit.as_secs();
            let Some(time) = newest.get(name.as_str()).copied() else {
                return Freshness {
                    name: name.clone(),
                    newest: None,
                    age_seconds: None,
                    limit_seconds,
                    stale: true,
                    reason: "no snapshot at all".into(),
                };
            };
            let age = now.signed_duration_since(time).to_std().unwrap_or_default();
            let replica = snaps.iter().any(|s| {
                s.manifest().name == *name && s.manifest().metadata.get("replica").is_some()
            });
            let what = match (from_wal.contains_key(name.as_str()), replica) {
                (true, true) => "the replica's newest shipment (or its running replicator's lease)",
                (true, false) => "newest archived WAL",
                (false, _) => "newest",
            };
            let reason = format!(
                "{what} is {} old (limit {})",
                format_duration(Duration::from_secs(age.as_secs())),
                format_duration(*limit)
            );
            Freshness {
                name: name.clone(),
                newest: Some(time),
                age_seconds: Some(age.as_secs()),
                limit_seconds,
                stale: age > *limit,
                reason,
            }
        })
        .collect()
}
