//! `lifeboat-redis`: the standard `lifeboat` command line with one more backend, Redis.
//! `lifeboat-redis backup redis redis://127.0.0.1:6379`, then every usual command.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut registry = lifeboat::backends();
    if let Err(e) = registry.register(lifeboat_redis_example::RedisBackend) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    lifeboat_cli::run(registry)
}
