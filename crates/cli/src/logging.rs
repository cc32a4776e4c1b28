//! Logging for both binaries: to stderr, `LIFEBOAT_LOG` overriding the level, and the
//! Docker client's debug logs (which print containers' env values) off at any level.

/// Starts logging at `default` (`warn`, `info`, `debug`, ...) unless `LIFEBOAT_LOG` says
/// otherwise.
pub fn init(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let filter = match lifeboat_container::LOG_DIRECTIVE.parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
