//! When jobs run: cron expressions as cron users write them (five fields, or six and seven
//! with seconds and years, `@daily` and its kin), or fixed intervals, in a time zone; and the
//! arithmetic of the next run, including the one catch-up run after downtime.
//!
//! The `cron` crate underneath numbers the days of the week from 1 (Sunday) to 7 (Saturday)
//! and requires both day fields to match. Cron users write 0 or 7 for Sunday and 1 for
//! Monday, and expect a job with both a day of the month and a day of the week restricted to
//! run on either (Vixie cron, cronie, systemd's cron users): so the day-of-week field is
//! translated here, and such an expression becomes two timetables whose earlier next time
//! wins. Read `0 2 * * 1` as "Monday at 02:00" everywhere in lifeboat.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The longest `every` interval accepted: past it, time arithmetic would overflow.
const LONGEST_INTERVAL: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A job's timetable.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron expression: `min hour day month weekday` (cron's five fields), with a leading
    /// seconds field (six), and a trailing year (seven); or `@hourly`, `@daily`, `@weekly`,
    /// `@monthly`, `@yearly`.
    Cron {
        /// The expression as written.
        text: String,
        /// The time zone its fields are read in.
        timezone: Tz,
        /// The parsed timetables: one, or two when both day fields are restricted (either
        /// may match, as in cron).
        cron: Vec<cron::Schedule>,
    },
    /// Every so long: `every 10s`, `every 6h`.
    Every(Duration),
}

/// The names cron accepts for the days of the week, Sunday first (0).
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A day of the week as cron users write it: 0 to 7 (0 and 7 Sunday) or a name.
fn weekday(text: &str) -> Option<u32> {
    if let Ok(n) = text.parse::<u32>() {
        return (n <= 7).then_some(n);
    }
    let lower = text.to_ascii_lowercase();
    let full = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
    (0u32..)
        .zip(DAY_NAMES.iter().zip(full))
        .find(|(_, (short, long))| lower == **short || lower == *long)
        .map(|(n, _)| n)
}

/// The days (0 = Sunday) a day-of-week field names, cron's way: lists, ranges, steps,
/// names, 7 for Sunday.
fn weekdays(field: &str) -> Result<BTreeSet<u32>, String> {
    let mut days = BTreeSet::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => match step.parse::<u32>() {
                Ok(step) if step > 0 => (range, step),
                _ => {
                    return Err(format!("day of week {item:?}: the step must be a number above 0"));
                }
            },
            None => (item, 1),
        };
        let bad = || {
            format!(
                "day of week {item:?} is not 0-7 (0 and 7 are Sunday, 1 is Monday) or a name \
                 such as MON, in a list, range or step"
            )
        };
        let (first, last) = match range {
            "*" | "?" => (0, 6),
            _ => match range.split_once('-') {
                Some((a, b)) => (weekday(a).ok_or_else(bad)?, weekday(b).ok_or_else(bad)?),
                // `5/2`: from Friday on, every second day, to the end of the week.
                None if item.contains('/') => (weekday(range).ok_or_else(bad)?, 7),
                None => {
                    let day = weekday(range).ok_or_else(bad)?;
                    (day, day)
                }
            },
        };
        if first > last {
            return Err(format!(
                "day of week {item:?}: a range goes from the smaller day to the larger (0-7, Sunday to Sunday)"
            ));
        }
        days.extend((first..=last).step_by(step as usize).map(|d| d % 7));
    }
    Ok(days)
}

/// Whether a day field leaves the day open (cron's rule: it starts with `*`, or is `?`).
fn open_day(field: &str) -> bool {
    field.starts_with('*') || field == "?"
}

/// `@daily` and its kin as the five fields they stand for.
fn shorthand(text: &str) -> Result<&'static str, String> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@reboot" => {
            return Err(
                "@reboot is not a schedule lifeboatd keeps: a run missed while it was down is made up once at start".into(),
            );
        }
        _ => {
            return Err(format!(
                "{text:?} is not one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly"
            ));
        }
    })
}

