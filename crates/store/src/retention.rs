//! A retention policy set applied to a repository: snapshots grouped by name, host and
//! policy, each group judged on its own, the ones no rule keeps forgotten.

use std::collections::BTreeMap;

use crate::{Repository, StoredSnapshot};
use chrono::{DateTime, Utc};
use lifeboat_core::SnapshotId;
use lifeboat_core::retention::{Candidate, Decision, PolicySet, RetentionPolicy, apply};
use serde::Serialize;

/// The verdicts for one name of one kind on one host under one policy.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Snapshot kind: snapshots of two kinds that share a name are judged apart, so keeping
    /// one kind's never deletes the other's.
    pub kind: lifeboat_core::Kind,
    /// Snapshot name.
    pub name: String,
    /// Host that took them.
    pub host: String,
    /// Which policy applied (`default`, `name NAME`, `tag K=V`).
    pub policy: String,
    /// One decision per snapshot, newest first.
    pub decisions: Vec<Decision>,
}

/// Judges every snapshot (of `name`, when given) under `policies`, as of `now`.
pub fn judge(
    snapshots: &[StoredSnapshot],
    name: Option<&str>,
    policies: &PolicySet,
    now: DateTime<Utc>,
) -> Vec<Group> {
    type Key = (String, lifeboat_core::Kind, String, String);
    let mut groups: BTreeMap<Key, (RetentionPolicy, Vec<Candidate>)> = BTreeMap::new();
    for snap in snapshots {
        let m = snap.manifest();
        if name.is_some_and(|n| m.name != n) {
            continue;
        }
        let (label, policy) = policies.policy_for(&m.name, &m.tags);
        let candidate = Candidate { id: snap.id(), time: m.time, tags: m.tags.clone() };
        let key = (m.name.clone(), m.kind.clone(), m.host.clone(), label);
        groups.entry(key).or_insert_with(|| (policy.clone(), Vec::new())).1.push(candidate);
    }
    groups
        .into_iter()
        .map(|((name, kind, host, policy), (rules, candidates))| Group {
            kind,
            name,
            host,
            policy,
            decisions: apply(&rules, &candidates, now),
        })
        .collect()
}

/// The snapshots the groups remove.
pub fn removals(groups: &[Group]) -> Vec<SnapshotId> {
    groups.iter().flat_map(|g| &g.decisions).filter(|d| !d.keep).map(|d| d.id).collect()
}

/// Judges the repository's snapshots and, unless `dry_run`, forgets the ones no rule keeps.
/// Their data goes with the next prune.
///
/// # Errors
/// Store errors listing or deleting manifests.
pub async fn forget(
    repo: &Repository,
    name: Option<&str>,
    policies: &PolicySet,
    dry_run: bool,
) -> crate::Result<Vec<Group>> {
    let empty = policies.empty_policies();
    if !empty.is_empty() {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!(
                "these retention policies keep nothing and would remove every snapshot they \
                 apply to: {}",
                empty.join(", ")
            ),
            hint: "give each policy at least one rule (last, daily, within, ...)".into(),
        }
        .into());
    }
    let snapshots = repo.snapshots().await?;
    let groups = judge(&snapshots, name, policies, Utc::now());
    if !dry_run {
        let removed = removals(&groups);
        repo.forget(&removed).await?;
        // The WAL only the forgotten base backups needed goes with them.
        repo.forget_unneeded_wal(&snapshots, &removed).await?;
        // So do the replica segments only forgotten bases could be restored with.
        repo.forget_unneeded_segments(&snapshots, &removed).await?;
    }
    Ok(groups)
}
