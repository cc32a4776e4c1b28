//! A throwaway PostgreSQL cluster per test: `initdb` + `pg_ctl` on a free port with its
//! socket in a temporary folder. When the tests run as root (as CI does), the server runs as
//! the unprivileged `postgres` user, which PostgreSQL requires.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The superuser's password in every test cluster.
pub const PASSWORD: &str = "lifeboat-test-secret";

/// A running PostgreSQL cluster, stopped and deleted on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    as_postgres: bool,
}

/// The folder with the server binaries (`initdb`, `pg_ctl`, `pg_dump`, ...).
///
/// # Panics
/// When no PostgreSQL server is installed, saying how to install one.
pub fn pg_bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql: apt-get install postgresql (the test command does this)")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PgCluster {
    /// Initialises and starts a cluster with password authentication over TCP.
    ///
    /// # Panics
    /// When PostgreSQL is missing or does not start, with its log.
    pub fn start() -> PgCluster {
        Self::start_with(&[])
    }

    /// As [`PgCluster::start`], with server settings (`("archive_mode", "on")`) given on
    /// the command line.
    ///
    /// # Panics
    /// As [`PgCluster::start`].
    pub fn start_with(settings: &[(&str, &str)]) -> PgCluster {
        let bindir = pg_bindir();
        let dir = tempfile::Builder::new().prefix("lifeboat-pg-").tempdir().unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "could not hand the cluster folder to the postgres user");
        }
        let cluster = PgCluster { port: crate::free_port(), bindir, dir, as_postgres };
        let pwfile = cluster.dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if as_postgres {
            Command::new("chown").args(["postgres:postgres"]).arg(&pwfile).status().unwrap();
        }
        let data = cluster.data_dir();
        cluster.run_checked(
            &cluster.bin("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            cluster.port,
            cluster.dir.path().display()
        );
        for (key, value) in settings {
            options.push_str(&format!(" -c {key}={}", shell_word(value)));
        }
        let log = cluster.dir.path().join("server.log");
        let out = cluster.run(
            &cluster.bin("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        if !out.status.success() {
            panic!(
                "PostgreSQL did not start: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        cluster
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Whether its programs run as the `postgres` user (the tests run as root).
    pub fn runs_as_postgres(&self) -> bool {
        self.as_postgres
    }

    /// A server binary's path.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// `program` as the user the server runs as.
    pub fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn run(&self, program: &Path, args: &[&str]) -> Output {
        self.command(program).args(args).current_dir(self.dir.path()).output().unwrap()
    }

    fn run_checked(&self, program: &Path, args: &[&str]) -> Output {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The URL of database `db` as the superuser, with its password.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with psql and returns its unaligned, tuples-only output.
    ///
    /// # Panics
    /// When psql fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", &self.url(db), "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql failed on {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs pgbench against `db` with `args`.
    ///
    /// # Panics
    /// When pgbench fails.
    pub fn pgbench(&self, db: &str, args: &[&str]) {
        let out = Command::new(self.bin("pgbench")).args(args).arg(self.url(db)).output().unwrap();
        assert!(out.status.success(), "pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// `value` as one word for pg_ctl's `-o`, which a shell splits.
fn shell_word(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run(
            &self.bin("pg_ctl"),
            &["-D", data.to_str().unwrap_or(""), "-m", "immediate", "-w", "stop"],
        );
    }
}