/// The `cron` crate's expressions for the cron fields of `text`: one, or two when both day
/// fields are restricted.
fn crate_expressions(text: &str) -> Result<Vec<String>, String> {
    let five;
    let text = if text.starts_with('@') {
        five = shorthand(text)?;
        five
    } else {
        text
    };
    let mut fields: Vec<&str> = text.split_whitespace().collect();
    match fields.len() {
        5 => fields.insert(0, "0"),
        6 | 7 => {}
        _ => {
            return Err(format!(
                "{text:?} is neither \"every DURATION\" nor a cron expression: five fields \
                 (minute hour day month weekday, such as \"*/5 * * * *\"), six with seconds \
                 first, seven with a year last, or @hourly, @daily, @weekly, @monthly"
            ));
        }
    }
    let (dom, dow) = (fields[3], fields[5]);
    let days: Vec<String> = weekdays(dow)?.iter().map(|d| (d + 1).to_string()).collect();
    let days = days.join(",");
    let with = |dom: &str, dow: &str| {
        let mut f: Vec<&str> = fields.clone();
        f[3] = dom;
        f[5] = dow;
        f.join(" ")
    };
    Ok(if open_day(dom) || open_day(dow) {
        // An open day field: both must match, as in cron (where `*/2` is open yet names
        // every second day).
        let dow = if matches!(dow, "*" | "?") { "*" } else { days.as_str() };
        vec![with(dom, dow)]
    } else {
        vec![with(dom, "*"), with("*", &days)]
    })
}

/// A time zone by its IANA name (`UTC`, `Europe/Berlin`).
///
/// # Errors
/// A sentence for the user, with the name in the right case when only the case was wrong.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    if let Ok(tz) = name.trim().parse::<Tz>() {
        return Ok(tz);
    }
    let lower = name.trim().to_ascii_lowercase();
    let hint = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().to_ascii_lowercase() == lower)
        .map(|tz| format!(" (did you mean {:?}?)", tz.name()))
        .unwrap_or_default();
    Err(format!(
        "{name:?} is not a time zone of the IANA database, such as \"UTC\" or \"Europe/Berlin\"{hint}"
    ))
}

