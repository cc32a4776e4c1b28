//! Human durations for policies and limits: `90s`, `15m`, `12h`, `30d`, `2w`, `1y`, `1d12h`,
//! and the longer forms people write: `90min`, `1 day`, `2h 30m`, `500ms`.

use std::time::Duration;

/// Parses a duration such as `30d`, `1d12h`, `90min` or `1 day` (short units: s, m, h, d,
/// w, y = 365 d; longer names and spaces as the `humantime` crate reads them).
///
/// ```
/// use lifeboat_core::parse_duration;
/// use std::time::Duration;
/// assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
/// assert_eq!(parse_duration("90min"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("1 day"), Ok(Duration::from_secs(86_400)));
/// assert_eq!(parse_duration("2h30m"), Ok(Duration::from_secs(9000)));
/// assert!(parse_duration("12").is_err());
/// ```
///
/// # Errors
/// A sentence saying what is wrong, for the user.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    compact(text).or_else(|e| {
        // `1y` stays 365 days: humantime's year is 365.25.
        humantime::parse_duration(text.trim())
            .ok()
            .filter(|d| !d.is_zero() || text.trim().starts_with('0'))
            .ok_or(e)
    })
}

/// The compact form: digits and one-letter units, `1d12h`.
fn compact(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{text:?} is not a duration (examples: 90s, 15m, 90min, 24h, 1 day, 30d, 2w, 1y, 1d12h)"
        )
    };
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            'y' => 365 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        number.clear();
        any = true;
    }
    if !number.is_empty() || !any {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration the way [`parse_duration`] reads it, largest units first.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return match d.as_millis() {
            0 => "0s".into(),
            ms => format!("{ms}ms"),
        };
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Serde for `Option<Duration>` as text such as `"30d"` (for `#[serde(with = ...)]`).
pub(crate) mod optional_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| super::parse_duration(&t).map_err(serde::de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("1y"), Ok(Duration::from_secs(365 * 86_400)));
        for bad in ["", "d", "5x", "1d2", "-1d", "99999999999999999999y"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(format_duration(Duration::from_secs(36 * 3600 + 61)), "1d12h1m1s");
        assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(
            parse_duration(&format_duration(Duration::from_secs(93_784))),
            Ok(Duration::from_secs(93_784))
        );
    }
}
