//! Retention: which snapshots a policy keeps, and why. Pure logic: no store, no clock of its
//! own (`now` is passed in), so it can be tested exhaustively.
//!
//! A snapshot is kept when at least one rule keeps it, and every kept snapshot carries the
//! rules that kept it. Calendar buckets are in UTC:
//!
//! - `last`: the N newest;
//! - `hourly`/`daily`/`weekly`/`monthly`/`yearly`: the newest snapshot of each of the N newest
//!   hours / days / ISO weeks / months / years that have a snapshot (grandfather-father-son);
//! - `within`: everything taken within that duration before `now`;
//! - `tags`: everything carrying one of these tags (`key` or `key=value`);
//! - always, whatever the policy: a snapshot tagged `keep` is kept forever, or until the date
//!   in its value (`keep=2027-01-01`); one tagged `pre-restore` is kept for
//!   `pre_restore_days` (30 by default) after it was taken.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{PRE_RESTORE_TAG, SnapshotId, Tags, is_safety_snapshot};

/// Tag that keeps a snapshot forever, or until the date in its value.
pub const KEEP_TAG: &str = "keep";

/// Days a `pre-restore` safety snapshot is kept unless a policy says otherwise.
pub const DEFAULT_PRE_RESTORE_DAYS: u32 = 30;

/// What to keep of one group of snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Keep the N newest.
    pub last: u32,
    /// Keep the newest of each of the N newest hours.
    pub hourly: u32,
    /// Keep the newest of each of the N newest days.
    pub daily: u32,
    /// Keep the newest of each of the N newest ISO weeks.
    pub weekly: u32,
    /// Keep the newest of each of the N newest months.
    pub monthly: u32,
    /// Keep the newest of each of the N newest years.
    pub yearly: u32,
    /// Keep everything taken within this long before now.
    #[serde(with = "crate::duration::optional_text", skip_serializing_if = "Option::is_none")]
    pub within: Option<Duration>,
    /// Keep everything carrying one of these tags (`key` or `key=value`).
    pub tags: Vec<String>,
    /// Days a `pre-restore` safety snapshot is kept.
    pub pre_restore_days: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            last: 0,
            hourly: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
            yearly: 0,
            within: None,
            tags: Vec::new(),
            pre_restore_days: DEFAULT_PRE_RESTORE_DAYS,
        }
    }
}

impl RetentionPolicy {
    /// Whether the policy keeps anything by its own rules (besides `keep`/`pre-restore`).
    /// Applying an empty policy would remove every ordinary snapshot, which callers refuse.
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// The facts retention looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The snapshot.
    pub id: SnapshotId,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Its tags.
    pub tags: Tags,
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The snapshot.
    pub id: SnapshotId,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Whether it stays.
    pub keep: bool,
    /// Every rule that keeps it (empty when it goes).
    pub reasons: Vec<String>,
}

