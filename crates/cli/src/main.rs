//! `lifeboat`: back up, verify and restore databases, containers and folders into a
//! deduplicated repository, with the built-in backends this build has.

fn main() -> std::process::ExitCode {
    lifeboat_cli::run(lifeboat::backends())
}
