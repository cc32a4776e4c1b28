//! When jobs run: cron expressions with seconds, or fixed intervals, and the arithmetic of
//! the next run, including the one catch-up run after downtime.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The longest `every` interval accepted: past it, time arithmetic would overflow.
const LONGEST_INTERVAL: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A job's timetable.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron expression: `sec min hour day month weekday [year]`; five fields mean minute
    /// precision (seconds = 0).
    Cron {
        /// The expression as written.
        text: String,
        /// The parsed expression.
        cron: Box<cron::Schedule>,
    },
    /// Every so long: `every 10s`, `every 6h`.
    Every(Duration),
}

impl Schedule {
    /// Parses `every DURATION` or a cron expression.
    ///
    /// # Errors
    /// A sentence for the user saying what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if let Some(rest) = trimmed.strip_prefix("every") {
            let every = lifeboat_core::parse_duration(rest.trim())
                .map_err(|e| format!("{text:?}: after \"every\", {e}"))?;
            if every.is_zero() {
                return Err("the interval must be longer than 0s".into());
            }
            if every > LONGEST_INTERVAL {
                return Err(format!("{text:?}: the interval must be at most 100y"));
            }
            return Ok(Schedule::Every(every));
        }
        let fields = trimmed.split_whitespace().count();
        let expr = match fields {
            5 => format!("0 {trimmed}"),
            6 | 7 => trimmed.to_string(),
            _ => {
                return Err(format!(
                    "{text:?} is neither \"every DURATION\" nor a cron expression (5 to 7 fields, e.g. \"*/5 * * * * *\" for every 5 seconds)"
                ));
            }
        };
        let cron = cron::Schedule::from_str(&expr)
            .map_err(|e| format!("{text:?} is not a valid cron expression: {e}"))?;
        if cron.after(&Utc::now()).next().is_none() {
            return Err(format!("{text:?} never fires again"));
        }
        Ok(Schedule::Cron { text: trimmed.to_string(), cron: Box::new(cron) })
    }

    /// The first time strictly after `t` the job is due; `None` when it never is again.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, .. } => cron.after(&t).next(),
            Schedule::Every(every) => {
                chrono::Duration::from_std(*every).ok().and_then(|d| t.checked_add_signed(d))
            }
        }
    }

    /// The usual time between two runs (for a cron expression: between its next two).
    pub fn period(&self, now: DateTime<Utc>) -> Duration {
        match self {
            Schedule::Every(every) => *every,
            Schedule::Cron { cron, .. } => {
                let mut upcoming = cron.after(&now);
                match (upcoming.next(), upcoming.next()) {
                    (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
                    _ => Duration::ZERO,
                }
            }
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Cron { text, .. } => f.write_str(text),
            Schedule::Every(d) => write!(f, "every {}", lifeboat_core::format_duration(*d)),
        }
    }
}

/// When a job is next due, given when it last ran (from the run catalog) and now.
///
/// A slot missed while the service was down is made up once, right away, however many
/// slots were missed; after that the timetable continues from now. A job that never ran
/// waits for its first slot.
pub fn first_due(
    schedule: &Schedule,
    last_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match last_run.map(|last| schedule.next_after(last)) {
        Some(Some(due)) if due <= now => Some(now),
        Some(due) => due,
        None => schedule.next_after(now),
    }
}

/// A random delay in `[0, jitter]`, so jobs on the same timetable do not start together.
pub fn jitter_delay(jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return Duration::ZERO;
    }
    let millis = jitter.as_millis().min(u128::from(u64::MAX)) as u64;
    Duration::from_millis(rand::random_range(0..=millis))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cron_with_seconds_and_five_fields() {
        let s = Schedule::parse("*/5 * * * * *").unwrap();
        assert_eq!(s.next_after(at("2026-01-01T00:00:01Z")), Some(at("2026-01-01T00:00:05Z")));
        assert_eq!(s.period(at("2026-01-01T00:00:01Z")), Duration::from_secs(5));
        let hourly = Schedule::parse("15 * * * *").unwrap();
        assert_eq!(hourly.next_after(at("2026-01-01T00:20:00Z")), Some(at("2026-01-01T01:15:00Z")));
    }

    #[test]
    fn intervals() {
        let s = Schedule::parse("every 10s").unwrap();
        assert_eq!(s.next_after(at("2026-01-01T00:00:00Z")), Some(at("2026-01-01T00:00:10Z")));
        assert_eq!(s.to_string(), "every 10s");
        for bad in [
            "every",
            "every 0s",
            "every ten",
            "every 300000y",
            "every 18446744073709551615s",
            "* *",
            "61 * * * * *",
            "nonsense",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn catches_up_once_after_downtime() {
        let hourly = Schedule::parse("0 0 * * * *").unwrap();
        let now = at("2026-01-02T10:30:00Z");
        // Down for a day: 24 slots missed, one run now.
        assert_eq!(first_due(&hourly, Some(at("2026-01-01T10:00:00Z")), now), Some(now));
        // After that run the timetable continues from now, not from the missed slots.
        assert_eq!(hourly.next_after(now), Some(at("2026-01-02T11:00:00Z")));
        // Nothing missed: the next slot.
        assert_eq!(
            first_due(&hourly, Some(at("2026-01-02T10:00:00Z")), now),
            Some(at("2026-01-02T11:00:00Z"))
        );
        // Never ran: no catch-up, the first slot.
        assert_eq!(first_due(&hourly, None, now), Some(at("2026-01-02T11:00:00Z")));
        let every = Schedule::parse("every 10m").unwrap();
        assert_eq!(first_due(&every, Some(at("2026-01-02T10:19:00Z")), now), Some(now));
        assert_eq!(
            first_due(&every, Some(at("2026-01-02T10:25:00Z")), now),
            Some(at("2026-01-02T10:35:00Z"))
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        assert_eq!(jitter_delay(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter_delay(Duration::from_secs(3)) <= Duration::from_secs(3));
        }
    }
}