/// Applies `policy` to one group of snapshots; returns a decision per snapshot, newest first.
pub fn apply(
    policy: &RetentionPolicy,
    snapshots: &[Candidate],
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let mut order: Vec<&Candidate> = snapshots.iter().collect();
    order.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); order.len()];

    // Safety snapshots are not backups: they fill no "last" or calendar slot (one taken
    // after the last backup would otherwise push the real backup out), and are kept only
    // by their own rule below, or a tag.
    let slotted: Vec<usize> =
        (0..order.len()).filter(|&i| !is_safety_snapshot(&order[i].tags)).collect();
    for &i in slotted.iter().take(policy.last as usize) {
        reasons[i].push(format!("last {}", policy.last));
    }
    let buckets: [(&str, u32, BucketOf); 5] = [
        ("hourly", policy.hourly, |t| t.format("%Y-%m-%d %H:00").to_string()),
        ("daily", policy.daily, |t| t.format("%Y-%m-%d").to_string()),
        ("weekly", policy.weekly, |t| {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        }),
        ("monthly", policy.monthly, |t| t.format("%Y-%m").to_string()),
        ("yearly", policy.yearly, |t| t.format("%Y").to_string()),
    ];
    for (rule, count, bucket_of) in buckets {
        let mut kept = 0;
        let mut last_bucket: Option<String> = None;
        for &i in &slotted {
            if kept >= count {
                break;
            }
            let bucket = bucket_of(&order[i].time);
            if last_bucket.as_ref() != Some(&bucket) {
                reasons[i].push(format!("{rule} {bucket}"));
                kept += 1;
                last_bucket = Some(bucket);
            }
        }
    }
    for (i, snap) in order.iter().enumerate() {
        if let Some(within) = policy.within {
            let age = now.signed_duration_since(snap.time).to_std().unwrap_or_default();
            if age <= within {
                reasons[i].push(format!("within {}", crate::format_duration(within)));
            }
        }
        for tag in &policy.tags {
            if has_tag(&snap.tags, tag) {
                reasons[i].push(format!("tag {tag}"));
            }
        }
        if let Some(value) = snap.tags.get(KEEP_TAG) {
            match keep_until(value) {
                None => reasons[i].push("tag keep".into()),
                Some(until) if now <= until => {
                    reasons[i].push(format!("tag keep until {}", until.date_naive()))
                }
                Some(_) => {}
            }
        }
        if snap.tags.contains_key(PRE_RESTORE_TAG) {
            let until = snap.time + chrono::Duration::days(i64::from(policy.pre_restore_days));
            if now <= until {
                reasons[i].push(format!("pre-restore, kept until {}", until.date_naive()));
            }
        }
    }
    order
        .into_iter()
        .zip(reasons)
        .map(|(snap, reasons)| Decision {
            id: snap.id,
            time: snap.time,
            keep: !reasons.is_empty(),
            reasons,
        })
        .collect()
}

/// Names the calendar bucket (hour, day, week, ...) a time falls in.
type BucketOf = fn(&DateTime<Utc>) -> String;

/// Whether `tags` carries `tag` (`key`, or `key=value` for an exact value).
pub fn has_tag(tags: &Tags, tag: &str) -> bool {
    match tag.split_once('=') {
        Some((k, v)) => tags.get(k).is_some_and(|have| have == v),
        None => tags.contains_key(tag),
    }
}

/// The end of a `keep=<date>` tag; `None` for a plain `keep` (forever) or an unreadable date
/// (kept forever too: a typo must not delete a snapshot someone meant to keep).
fn keep_until(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| t.and_utc())
}

/// Policies for a whole repository: one by default, others by snapshot name or by tag (the
/// "tiers": `tier=free` keeps 7 days, `tier=pro` a year).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySet {
    /// The policy for snapshots no other entry matches.
    pub default: RetentionPolicy,
    /// Policies by snapshot name.
    pub names: BTreeMap<String, RetentionPolicy>,
    /// Policies by tag (`key=value` or `key`), tried in alphabetical order.
    pub tags: BTreeMap<String, RetentionPolicy>,
}

impl PolicySet {
    /// The entries that keep nothing (`default`, `name NAME`, `tag K=V`): applied, each
    /// would remove every ordinary snapshot it covers.
    pub fn empty_policies(&self) -> Vec<String> {
        std::iter::once(("default".to_string(), &self.default))
            .chain(self.names.iter().map(|(n, p)| (format!("name {n}"), p)))
            .chain(self.tags.iter().map(|(t, p)| (format!("tag {t}"), p)))
            .filter(|(_, p)| p.is_empty())
            .map(|(label, _)| label)
            .collect()
    }

