//! Secrets from the environment, the way containers and systemd hand them over: a variable
//! `NAME` holds the secret itself, or `NAME_FILE` names a file holding it (one trailing line
//! end dropped), as `LIFEBOAT_PASSWORD` and `LIFEBOAT_PASSWORD_FILE` do.

/// The secret `name` names: `name`'s value when set and not blank, else the contents of the
/// file `name_FILE` names. `None` when neither is set; a file that cannot be read is an
/// error naming the variable and the file.
///
/// ```
/// let value = lifeboat_core::secret::from_env("LIFEBOAT_EXAMPLE_SECRET_NOT_SET").unwrap();
/// assert_eq!(value, None);
/// ```
///
/// # Errors
/// [`crate::Error::InvalidInput`] when `name_FILE` is set and its file cannot be read.
pub fn from_env(name: &str) -> crate::Result<Option<String>> {
    from(name, |var| std::env::var(var).ok())
}

/// [`from_env`] over any source of variables.
///
/// # Errors
/// As [`from_env`].
pub fn from(name: &str, var: impl Fn(&str) -> Option<String>) -> crate::Result<Option<String>> {
    if let Some(value) = var(name).filter(|v| !v.trim().is_empty()) {
        return Ok(Some(value));
    }
    let file_var = format!("{name}_FILE");
    let Some(path) = var(&file_var).filter(|v| !v.trim().is_empty()) else { return Ok(None) };
    let text = read_file(std::path::Path::new(&path)).map_err(|e| crate::Error::InvalidInput {
        what: format!("{file_var} names {path}, which cannot be read: {e}"),
        hint: format!("make the file readable by this user, or set {name} itself"),
    })?;
    Ok(Some(text))
}

/// A secret file's contents without its one trailing line end ([`without_line_end`]).
///
/// # Errors
/// The file cannot be read or is not UTF-8.
pub fn read_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut text = std::fs::read_to_string(path)?;
    let keep = without_line_end(&text).len();
    text.truncate(keep);
    Ok(text)
}

/// `text` without one trailing line end (`\n` or `\r\n`): what files and `echo` add after a
/// secret is not part of it.
///
/// ```
/// use lifeboat_core::secret::without_line_end;
/// assert_eq!(without_line_end("pw\r\n"), "pw");
/// assert_eq!(without_line_end("pw\n\n"), "pw\n");
/// assert_eq!(without_line_end("pw"), "pw");
/// ```
pub fn without_line_end(text: &str) -> &str {
    text.strip_suffix('\n').map_or(text, |t| t.strip_suffix('\r').unwrap_or(t))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_value_wins_then_the_file_with_one_line_end_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "s3cr3t\n\n").unwrap();
        let path = file.display().to_string();
        let env = |pairs: Vec<(&'static str, String)>| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
        };
        let both = env(vec![("K", "direct".into()), ("K_FILE", path.clone())]);
        assert_eq!(from("K", both).unwrap().as_deref(), Some("direct"));
        let file_only = env(vec![("K", " ".into()), ("K_FILE", path.clone())]);
        assert_eq!(from("K", file_only).unwrap().as_deref(), Some("s3cr3t\n"));
        assert_eq!(from("K", env(vec![])).unwrap(), None);
        let missing = env(vec![("K_FILE", "/nonexistent/secret".into())]);
        assert!(from("K", missing).unwrap_err().to_string().contains("K_FILE"));
    }
}
