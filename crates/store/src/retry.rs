//! Retries with exponential backoff for transient store errors.

use std::future::Future;
use std::time::Duration;

use tracing::warn;

/// How many times an operation is tried before its error is returned.
const ATTEMPTS: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_millis(100);

/// Whether an error may go away by trying again. Answers that are final (not found, already
/// exists, precondition failed, access denied) are returned at once.
fn is_transient(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::NotFound { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::InvalidPath { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::UnknownConfigurationKey { .. } => false,
        // A full, read-only or forbidden local folder stays so: fail at once.
        other if crate::error::disk_problem(other).is_some() => false,
        other => {
            // Refusals no retry can fix, recognised by the status text: a bare "403" would
            // also match object keys, which are hex.
            let text = other.to_string();
            let refused =
                ["403 Forbidden", "status code: 403", "SignatureDoesNotMatch", "AccessDenied"]
                    .iter()
                    .any(|refusal| text.contains(refusal));
            !refused && !client_error(&text)
        }
    }
}

/// Whether `text` reports an HTTP 4xx answer (`status 400`, `status code: 404`) other than
/// 408 (timeout) and 429 (slow down): the request itself is wrong (a bad bucket name, a
/// malformed range), and sending it again gets the same answer.
fn client_error(text: &str) -> bool {
    ["status ", "status code: ", "status: "].iter().any(|marker| {
        text.match_indices(marker).any(|(at, _)| {
            let code = text[at + marker.len()..].get(..3).and_then(|c| c.parse::<u16>().ok());
            matches!(code, Some(400..=499)) && !matches!(code, Some(408 | 429))
        })
    })
}

/// Runs `op` until it succeeds, fails with a final error, or runs out of attempts.
pub async fn with_retries<T, F, Fut>(what: &str, mut op: F) -> Result<T, object_store::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, object_store::Error>>,
{
    let mut delay = FIRST_DELAY;
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                warn!(attempt, error = %e, "{what} failed; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(message: &str) -> object_store::Error {
        object_store::Error::Generic { store: "test", source: message.to_string().into() }
    }

    #[test]
    fn full_read_only_and_forbidden_disks_are_not_retried() {
        for errno in [28, 30, 13] {
            let io = std::io::Error::from_raw_os_error(errno);
            let e = object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(io) };
            assert!(!is_transient(&e), "errno {errno} retried");
            let err = crate::StoreError::object("put", "data/ab/abcd", e);
            assert!(matches!(err, crate::StoreError::LocalDisk { .. }), "errno {errno}: {err:?}");
            let hint = err.hint().unwrap_or_default();
            assert!(!hint.contains("network"), "errno {errno}: {hint}");
        }
        assert!(is_transient(&generic("connection reset")));
    }

    #[test]
    fn hex_keys_holding_403_are_still_retried() {
        assert!(is_transient(&generic("timeout on put locks/backups/242be1d0449de403afa16e31")));
        assert!(!is_transient(&generic("Server returned non-2xx status code: 403 Forbidden: ")));
        assert!(!is_transient(&generic("SignatureDoesNotMatch: check your key")));
    }

    #[test]
    fn client_errors_are_final_but_timeouts_and_slow_downs_are_retried() {
        let answer = |code: &str| {
            generic(&format!(
                "Error performing GET http://127.0.0.1:9000/b/config in 2ms - Client error with status {code}: <Error><Code>X</Code></Error>"
            ))
        };
        for code in ["400 Bad Request", "404 Not Found", "416 Range Not Satisfiable"] {
            assert!(!is_transient(&answer(code)), "{code} retried");
        }
        for code in [
            "408 Request Timeout",
            "429 Too Many Requests",
            "500 Internal Server Error",
            "503 Slow Down",
        ] {
            assert!(is_transient(&answer(code)), "{code} not retried");
        }
        assert!(!is_transient(&generic("Received non-2xx status code: 400 InvalidBucketName")));
        assert!(is_transient(&generic("timeout on get data/40/4000aa status")));
    }
}