    /// The policy for a snapshot, and a label saying which entry chose it.
    pub fn policy_for<'a>(&'a self, name: &str, tags: &Tags) -> (String, &'a RetentionPolicy) {
        if let Some(p) = self.names.get(name) {
            return (format!("name {name}"), p);
        }
        for (tag, p) in &self.tags {
            if has_tag(tags, tag) {
                return (format!("tag {tag}"), p);
            }
        }
        ("default".into(), &self.default)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::{TimeZone, Timelike};
    use proptest::prelude::*;

    use super::*;
    use crate::Digest;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).single().unwrap_or_default()
    }

    fn candidate(n: u32, time: DateTime<Utc>, tags: &[(&str, &str)]) -> Candidate {
        Candidate {
            id: Digest::of(&n.to_le_bytes()),
            time,
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn grandfather_father_son() {
        // One snapshot every 6 hours for 60 days.
        let snaps: Vec<Candidate> =
            (0..240).map(|i| candidate(i, at(i64::from(i) * 6 * 3600), &[])).collect();
        let now = at(240 * 6 * 3600);
        let policy =
            RetentionPolicy { last: 2, daily: 7, weekly: 4, monthly: 2, ..Default::default() };
        let decisions = apply(&policy, &snaps, now);
        let kept: Vec<&Decision> = decisions.iter().filter(|d| d.keep).collect();
        // 7 daily (the 2 last fall in the newest day), up to 4 weekly and 2 monthly, overlapping.
        assert!(kept.len() >= 7 && kept.len() <= 7 + 4 + 2 + 1, "{} kept", kept.len());
        assert_eq!(decisions[0].reasons[0], "last 2");
        assert!(decisions[0].reasons.iter().any(|r| r.starts_with("daily")));
        assert!(kept.iter().any(|d| d.reasons.iter().any(|r| r.starts_with("monthly"))));
    }

    #[test]
    fn special_tags_expire_by_their_own_rule() {
        let now = at(100 * 86_400);
        let snaps = vec![
            candidate(1, at(0), &[("keep", "")]),
            candidate(2, at(0), &[("keep", "2000-01-01")]),
            candidate(3, at(0), &[("keep", "2999-01-01")]),
            candidate(4, at(95 * 86_400), &[("pre-restore", "abc")]),
            candidate(5, at(10 * 86_400), &[("pre-restore", "abc")]),
            candidate(6, at(1), &[("tier", "pro")]),
        ];
        let policy = RetentionPolicy { tags: vec!["tier=pro".into()], ..Default::default() };
        let keep: BTreeSet<SnapshotId> =
            apply(&policy, &snaps, now).into_iter().filter(|d| d.keep).map(|d| d.id).collect();
        let expected: BTreeSet<SnapshotId> =
            [1u32, 3, 4, 6].iter().map(|n| Digest::of(&n.to_le_bytes())).collect();
        assert_eq!(keep, expected);
    }

    #[test]
    fn safety_snapshots_take_no_slot_from_backups() {
        // A backup, then a restore --force's safety snapshot a minute later.
        let backup = candidate(1, at(0), &[]);
        let older = candidate(2, at(-86_400), &[]);
        let safety = candidate(3, at(60), &[(PRE_RESTORE_TAG, "abc")]);
        let now = at(120);
        let policy = RetentionPolicy { last: 1, daily: 1, ..Default::default() };
        let decisions = apply(&policy, &[older, backup.clone(), safety.clone()], now);
        let kept: BTreeSet<SnapshotId> =
            decisions.iter().filter(|d| d.keep).map(|d| d.id).collect();
        assert!(kept.contains(&backup.id), "the real backup keeps its last-1 slot: {decisions:?}");
        let Some(safety_decision) = decisions.iter().find(|d| d.id == safety.id) else {
            panic!("no decision for the safety snapshot: {decisions:?}")
        };
        assert!(
            safety_decision.reasons.iter().all(|r| r.starts_with("pre-restore")),
            "only its own rule keeps a safety snapshot: {:?}",
            safety_decision.reasons
        );
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn policies_by_name_and_tag() {
        let free =
            RetentionPolicy { within: Some(Duration::from_secs(7 * 86_400)), ..Default::default() };
        let set = PolicySet {
            tags: [("tier=free".to_string(), free.clone())].into(),
            ..Default::default()
        };
        let tags: Tags = [("tier".to_string(), "free".to_string())].into();
        assert_eq!(set.policy_for("auth", &tags).1, &free);
        assert_eq!(set.policy_for("auth", &Tags::new()).0, "default");
    }

    fn arb_snapshots() -> impl Strategy<Value = Vec<Candidate>> {
        proptest::collection::vec((0i64..400 * 86_400, 0u8..8), 0..60).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (t, tag))| {
                    let tags: &[(&str, &str)] = match tag {
                        0 => &[("keep", "")],
                        1 => &[("pre-restore", "x")],
                        2 => &[("tier", "pro")],
                        _ => &[],
                    };
                    candidate(i as u32, at(t), tags)
                })
                .collect()
        })
    }

    fn arb_policy() -> impl Strategy<Value = RetentionPolicy> {
        (
            0u32..5,
            0u32..5,
            0u32..10,
            0u32..6,
            0u32..4,
            0u32..3,
            proptest::option::of(0u64..100),
            any::<bool>(),
        )
            .prop_map(|(last, hourly, daily, weekly, monthly, yearly, within, tag)| {
                RetentionPolicy {
                    last,
                    hourly,
                    daily,
                    weekly,
                    monthly,
                    yearly,
                    within: within.map(|d| Duration::from_secs(d * 86_400)),
                    tags: if tag { vec!["tier=pro".into()] } else { vec![] },
                    pre_restore_days: DEFAULT_PRE_RESTORE_DAYS,
                }
            })
    }

    /// An independent, naive statement of each rule: the set of snapshots it keeps.
    fn oracle(
        policy: &RetentionPolicy,
        snaps: &[Candidate],
        now: DateTime<Utc>,
    ) -> BTreeSet<SnapshotId> {
        let mut sorted: Vec<&Candidate> =
            snaps.iter().filter(|s| !s.tags.contains_key(PRE_RESTORE_TAG)).collect();
        sorted.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
        let mut keep = BTreeSet::new();
        keep.extend(sorted.iter().take(policy.last as usize).map(|s| s.id));
        type Key = fn(&DateTime<Utc>) -> (i32, u32, u32, u32);
        let rules: [(u32, Key); 5] = [
            (policy.hourly, |t| (t.year(), t.month(), t.day(), t.hour() + 1)),
            (policy.daily, |t| (t.year(), t.month(), t.day(), 0)),
            (policy.weekly, |t| (t.iso_week().year(), t.iso_week().week(), 0, 0)),
            (policy.monthly, |t| (t.year(), t.month(), 0, 0)),
            (policy.yearly, |t| (t.year(), 0, 0, 0)),
        ];
        for (count, key) in rules {
            // Newest snapshot of each bucket, then the `count` newest buckets.
            let mut newest: BTreeMap<(i32, u32, u32, u32), &Candidate> = BTreeMap::new();
            for s in &sorted {
                newest.entry(key(&s.time)).or_insert(s);
            }
            keep.extend(newest.values().rev().take(count as usize).map(|s| s.id));
        }
        for s in snaps {
            let age = now.signed_duration_since(s.time).to_std().unwrap_or_default();
            let within = policy.within.is_some_and(|w| age <= w);
            let tagged = policy.tags.iter().any(|t| has_tag(&s.tags, t));
            let keep_tag = s.tags.contains_key(KEEP_TAG);
            let pre = s.tags.contains_key(PRE_RESTORE_TAG)
                && now <= s.time + chrono::Duration::days(i64::from(policy.pre_restore_days));
            if within || tagged || keep_tag || pre {
                keep.insert(s.id);
            }
        }
        keep
    }

    proptest! {
        #[test]
        fn kept_iff_some_rule_keeps_it(policy in arb_policy(), snaps in arb_snapshots(), now_offset in 0i64..500 * 86_400) {
            let now = at(now_offset);
            let decisions = apply(&policy, &snaps, now);
            prop_assert_eq!(decisions.len(), snaps.len());
            for d in &decisions {
                prop_assert_eq!(d.keep, !d.reasons.is_empty());
            }
            let kept: BTreeSet<SnapshotId> = decisions.iter().filter(|d| d.keep).map(|d| d.id).collect();
            prop_assert_eq!(kept, oracle(&policy, &snaps, now));
        }

        #[test]
        fn applying_twice_removes_nothing_more(policy in arb_policy(), snaps in arb_snapshots(), now_offset in 0i64..500 * 86_400) {
            let now = at(now_offset);
            let kept: BTreeSet<SnapshotId> = apply(&policy, &snaps, now).into_iter().filter(|d| d.keep).map(|d| d.id).collect();
            let survivors: Vec<Candidate> = snaps.iter().filter(|s| kept.contains(&s.id)).cloned().collect();
            let again = apply(&policy, &survivors, now);
            prop_assert!(again.iter().all(|d| d.keep), "a second pass removed {:?}", again.iter().filter(|d| !d.keep).map(|d| d.id).collect::<Vec<_>>());
        }
    }
}
