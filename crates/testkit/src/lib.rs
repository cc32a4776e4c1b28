//! Shared fixtures for lifeboat's tests. Every fixture starts or uses the real component and
//! fails with a message naming what is missing and how to get it; none of them skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStore;

mod docker;
mod faulty;
mod policy;
mod postgres;
pub use docker::{DockerCleanup, TEST_IMAGE, docker, docker_engine, docker_quiet, unique_name};
pub use faulty::FaultyStore;
use object_store::aws::AmazonS3Builder;
pub use policy::WriteOnlyPolicy;
pub use postgres::{PASSWORD as PG_PASSWORD, PgCluster, pg_bindir};

/// A real S3-compatible server (`s3s-fs`) on 127.0.0.1, with one bucket, stopped on drop.
pub struct S3Server {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// The bucket the harness created.
    pub bucket: String,
    /// Access key it accepts.
    pub access_key: String,
    /// Secret key it accepts.
    pub secret_key: String,
    root: tempfile::TempDir,
}

/// Finds a program on PATH or in `~/.cargo/bin`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl S3Server {
    /// Starts `s3s-fs` on a free port with fresh credentials and a bucket.
    ///
    /// # Panics
    /// When `s3s-fs` is not installed or does not start: the message says how to install it.
    pub fn start() -> S3Server {
        let bin = find_program("s3s-fs").unwrap_or_else(|| {
            panic!(
                "the S3 test server s3s-fs is not installed: run \
                 `cargo install s3s-fs@0.14.1 --locked --features binary` (the test command \
                 .ci/run does this)"
            )
        });
        let root = tempfile::tempdir().unwrap();
        let bucket = "lifeboat-test".to_string();
        std::fs::create_dir(root.path().join(&bucket)).unwrap();
        let access_key = format!("AK{}", rand::random::<u32>());
        let secret_key = format!("SK{}", rand::random::<u64>());
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", &access_key, "--secret-key", &secret_key])
                .arg(root.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    return S3Server { child, port, bucket, access_key, secret_key, root };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("s3s-fs did not start listening on 127.0.0.1 within 30 s (5 attempts)");
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A repository URL in this server's bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The environment a lifeboat process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
        ]
    }

    /// An object store on this server's bucket, configured without the environment.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_bucket_name(&self.bucket)
                .with_access_key_id(&self.access_key)
                .with_secret_access_key(&self.secret_key)
                .build()
                .unwrap(),
        )
    }

    /// Where the server keeps its objects on disk (to corrupt them on purpose).
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join(&self.bucket)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a SQLite database at `path` of roughly `mib` MiB of text-heavy rows in WAL mode,
/// with an index and a second table; returns the number of rows in `events`.
pub fn make_sqlite_db(path: &Path, mib: usize) -> u64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS events_at ON events(at);
         CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, name TEXT UNIQUE, email TEXT);
         PRAGMA user_version = 7;",
    )
    .unwrap();
    let rows = (mib as u64 * 1024 * 1024) / 600;
    insert_events(&conn, rows);
    conn.execute_batch(
        "INSERT OR IGNORE INTO users(name, email) SELECT 'user' || value, 'user' || value || '@example.com' FROM generate_series(1, 500);",
    )
    .or_else(|_| {
        let tx = conn.unchecked_transaction()?;
        for i in 1..=500 {
            tx.execute(
                "INSERT OR IGNORE INTO users(name, email) VALUES (?1, ?2)",
                (format!("user{i}"), format!("user{i}@example.com")),
            )?;
        }
        tx.commit()
    })
    .unwrap();
    count(&conn, "events")
}

/// Appends `rows` realistic event rows in one transaction.
pub fn insert_events(conn: &rusqlite::Connection, rows: u64) {
    const WORDS: &[&str] = &[
        "invoice",
        "customer",
        "payment",
        "shipped",
        "refund",
        "order",
        "account",
        "session",
        "login",
        "failed",
        "retry",
        "webhook",
        "delivered",
        "pending",
        "archived",
        "quota",
        "tenant",
        "billing",
        "credit",
        "audit",
        "export",
        "import",
        "backup",
        "restore",
    ];
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut stmt =
            tx.prepare("INSERT INTO events(at, kind, body) VALUES (?1, ?2, ?3)").unwrap();
        let mut x: u64 = rand::random::<u64>() | 1;
        for i in 0..rows {
            let mut body = String::with_capacity(560);
            while body.len() < 520 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                body.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
                body.push(' ');
                if x.is_multiple_of(7) {
                    body.push_str(&(x % 100_000).to_string());
                    body.push(' ');
                }
            }
            let at = format!("2026-01-01T00:00:{:010}Z", i);
            stmt.execute((at, WORDS[(x % 5) as usize], body)).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// `SELECT count(*)` of a table.
pub fn count(conn: &rusqlite::Connection, table: &str) -> u64 {
    conn.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

/// Runs the `sqlite3` tool's `PRAGMA integrity_check` on `path` and returns its output.
///
/// # Panics
/// When the `sqlite3` tool is not installed.
pub fn sqlite3_integrity_check(path: &Path) -> String {
    let out =
        Command::new("sqlite3").arg(path).arg("PRAGMA integrity_check;").output().unwrap_or_else(
            |e| panic!("the sqlite3 tool is needed (apt-get install sqlite3): {e}"),
        );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Deterministic pseudo-random bytes (xorshift), incompressible, for store tests.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An object store under test, with whatever keeps it alive (a folder, a server).
pub struct TestStore {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    _guard: Box<dyn std::any::Any + Send>,
}

/// A fresh in-memory store.
pub fn memory_store() -> TestStore {
    TestStore { store: Arc::new(object_store::memory::InMemory::new()), _guard: Box::new(()) }
}

/// A fresh local-folder store in a temporary folder.
pub fn folder_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    TestStore { store, _guard: Box::new(dir) }
}

/// A bucket on a fresh s3s-fs server on 127.0.0.1.
pub fn s3_store() -> TestStore {
    let server = S3Server::start();
    TestStore { store: server.store(), _guard: Box::new(server) }
}

/// Runs each named `async fn(Arc<dyn ObjectStore>)` as a test against every store: memory,
/// a local folder and a real S3 server, in modules `memory_store`, `folder_store`, `s3_store`.
#[macro_export]
macro_rules! for_each_store {
    ($($check:ident),+ $(,)?) => {
        $crate::for_each_store!(@store memory_store, $($check),+);
        $crate::for_each_store!(@store folder_store, $($check),+);
        $crate::for_each_store!(@store s3_store, $($check),+);
    };
    (@store $store:ident, $($check:ident),+) => {
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let store = $crate::$store();
                    super::$check(store.store.clone()).await;
                }
            )+
        }
    };
}

/// A short suffix that differs between calls (time and a counter), for unique names.
pub fn pseudo_random_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{}", nanos & 0xffff, COUNTER.fetch_add(1, Ordering::Relaxed))
}
