//! Bearer tokens, compared in constant time, and the status page's session cookie.
//!
//! The cookie never holds a token: it holds an expiry and an HMAC-SHA256, keyed with the
//! token that signed in, of that expiry. Checking it recomputes the HMAC with every
//! configured token and compares in constant time, as a bearer token is compared. So a
//! cookie shows nothing of the token, cannot be used as a bearer token, ends at its expiry,
//! and ends at once when its token is removed from the configuration (restarts and reloads
//! keep it valid, since it is derived from the token and no server-side state).

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use lifeboat_core::Digest;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The name of the status page's session cookie.
pub const SESSION_COOKIE: &str = "lifeboat_session";
/// How long a session cookie is valid after signing in.
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
/// What the HMAC of a session covers besides its expiry, so that it is good for nothing else.
const SESSION_CONTEXT: &[u8] = b"lifeboatd status page session\0";

/// Whether `given` is one of `tokens`. Both sides are hashed first, so the comparison takes
/// the same time whatever the lengths, and every token is compared (no early exit), so the
/// time does not tell which one matched or how much of it.
pub fn token_matches(tokens: &[String], given: &str) -> bool {
    let given = Digest::of(given.as_bytes());
    tokens
        .iter()
        .fold(subtle::Choice::from(0), |found, t| {
            found | Digest::of(t.as_bytes()).0.ct_eq(&given.0)
        })
        .into()
}

/// The token of an `Authorization: Bearer TOKEN` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The HMAC-SHA256 of `parts`, one after the other, keyed with `key`: session cookies and
/// webhook signatures.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // An HMAC takes a key of any length, so this never fails; the fallback keeps it total.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn session_mac(token: &str, expires: i64) -> [u8; 32] {
    hmac_sha256(token.as_bytes(), &[SESSION_CONTEXT, expires.to_string().as_bytes()])
}

/// The value of a session cookie for `token`, valid until `expires`: `EXPIRY.HMAC` (Unix
/// seconds, hex), which holds nothing of the token.
pub fn session_for(token: &str, expires: DateTime<Utc>) -> String {
    let expires = expires.timestamp();
    format!("{expires}.{}", hex::encode(session_mac(token, expires)))
}

/// Whether `value` is a session cookie signed with one of `tokens` and not expired at `now`.
/// Every token is tried (no early exit) and compared in constant time, as
/// [`token_matches`] does.
pub fn session_matches(tokens: &[String], value: &str, now: DateTime<Utc>) -> bool {
    let Some((expires, mac)) = value.trim().split_once('.') else { return false };
    let (Ok(expires), Ok(mac)) = (expires.parse::<i64>(), hex::decode(mac)) else {
        return false;
    };
    if expires <= now.timestamp() || mac.len() != 32 {
        return false;
    }
    tokens
        .iter()
        .fold(subtle::Choice::from(0), |found, t| found | session_mac(t, expires).ct_eq(&mac[..]))
        .into()
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn matches_only_exact_tokens() {
        let tokens =
            vec!["first-token-0123456789".to_string(), "second-token-012345678".to_string()];
        assert!(token_matches(&tokens, "first-token-0123456789"));
        assert!(token_matches(&tokens, "second-token-012345678"));
        for wrong in
            ["", "first-token-012345678", "first-token-01234567890", "FIRST-TOKEN-0123456789"]
        {
            assert!(!token_matches(&tokens, wrong), "{wrong:?} accepted");
        }
        assert!(!token_matches(&[], "anything"));
    }

    #[test]
    fn sessions_hold_no_token_and_end_at_their_expiry_or_their_token() {
        let token = "first-token-0123456789".to_string();
        let other = "second-token-012345678".to_string();
        let now = Utc::now();
        let expires = now + chrono::Duration::hours(1);
        let value = session_for(&token, expires);
        assert!(!value.contains(&token) && !value.contains(&hex::encode(&token)), "{value}");
        assert!(session_matches(&[other.clone(), token.clone()], &value, now));
        assert!(!session_matches(std::slice::from_ref(&other), &value, now), "another token's");
        assert!(!session_matches(std::slice::from_ref(&token), &value, expires), "expired");
        // A forged expiry does not carry the signature over.
        let (_, mac) = value.split_once('.').unwrap();
        let later = format!("{}.{mac}", expires.timestamp() + 3600);
        assert!(!session_matches(std::slice::from_ref(&token), &later, now));
        for wrong in ["", ".", "abc", "1.2", &token, &format!("{}.zz", expires.timestamp())] {
            assert!(!session_matches(std::slice::from_ref(&token), wrong, now), "{wrong:?}");
        }
        assert!(!token_matches(std::slice::from_ref(&token), &value), "not a bearer token");
    }

    #[test]
    fn finds_cookies_by_name() {
        let header = "theme=dark; lifeboat_session=123.abc ;other=1";
        assert_eq!(cookie(header, SESSION_COOKIE), Some("123.abc"));
        assert_eq!(cookie(header, "other"), Some("1"));
        assert_eq!(cookie(header, "missing"), None);
        assert_eq!(cookie("lifeboat_session_x=1", SESSION_COOKIE), None);
    }

    #[test]
    fn parses_bearer_headers() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }
}