impl Schedule {
    /// Parses `every DURATION` or a cron expression read in `timezone` (see the module's
    /// documentation for the fields).
    ///
    /// # Errors
    /// A sentence for the user saying what is wrong.
    pub fn parse(text: &str, timezone: Tz) -> Result<Self, String> {
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
        let cron = crate_expressions(trimmed)?
            .iter()
            .map(|expr| cron::Schedule::from_str(expr))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{text:?} is not a valid cron expression: {e}"))?;
        let schedule = Schedule::Cron { text: trimmed.to_string(), timezone, cron };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(format!("{text:?} never fires again"));
        }
        Ok(schedule)
    }

    /// The time zone a cron expression is read in; intervals have none.
    pub fn timezone(&self) -> Option<Tz> {
        match self {
            Schedule::Cron { timezone, .. } => Some(*timezone),
            Schedule::Every(_) => None,
        }
    }

    /// The first time strictly after `t` the job is due; `None` when it never is again.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, timezone, .. } => {
                let local = t.with_timezone(timezone);
                cron.iter()
                    .filter_map(|c| c.after(&local).next())
                    .min()
                    .map(|next| next.with_timezone(&Utc))
            }
            Schedule::Every(every) => {
                chrono::Duration::from_std(*every).ok().and_then(|d| t.checked_add_signed(d))
            }
        }
    }

    /// The usual time between two runs (for a cron expression: between its next two).
    pub fn period(&self, now: DateTime<Utc>) -> Duration {
        match self {
            Schedule::Every(every) => *every,
            Schedule::Cron { .. } => {
                let first = self.next_after(now);
                match (first, first.and_then(|a| self.next_after(a))) {
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

    fn utc(text: &str) -> Schedule {
        Schedule::parse(text, Tz::UTC).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// The next `n` times after `from`.
    fn next_n(s: &Schedule, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        let mut t = at(from);
        (0..n)
            .map(|_| {
                t = s.next_after(t).unwrap();
                t
            })
            .collect()
    }

    // 2026-01-05 is a Monday.
    #[test]
    fn five_fields_mean_what_cron_users_expect() {
        let every_five = utc("*/5 * * * *");
        assert_eq!(
            next_n(&every_five, "2026-01-05T10:02:30Z", 3),
            [at("2026-01-05T10:05:00Z"), at("2026-01-05T10:10:00Z"), at("2026-01-05T10:15:00Z")]
        );
        // 1 is Monday, 0 and 7 are Sunday, 1-5 the working week; names too.
        let monday = utc("0 2 * * 1");
        assert_eq!(monday.next_after(at("2026-01-01T00:00:00Z")), Some(at("2026-01-05T02:00:00Z")));
        for sunday in ["0 2 * * 0", "0 2 * * 7", "0 2 * * SUN", "0 2 * * sunday"] {
            assert_eq!(
                utc(sunday).next_after(at("2026-01-05T00:00:00Z")),
                Some(at("2026-01-11T02:00:00Z")),
                "{sunday}"
            );
        }
        let weekdays = utc("30 6 * * 1-5");
        let days: Vec<String> = next_n(&weekdays, "2026-01-03T00:00:00Z", 6)
            .iter()
            .map(|t| t.format("%a %H:%M").to_string())
            .collect();
        assert_eq!(
            days,
            ["Mon 06:30", "Tue 06:30", "Wed 06:30", "Thu 06:30", "Fri 06:30", "Mon 06:30"]
        );
        let weekend = utc("0 0 * * 6-7");
        assert_eq!(
            next_n(&weekend, "2026-01-05T00:00:00Z", 2),
            [at("2026-01-10T00:00:00Z"), at("2026-01-11T00:00:00Z")]
        );
        let mon_wed_fri = utc("0 0 * * 1-5/2");
        assert_eq!(
            next_n(&mon_wed_fri, "2026-01-04T12:00:00Z", 3),
            [at("2026-01-05T00:00:00Z"), at("2026-01-07T00:00:00Z"), at("2026-01-09T00:00:00Z")]
        );
        // Both day fields restricted: either matches (the 1st, and every Monday).
        let either = utc("0 3 1 * 1");
        assert_eq!(
            next_n(&either, "2026-01-01T04:00:00Z", 3),
            [at("2026-01-05T03:00:00Z"), at("2026-01-12T03:00:00Z"), at("2026-01-19T03:00:00Z")]
        );
        assert_eq!(either.next_after(at("2026-01-26T04:00:00Z")), Some(at("2026-02-01T03:00:00Z")));
        assert_eq!(
            utc("0 0 13 * 5").next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-02T00:00:00Z")),
            "restricted on both: the 13th or a Friday"
        );
        // The day of the month alone.
        assert_eq!(
            utc("0 0 */10 * *").next_after(at("2026-01-02T00:00:00Z")),
            Some(at("2026-01-11T00:00:00Z"))
        );
    }

    #[test]
    fn six_and_seven_fields_add_seconds_and_a_year() {
        let s = utc("30 0 2 * * 1");
        assert_eq!(s.next_after(at("2026-01-01T00:00:00Z")), Some(at("2026-01-05T02:00:30Z")));
        let once = utc("0 0 12 1 6 * 2030");
        assert_eq!(once.next_after(at("2026-01-01T00:00:00Z")), Some(at("2030-06-01T12:00:00Z")));
        assert_eq!(once.next_after(at("2030-06-01T12:00:00Z")), None);
    }

    #[test]
    fn shorthands() {
        let from = "2026-01-05T10:20:00Z";
        for (text, next) in [
            ("@hourly", "2026-01-05T11:00:00Z"),
            ("@daily", "2026-01-06T00:00:00Z"),
            ("@midnight", "2026-01-06T00:00:00Z"),
            ("@weekly", "2026-01-11T00:00:00Z"),
            ("@monthly", "2026-02-01T00:00:00Z"),
            ("@yearly", "2027-01-01T00:00:00Z"),
        ] {
            assert_eq!(utc(text).next_after(at(from)), Some(at(next)), "{text}");
        }
        assert_eq!(utc("@daily").period(at(from)), Duration::from_secs(86_400));
        let e = Schedule::parse("@reboot", Tz::UTC).unwrap_err();
        assert!(e.contains("missed"), "{e}");
        let e = Schedule::parse("@fortnightly", Tz::UTC).unwrap_err();
        assert!(e.contains("@daily"), "{e}");
    }

    #[test]
    fn time_zones() {
        let berlin = parse_timezone("Europe/Berlin").unwrap();
        let nightly = Schedule::parse("0 2 * * *", berlin).unwrap();
        // CET is UTC+1 in winter, CEST UTC+2 in summer.
        assert_eq!(
            nightly.next_after(at("2026-01-05T12:00:00Z")),
            Some(at("2026-01-06T01:00:00Z"))
        );
        assert_eq!(
            nightly.next_after(at("2026-07-01T12:00:00Z")),
            Some(at("2026-07-02T00:00:00Z"))
        );
        assert_eq!(nightly.timezone(), Some(berlin));
        // Monday in Berlin starts on Sunday evening in UTC.
        let monday = Schedule::parse("30 0 * * 1", berlin).unwrap();
        assert_eq!(monday.next_after(at("2026-01-01T00:00:00Z")), Some(at("2026-01-04T23:30:00Z")));
        // The night clocks go forward, 02:30 does not exist in Berlin: skipped. The night
        // they go back it happens twice: run once.
        let half_past_two = Schedule::parse("30 2 * * *", berlin).unwrap();
        assert_eq!(
            next_n(&half_past_two, "2026-03-28T12:00:00Z", 2),
            [at("2026-03-30T00:30:00Z"), at("2026-03-31T00:30:00Z")]
        );
        assert_eq!(
            next_n(&half_past_two, "2026-10-24T12:00:00Z", 2),
            [at("2026-10-25T00:30:00Z"), at("2026-10-26T01:30:00Z")]
        );
        // Intervals ignore the zone.
        assert_eq!(Schedule::parse("every 1h", berlin).unwrap().timezone(), None);
        let e = parse_timezone("europe/berlin").unwrap_err();
        assert!(e.contains("did you mean \"Europe/Berlin\""), "{e}");
        assert!(parse_timezone("Mars/Olympus").unwrap_err().contains("IANA"));
    }

    #[test]
    fn bad_weekdays_are_explained() {
        for bad in ["0 0 * * 8", "0 0 * * 5-1", "0 0 * * MOO", "0 0 * * 1/0"] {
            let e = Schedule::parse(bad, Tz::UTC).unwrap_err();
            assert!(e.contains("day of week"), "{bad}: {e}");
        }
    }

    #[test]
    fn cron_with_seconds_and_five_fields() {
        let s = utc("*/5 * * * * *");
        assert_eq!(s.next_after(at("2026-01-01T00:00:01Z")), Some(at("2026-01-01T00:00:05Z")));
        assert_eq!(s.period(at("2026-01-01T00:00:01Z")), Duration::from_secs(5));
        let hourly = utc("15 * * * *");
        assert_eq!(hourly.next_after(at("2026-01-01T00:20:00Z")), Some(at("2026-01-01T01:15:00Z")));
    }

    #[test]
    fn intervals() {
        let s = utc("every 10s");
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
            assert!(Schedule::parse(bad, Tz::UTC).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn catches_up_once_after_downtime() {
        let hourly = utc("0 0 * * * *");
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
        let every = utc("every 10m");
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
