//! Bearer tokens, compared in constant time.

use lifeboat_core::Digest;
use subtle::ConstantTimeEq;

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

#[cfg(test)]
mod tests {
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
    fn parses_bearer_headers() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }
}
