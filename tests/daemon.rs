//! lifeboatd end to end: the real binary on a loopback port, its API, scheduler, webhooks,
//! metrics, and what a kill -9 leaves behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use util::*;

const TOKEN: &str = "test-token-0123456789abcdef";

/// Waits for `f` to give a value; fails saying what did not happen. A guard against hangs,
/// not a timing assertion.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "gave up after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 client: (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("lifeboatd is not answering on 127.0.0.1:{port}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.unwrap_or("");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) =
        text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = http(port, "GET", path, Some(TOKEN), None);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
}

/// `/health`, which must answer `status` (200 healthy, 503 degraded) with its JSON.
fn health_with(port: u16, status: u16) -> Value {
    let (got, body) = http(port, "GET", "/health", Some(TOKEN), None);
    assert_eq!(got, status, "GET /health: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/health is not JSON ({e}): {body}"))
}

fn post_json(port: u16, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http(port, "POST", path, Some(TOKEN), Some(body));
    (
        status,
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("POST {path} is not JSON ({e}): {text}")),
    )
}

/// A running lifeboatd with its folder, config and logs.
struct Service {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// Extra environment of the process.
    env: Vec<(String, String)>,
}

impl Service {
    /// A folder with a repository path and a state folder; `jobs` is the TOML of the jobs.
    fn new(extra: &str, jobs: &str) -> Self {
        let mut s = Self::configured(extra, jobs);
        s.start();
        s
    }

    /// As [`Service::new`], not started yet.
    fn configured(extra: &str, jobs: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let s = Service { dir, port: free_port(), child: None, env: Vec::new() };
        s.configure(extra, jobs);
        s
    }

    /// Writes the configuration file.
    fn configure(&self, extra: &str, jobs: &str) {
        let config = format!(
            "repository = \"{repo}\"\nlisten = \"127.0.0.1:{port}\"\ntokens = [\"{TOKEN}\"]\nstate_dir = \"{state}\"\n{extra}\n{jobs}",
            repo = self.repo(),
            port = self.port,
            state = self.path("state").display(),
        );
        std::fs::write(self.path("lifeboatd.toml"), config).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn repo(&self) -> String {
        self.path("repo").display().to_string()
    }

    /// The service's own temp folder (`TMPDIR`), where drills make their scratch files.
    fn tmp(&self) -> PathBuf {
        self.path("tmp")
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("lifeboatd.log"))
            .unwrap();
        self.start_with(Command::new(env!("CARGO_BIN_EXE_lifeboatd")), log.into());
    }

    /// Starts `command` (lifeboatd, or a shell that runs it with `$LIFEBOATD` and `$CONFIG`)
    /// with its stderr going to `stderr`, and waits until it listens.
    fn start_with(&mut self, mut command: Command, stderr: Stdio) {
        std::fs::create_dir_all(self.tmp()).unwrap();
        let child = command
            .arg("--config")
            .arg(self.path("lifeboatd.toml"))
            .env_remove("LIFEBOAT_TOKENS")
            .env_remove("LIFEBOAT_REPO")
            .env_remove("LIFEBOAT_WEBHOOKS")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("NO_COLOR")
            .env("LIFEBOAT_LOG", "info")
            .env("LIFEBOAT_LEASE_TTL", "30s")
            .env("TMPDIR", self.tmp())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let port = self.port;
        wait_for(
            &format!("lifeboatd to answer /health (log: {})", self.log()),
            Duration::from_secs(60),
            || {
                if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
                {
                    panic!("lifeboatd exited with {status}: {}", self.log());
                }
                TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
            },
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("lifeboatd.log")).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        child.wait().unwrap()
    }

    /// Sends `signal` (`HUP`, `TERM`) to the service.
    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// SIGTERM, then waits at most `limit` for the exit (a guard against hangs).
    fn stop_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.signal("TERM");
        let mut child = self.child.take().expect("running");
        wait_for("lifeboatd to exit after SIGTERM", limit, || child.try_wait().unwrap())
    }

    /// kill -9.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn run(&self, id: i64) -> Value {
        get_json(self.port, &format!("/api/runs/{id}"))
    }

    fn wait_run_finished(&self, id: i64) -> Value {
        wait_for(&format!("run {id} to finish"), Duration::from_secs(180), || {
            let run = self.run(id);
            (run["status"] != "in_progress").then_some(run)
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn job(name: &str, kind: &str, target: &Path, schedule: &str, extra: &str) -> String {
    format!(
        "[[jobs]]\nname = \"{name}\"\nkind = \"{kind}\"\ntarget = \"{}\"\nschedule = \"{schedule}\"\n{extra}\n",
        target.display()
    )
}

/// Never fires during a test.
const YEARLY: &str = "0 0 0 1 1 *";

#[test]
fn api_refuses_requests_without_the_right_token() {
    let db = tempfile::tempdir().unwrap();
    make_sqlite_db(&db.path().join("auth.db"), 1);
    let s = Service::new(
        "open = [\"metrics\"]",
        &job("auth", "sqlite", &db.path().join("auth.db"), YEARLY, ""),
    );
    for path in ["/health", "/api/backups", "/api/runs", "/api/config", "/api/stats"] {
        let (status, body) = http(s.port, "GET", path, None, None);
        assert_eq!(status, 401, "GET {path} without a token: {body}");
        assert!(body.contains("missing token"), "{body}");
        let (status, body) = http(s.port, "GET", path, Some("test-token-0123456789abcdeX"), None);
        assert_eq!(status, 401, "GET {path} with a wrong token: {body}");
        let (status, body) = http(s.port, "GET", path, Some(TOKEN), None);
        assert_eq!(status, 200, "GET {path} with the token: {body}");
    }
    let (status, _) =
        http(s.port, "POST", "/api/backups", Some("wrong"), Some("{\"job\":\"auth\"}"));
    assert_eq!(status, 401);
    // Opened by the configuration.
    let (status, _) = http(s.port, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let config = get_json(s.port, "/api/config");
    assert!(!config.to_string().contains(TOKEN), "the token leaks through /api/config");
}

#[test]
fn a_scheduled_job_makes_snapshots_keeps_its_retention_and_reports_metrics() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let mut s = Service::new(
        "",
        &job("auth", "sqlite", &db, "every 1s", "keep = { last = 2 }\nverify = \"read-data\""),
    );
    let completed =
        wait_for("four scheduled backups to complete", Duration::from_secs(120), || {
            let runs = get_json(s.port, "/api/runs?job=auth&status=completed");
            (runs["count"].as_u64().unwrap() >= 4).then_some(runs)
        });
    let run = &completed["runs"][0];
    assert_eq!(run["trigger"], "schedule");
    assert_eq!(run["operation"], "backup");
    assert!(run["detail"].as_str().unwrap().contains("verified (read-data)"), "{run}");

    let listed = get_json(s.port, "/api/backups?job=auth");
    assert!(listed["count"].as_u64().unwrap() >= 1, "{listed}");
    assert_eq!(listed["backups"][0]["name"], "auth");
    let id = listed["backups"][0]["id"].as_str().unwrap().to_string();
    let one = get_json(s.port, &format!("/api/backups/{id}"));
    assert_eq!(one["kind"], "sqlite");

    // Metrics parse as Prometheus text and agree with the repository.
    let (status, text) = http(s.port, "GET", "/metrics", Some(TOKEN), None);
    assert_eq!(status, 200);
    let value = |name: &str| metric(&text, name, "auth");
    assert!(value("lifeboat_last_success_timestamp_seconds") > 1.7e9);
    assert!(value("lifeboat_backups_total") >= 4.0);
    assert_eq!(value("lifeboat_last_run_failed"), 0.0);
    assert!(value("lifeboat_snapshots") >= 1.0);
    assert!(value("lifeboat_repository_size_bytes") > 0.0);
    assert!(value("lifeboat_last_size_bytes") > 0.0);
    for family in
        ["lifeboat_last_backup_duration_seconds", "lifeboat_job_stored_bytes", "lifeboat_stale"]
    {
        value(family);
    }

    let heartbeat = std::fs::read_to_string(s.path("state/heartbeats/auth.last-success")).unwrap();
    assert!(heartbeat.starts_with("20"), "{heartbeat}");

    let health = get_json(s.port, "/health");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["backups"]["auth"]["status"], "ok", "{health}");

    // A graceful stop lets the running backup finish, so retention has the last word.
    let status = s.stop();
    assert!(status.success(), "lifeboatd did not stop cleanly: {status}\n{}", s.log());
    let snaps = snapshots(&s.repo());
    assert!(!snaps.is_empty() && snaps.len() <= 2, "keep last = 2 left {} snapshots", snaps.len());
    assert!(snaps.iter().all(|x| x["name"] == "auth"));
    ok(lifeboat(&s.repo()).args(["verify", "--all", "--read-data"]));
}

/// The value of metric `name` for job `job` (its label `name`, or none) in a Prometheus text
/// scrape.
fn metric(text: &str, name: &str, job: &str) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && s.labels.get("name").is_none_or(|j| j == job))
        .unwrap_or_else(|| panic!("{name} for job {job} missing from /metrics:\n{text}"));
    match sample.value {
        prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: unexpected {other:?}"),
    }
}

/// Answers webhook posts, the first with 500 (to exercise retries) and the rest with 200;
/// passes on each body with its position.
fn webhook_receiver() -> (u16, mpsc::Receiver<(usize, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let status = if n == 0 { "500 Internal Server Error" } else { "200 OK" };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send((n, v));
            }
        }
    });
    (port, rx)
}

/// The next alert of kind `event` for which `fits` holds, with its position; panics with the
/// service's log when none comes within two minutes.
fn next_alert(
    alerts: &mpsc::Receiver<(usize, Value)>,
    s: &Service,
    event: &str,
    fits: impl Fn(&Value) -> bool,
) -> (usize, Value) {
    let start = Instant::now();
    loop {
        let left = Duration::from_secs(120).saturating_sub(start.elapsed());
        let (n, alert) = alerts.recv_timeout(left).unwrap_or_else(|_| {
            panic!("no fitting {event} webhook reached the receiver; log:\n{}", s.log())
        });
        if alert["event"] == event && fits(&alert) {
            return (n, alert);
        }
    }
}

#[test]
fn a_failing_job_degrades_health_and_fires_the_webhook_until_it_recovers() {
    let (hook, alerts) = webhook_receiver();
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("missing.db");
    let s = Service::new(
        &format!("webhooks = [\"http://127.0.0.1:{hook}/alerts\"]"),
        &job("billing", "sqlite", &db, "every 1s", ""),
    );
    let next_alert = |event: &str| next_alert(&alerts, &s, event, |_| true);
    let (n, refused) = next_alert("backup.failed");
    assert_eq!(n, 0, "the receiver refuses its first delivery with 500");
    // One alert per failing streak: the next backup.failed is the retry of the same alert.
    let (n, alert) = next_alert("backup.failed");
    assert!(n >= 1);
    assert_eq!(alert, refused, "the retry carries the same alert");
    assert_eq!(alert["job"], "billing");
    assert!(alert["message"].as_str().unwrap().contains("missing.db"), "{alert}");
    assert!(alert["source"].as_str().unwrap().starts_with("lifeboatd@"));
    assert!(alert["timestamp"].as_str().unwrap().starts_with("20"));
    assert!(alert.get("snapshot").is_some(), "{alert}");

    let health = health_with(s.port, 503);
    assert_eq!(health["status"], "degraded", "{health}");
    // Without a token (open by default): the status alone, with the same code.
    let (status, body) = http(s.port, "GET", "/health", None, None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        serde_json::json!({"status": "degraded"})
    );
    assert_eq!(health["backups"]["billing"]["status"], "failed");
    assert!(
        health["backups"]["billing"]["last_run"]["error"].as_str().unwrap().contains("missing.db")
    );
    let failed = get_json(s.port, "/api/runs?job=billing&status=failed");
    assert!(failed["count"].as_u64().unwrap() >= 1);

    make_sqlite_db(&db, 1);
    let (_, recovered) = next_alert("recovered");
    assert_eq!(recovered["job"], "billing");
    assert!(recovered["snapshot"].is_string(), "{recovered}");
    let health = wait_for("health to turn ok after the recovery", Duration::from_secs(60), || {
        let (status, body) = http(s.port, "GET", "/health", Some(TOKEN), None);
        (status == 200).then(|| serde_json::from_str::<Value>(&body).unwrap())
    });
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["backups"]["billing"]["status"], "ok");
    // Liveness is not health: it answers 200, without a token, degraded or not.
    let (status, body) = http(s.port, "GET", "/livez", None, None);
    assert_eq!(status, 200, "{body}");
}

/// A folder large enough that its backup takes a while, for work to happen during it.
fn big_folder(dir: &Path, files: usize) -> PathBuf {
    let folder = dir.join("media");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..files {
        std::fs::write(
            folder.join(format!("part-{i:03}.bin")),
            pseudo_random(8 << 20, i as u64 + 1),
        )
        .unwrap();
    }
    folder
}

#[test]
fn api_calls_are_served_while_a_backup_runs_and_runs_never_overlap() {
    let data = tempfile::tempdir().unwrap();
    let folder = big_folder(data.path(), 8);
    let s = Service::new("", &job("media", "dir", &folder, YEARLY, ""));
    let (status, first) = post_json(s.port, "/api/backups", "{\"job\":\"media\"}");
    assert_eq!(status, 202, "{first}");
    let run = first["run_id"].as_i64().unwrap();
    let port = s.port;
    let workers: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                for _ in 0..5 {
                    let (status, body) = match i % 4 {
                        0 => http(port, "GET", "/health", Some(TOKEN), None),
                        1 => http(port, "GET", "/api/runs", Some(TOKEN), None),
                        2 => http(port, "GET", "/metrics", Some(TOKEN), None),
                        _ => http(
                            port,
                            "POST",
                            "/api/backups",
                            Some(TOKEN),
                            Some("{\"job\":\"media\"}"),
                        ),
                    };
                    answers.push((i % 4, status, body));
                }
                answers
            })
        })
        .collect();
    let answers: Vec<(usize, u16, String)> =
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    for (kind, status, body) in &answers {
        match kind {
            3 => {
                assert!(*status == 202 || *status == 409, "POST /api/backups: {status} {body}");
                let v: Value = serde_json::from_str(body).unwrap();
                assert!(v["run_id"].is_i64(), "{body}");
            }
            2 => assert_eq!(*status, 200, "{body}"),
            _ => {
                assert_eq!(*status, 200, "{body}");
                serde_json::from_str::<Value>(body).unwrap();
            }
        }
    }
    let finished = s.wait_run_finished(run);
    assert_eq!(finished["status"], "completed", "{finished}");
    // Let any run a worker started finish too, then check no two overlapped.
    let runs = wait_for("every run to finish", Duration::from_secs(300), || {
        let runs = get_json(s.port, "/api/runs?job=media");
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] != "in_progress")
            .then_some(runs)
    });
    let mut spans: Vec<(String, String)> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["started"].as_str().unwrap().to_string(),
                r["finished"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let end = chrono::DateTime::parse_from_rfc3339(&a.1).unwrap();
        let start = chrono::DateTime::parse_from_rfc3339(&b.0).unwrap();
        assert!(start >= end, "two runs of one job overlapped: {a:?} and {b:?}");
    }
    let conflicts = answers.iter().filter(|(k, s, _)| *k == 3 && *s == 409).count();
    let accepted = answers.iter().filter(|(k, s, _)| *k == 3 && *s == 202).count();
    assert!(conflicts >= 1, "no POST met a running backup: the calls did not overlap one");
    assert_eq!(
        spans.len(),
        accepted + 1,
        "{conflicts} conflicts, {accepted} accepted, runs {spans:?}"
    );
}

#[test]
fn kill_9_mid_backup_leaves_no_half_visible_snapshot_and_the_run_shows_interrupted() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let folder = big_folder(data.path(), 16);
    let jobs = job("auth", "sqlite", &db, YEARLY, "") + &job("media", "dir", &folder, YEARLY, "");
    let mut s = Service::new("", &jobs);
    let (_, small) = post_json(s.port, "/api/backups", "{\"job\":\"auth\"}");
    let small = s.wait_run_finished(small["run_id"].as_i64().unwrap());
    assert_eq!(small["status"], "completed", "{small}");

    let big = s.start_and_catch_mid_backup("media");
    s.kill();

    let snaps = snapshots(&s.repo());
    assert_eq!(snaps.len(), 1, "only the finished snapshot is visible: {snaps:?}");
    assert_eq!(snaps[0]["name"], "auth");
    ok(lifeboat(&s.repo()).args(["verify", "--all", "--read-data"]));

    s.start();
    let run = s.run(big);
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["error"].as_str().unwrap().starts_with("interrupted"), "{run}");
    let health = health_with(s.port, 503);
    assert_eq!(health["backups"]["media"]["status"], "failed", "{health}");
    // The service works on after the restart.
    let (_, again) = post_json(s.port, "/api/backups", "{\"job\":\"media\"}");
    let again = s.wait_run_finished(again["run_id"].as_i64().unwrap());
    assert_eq!(again["status"], "completed", "{again}");
    ok(lifeboat(&s.repo()).args(["verify", "--all"]));
}

#[test]
fn an_invalid_configuration_is_refused_with_every_problem_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "repository = \"/tmp/never\"\nlisten = \"nowhere\"\ntokens = [\"short\"]\n\n[[jobs]]\nname = \"auth\"\nkind = \"mysql\"\ntarget = \"x\"\nschedule = \"every blue moon\"\nkeep = { lats = 3 }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboatd"))
        .arg("--config")
        .arg(&path)
        .env_remove("LIFEBOAT_TOKENS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    for expected in [
        "line 2: `listen`",
        "line 3: token 1 is shorter",
        "line 7: job \"auth\": kind \"mysql\"",
        "line 9: job \"auth\": `schedule`",
        "line 10: job \"auth\": `keep`",
        "hint: ",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    assert!(stderr.contains("5 problems"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_lifeboatd"))
        .env_remove("LIFEBOAT_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("error: no configuration file given") && stderr.contains("hint: "),
        "{stderr}"
    );
}

#[test]
fn the_served_openapi_document_is_the_one_in_the_repository_and_lists_every_route() {
    let db = tempfile::tempdir().unwrap();
    let s = Service::new("", &job("auth", "sqlite", &db.path().join("auth.db"), YEARLY, ""));
    let (status, served) = http(s.port, "GET", "/openapi.json", None, None);
    assert_eq!(status, 200);
    let file = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json"),
    )
    .unwrap();
    assert_eq!(served, file, "the served document differs from docs/openapi.json");
    let doc: Value = serde_json::from_str(&file).unwrap();
    for route in lifeboat_daemon::api::ROUTES {
        let (method, path) = route.split_once(' ').unwrap();
        assert!(
            doc["paths"][path][method.to_ascii_lowercase()].is_object(),
            "docs/openapi.json does not describe {route}"
        );
    }
    let documented: usize =
        doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        lifeboat_daemon::api::ROUTES.len(),
        "docs/openapi.json describes routes the service does not have"
    );
    // And the service has every route it lists.
    for route in lifeboat_daemon::api::ROUTES {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path.replace("{id}", "1");
        let (status, body) = http(s.port, method, &path, Some(TOKEN), Some("{}"));
        assert!(status != 405 && !body.contains("no such endpoint"), "{route}: {status} {body}");
    }
}

/// A running busybox container carrying `label`, that wrote a file.
fn labelled_container(cleanup: &mut DockerCleanup, label: &str) -> String {
    docker_engine();
    let name = unique_name("tenant");
    cleanup.containers.push(name.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        label,
        "-e",
        "TENANT_SECRET=s3cr3t-value",
        TEST_IMAGE,
        "sh",
        "-c",
        "echo data > /tmp/data.txt && exec sleep 3600",
    ]);
    name
}

#[test]
fn container_jobs_back_up_by_name_and_by_label_and_skip_unchanged_containers() {
    let mut cleanup = DockerCleanup::default();
    let group = unique_name("group");
    let label = format!("lifeboat.test.group={group}");
    let a = labelled_container(&mut cleanup, &label);
    let b = labelled_container(&mut cleanup, &label);
    let jobs = format!(
        "[[jobs]]\nname = \"tenants\"\nkind = \"container\"\nselector = \"label={label}\"\n\
         schedule = \"{YEARLY}\"\nchanged_only = true\nkeep = {{ last = 5 }}\n\n\
         [[jobs]]\nname = \"one\"\nkind = \"container\"\ntarget = \"{a}\"\nschedule = \"{YEARLY}\"\n"
    );
    let s = Service::new("", &jobs);
    let run_job = |job: &str| {
        let (status, started) =
            post_json(s.port, "/api/backups", &format!("{{\"job\":\"{job}\"}}"));
        assert_eq!(status, 202, "{started}");
        s.wait_run_finished(started["run_id"].as_i64().unwrap())
    };
    let first = run_job("tenants");
    assert_eq!(first["status"], "completed", "{first}");
    let second = run_job("tenants");
    assert_eq!(second["status"], "completed", "{second}");
    assert!(second["detail"].as_str().unwrap_or_default().contains("2 unchanged"), "{second}");
    let one = run_job("one");
    assert_eq!(one["status"], "completed", "{one}");

    let snaps = snapshots(&s.repo());
    let names: Vec<&str> = snaps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for expected in [format!("tenants/{a}"), format!("tenants/{b}"), "one".to_string()] {
        assert!(names.contains(&expected.as_str()), "no snapshot {expected}: {names:?}");
    }
    let unchanged: Vec<_> = snaps.iter().filter(|s| s["unchanged"] == true).collect();
    assert_eq!(unchanged.len(), 2, "the second run stored nothing for either container");
    assert!(unchanged.iter().all(|s| s["stored"] == 0));
    let health = get_json(s.port, "/health");
    assert_eq!(health["status"], "ok", "{health}");
    // The selector job's snapshots are `tenants/CONTAINER`, counted as the job's.
    let listed = get_json(s.port, "/api/backups?job=tenants");
    assert_eq!(listed["count"], 4, "{listed}");
    let (_, text) = http(s.port, "GET", "/metrics", Some(TOKEN), None);
    assert_eq!(metric(&text, "lifeboat_snapshots", "tenants"), 4.0, "{text}");
    assert!(metric(&text, "lifeboat_job_stored_bytes", "tenants") > 0.0, "{text}");
    // Env values are stored but the API never shows them.
    let id = snaps[0]["id"].as_str().unwrap();
    let shown = get_json(s.port, &format!("/api/backups/{id}")).to_string();
    assert!(shown.contains("TENANT_SECRET=***") && !shown.contains("s3cr3t"), "{shown}");
}

fn put_json(port: u16, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http(port, "PUT", path, Some(TOKEN), Some(body));
    (
        status,
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("PUT {path} is not JSON ({e}): {text}")),
    )
}

/// The job called `name` in a `/api/config` answer.
fn config_job(config: &Value, name: &str) -> Value {
    config["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no job {name} in {config}"))
}

impl Service {
    /// Puts top-level `text` at the head of the configuration file (read at the next start).
    fn prepend_config(&self, text: &str) {
        let path = self.path("lifeboatd.toml");
        let config = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}\n{config}")).unwrap();
    }

    /// Starts a backup of `job` through the API and returns its run id once the backup has
    /// written data of its own, but no manifest yet.
    fn start_and_catch_mid_backup(&self, job: &str) -> i64 {
        let packs_before = tree(&self.path("repo/data")).len();
        let (status, run) = post_json(self.port, "/api/backups", &format!("{{\"job\":\"{job}\"}}"));
        assert_eq!(status, 202, "{run}");
        let run = run["run_id"].as_i64().unwrap();
        wait_for("the backup to write its first pack", Duration::from_secs(120), || {
            (tree(&self.path("repo/data")).len() > packs_before).then_some(())
        });
        assert_eq!(
            self.run(run)["status"],
            "in_progress",
            "the backup finished too soon; make the folder bigger"
        );
        run
    }

    /// Runs `job` now, requires the run to complete, and returns its snapshot id.
    fn backup_ok(&self, job: &str) -> String {
        let run = self.backup_now(job);
        assert_eq!(run["status"], "completed", "{run}");
        run["snapshot"].as_str().unwrap().to_string()
    }

    /// Runs `job` now through the API and waits for the run to finish. A scheduled run of
    /// the job (a drill, say) that holds it is waited out first, as the 409's hint says.
    fn backup_now(&self, job: &str) -> Value {
        for _ in 0..10 {
            let (status, started) =
                post_json(self.port, "/api/backups", &format!("{{\"job\":\"{job}\"}}"));
            let run = started["run_id"].as_i64().unwrap_or_else(|| panic!("{started}"));
            match status {
                202 => return self.wait_run_finished(run),
                409 => {
                    self.wait_run_finished(run);
                }
                _ => panic!("POST /api/backups for {job}: {status} {started}"),
            }
        }
        panic!("job {job} was busy with scheduled runs ten times in a row")
    }
}

#[test]
fn put_config_changes_schedule_and_retention_all_or_nothing_and_keeps_them_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let files = data.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a.txt"), "a").unwrap();
    let jobs = job("auth", "sqlite", &db, YEARLY, "keep = { last = 10 }")
        + &job("files", "dir", &files, YEARLY, "");
    let mut s = Service::new("", &jobs);

    // Two changes to one job, one at a time: the second keeps the first.
    let (status, answer) =
        put_json(s.port, "/api/config", r#"{"jobs":{"auth":{"schedule":"every 1s"}}}"#);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(config_job(&answer, "auth")["schedule"], "every 1s", "{answer}");
    let (status, answer) =
        put_json(s.port, "/api/config", r#"{"jobs":{"auth":{"keep":{"last":2}}}}"#);
    assert_eq!(status, 200, "{answer}");
    let config = get_json(s.port, "/api/config");
    let auth = config_job(&config, "auth");
    assert_eq!(auth["schedule"], "every 1s", "{config}");
    assert_eq!(auth["keep"]["last"], 2, "{config}");
    assert_eq!(config_job(&config, "files")["schedule"], YEARLY, "{config}");
    assert!(config_job(&config, "files")["keep"].is_null(), "{config}");
    // Each setting names its origin, and what the file says shows beside the API's change.
    assert_eq!(auth["origin"], serde_json::json!({"schedule": "api", "keep": "api"}), "{auth}");
    assert_eq!(auth["file"]["schedule"], YEARLY, "{auth}");
    assert_eq!(auth["file"]["keep"]["last"], 10, "{auth}");
    let files_job = config_job(&config, "files");
    assert_eq!(files_job["origin"], serde_json::json!({"schedule": "file", "keep": "file"}));
    assert!(files_job.get("file").is_none(), "{files_job}");
    assert!(s.log().contains("settings changed through the API"), "{}", s.log());

    // A change with problems: every one is listed and nothing changes, not even the valid
    // part for the other job.
    let (status, refused) = put_json(
        s.port,
        "/api/config",
        r#"{"jobs":{"auth":{"schedule":"every blue moon","keep":{}},"files":{"keep":{"last":1}},"nosuch":{"schedule":"every 1s"}}}"#,
    );
    assert_eq!(status, 400, "{refused}");
    let problems: Vec<String> = refused["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"].as_str().unwrap().to_string())
        .collect();
    let has = |job: &str, what: &str| problems.iter().any(|p| p.contains(job) && p.contains(what));
    assert!(has("\"auth\"", "blue moon"), "{problems:?}");
    assert!(has("\"auth\"", "keeps nothing"), "{problems:?}");
    assert!(has("\"nosuch\"", "no such job"), "{problems:?}");
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(refused["error"].as_str().unwrap().contains("nothing was changed"), "{refused}");
    let (status, _) = put_json(s.port, "/api/config", r#"{"jobs":{"auth":{"every":"1s"}}}"#);
    assert_eq!(status, 400, "an unknown field is refused");
    assert_eq!(get_json(s.port, "/api/config"), config, "a refused change changed something");

    // The scheduler follows the new schedule, and retention the new policy.
    wait_for("three backups on the new schedule", Duration::from_secs(120), || {
        let runs = get_json(s.port, "/api/runs?job=auth&status=completed&operation=backup");
        let scheduled =
            runs["runs"].as_array().unwrap().iter().filter(|r| r["trigger"] == "schedule").count();
        (scheduled >= 3).then_some(())
    });
    let status = s.stop();
    assert!(status.success(), "{status}\n{}", s.log());
    let snaps = snapshots(&s.repo());
    let auth_snaps = snaps.iter().filter(|x| x["name"] == "auth").count();
    assert!((1..=2).contains(&auth_snaps), "keep last = 2 left {auth_snaps} snapshots");

    // settings.rs keeps changes in the run catalog: a restart keeps them over the file.
    s.start();
    let after = get_json(s.port, "/api/config");
    assert_eq!(after, config, "the restart lost the changes");
    let last_before =
        get_json(s.port, "/api/runs?job=auth&limit=1")["runs"][0]["id"].as_i64().unwrap();
    let run = wait_for("a scheduled backup after the restart", Duration::from_secs(120), || {
        let runs = get_json(s.port, "/api/runs?job=auth&status=completed&limit=1");
        runs["runs"]
            .as_array()
            .unwrap()
            .first()
            .filter(|r| r["id"].as_i64().unwrap() > last_before && r["trigger"] == "schedule")
            .cloned()
    });
    assert_eq!(run["operation"], "backup", "{run}");
    assert!(s.log().contains("settings changed through the API apply over the file"));

    // DELETE drops the API's changes: the file is the one source again, also after a restart.
    let (status, text) = http(s.port, "DELETE", "/api/config", Some(TOKEN), None);
    assert_eq!(status, 200, "{text}");
    let back: Value = serde_json::from_str(&text).unwrap();
    let auth = config_job(&back, "auth");
    assert_eq!((&auth["schedule"], &auth["keep"]["last"]), (&YEARLY.into(), &10.into()), "{auth}");
    assert_eq!(auth["origin"], serde_json::json!({"schedule": "file", "keep": "file"}));
    assert!(auth.get("file").is_none(), "{auth}");
    assert!(s.log().contains("settings changed through the API dropped"), "{}", s.log());
    assert!(s.stop().success());
    s.start();
    assert_eq!(get_json(s.port, "/api/config"), back, "the restart brought the changes back");
}

#[test]
fn verify_through_the_api_reports_ok_and_is_recorded_as_a_run() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let s = Service::new("", &job("auth", "sqlite", &db, YEARLY, ""));
    let backup = s.backup_now("auth");
    assert_eq!(backup["status"], "completed", "{backup}");
    let id = backup["snapshot"].as_str().unwrap().to_string();

    let (status, structure) = post_json(s.port, &format!("/api/backups/{id}/verify"), "");
    assert_eq!(status, 200, "{structure}");
    assert_eq!(structure["valid"], true, "{structure}");
    assert_eq!(structure["read_data"], false, "{structure}");
    assert_eq!(structure["snapshot"], id.as_str());
    assert!(structure["failures"].as_array().unwrap().is_empty(), "{structure}");
    // By unique prefix, reading every byte.
    let (status, deep) =
        post_json(s.port, &format!("/api/backups/{}/verify", &id[..12]), r#"{"read_data":true}"#);
    assert_eq!(status, 200, "{deep}");
    assert_eq!(deep["valid"], true, "{deep}");
    assert_eq!(deep["read_data"], true, "{deep}");

    let runs = get_json(s.port, "/api/runs?operation=verify");
    assert_eq!(runs["count"], 2, "{runs}");
    for (answer, run) in [(&deep, &runs["runs"][0]), (&structure, &runs["runs"][1])] {
        assert_eq!(run["id"], answer["run_id"], "{runs}");
        assert_eq!(run["operation"], "verify");
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(run["trigger"], "api");
        assert_eq!(run["job"], "auth");
        assert_eq!(run["snapshot"], id.as_str());
        assert!(run["error"].is_null() && run["finished"].is_string(), "{run}");
        assert_eq!(s.run(run["id"].as_i64().unwrap()), *run);
    }
    let (status, missing) = post_json(s.port, "/api/backups/00000000/verify", "");
    assert_eq!(status, 404, "{missing}");
    assert_eq!(get_json(s.port, "/api/runs?operation=verify")["count"], 2);
}

#[test]
fn restore_through_the_api_needs_allow_restore_and_confirmation_and_keeps_a_safety_snapshot() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let original = table_counts(&db);
    let mut s = Service::new("", &job("auth", "sqlite", &db, YEARLY, ""));
    let backup = s.backup_now("auth");
    assert_eq!(backup["status"], "completed", "{backup}");
    let id = backup["snapshot"].as_str().unwrap().to_string();
    let restore = format!("/api/backups/{id}/restore");
    let copy = data.path().join("copy.db");
    let untouched = tree(data.path());

    // Off by default: refused, even confirmed, for a new path or over the live database.
    let body = format!(r#"{{"to":"{}","confirm":true}}"#, copy.display());
    let (status, refused) = post_json(s.port, &restore, &body);
    assert_eq!(status, 403, "{refused}");
    assert!(refused["hint"].as_str().unwrap().contains("allow_restore"), "{refused}");
    for force in [true, false] {
        let body = format!(r#"{{"to":"{}","confirm":true,"force":{force}}}"#, db.display());
        let (status, refused) = post_json(s.port, &restore, &body);
        assert_eq!(status, 403, "force = {force}: {refused}");
    }
    // A dry run only lists the steps.
    let body = format!(r#"{{"to":"{}","dry_run":true}}"#, copy.display());
    let (status, plan) = post_json(s.port, &restore, &body);
    assert_eq!(status, 200, "{plan}");
    assert!(!plan["steps"].as_array().unwrap().is_empty(), "{plan}");
    assert_eq!(tree(data.path()), untouched, "a refused restore wrote something");

    s.stop();
    s.prepend_config("allow_restore = true");
    s.start();
    assert_eq!(get_json(s.port, "/api/config")["allow_restore"], true);

    // No confirmation: refused with the steps, nothing written.
    for body in [
        format!(r#"{{"to":"{}"}}"#, copy.display()),
        format!(r#"{{"to":"{}","confirm":false}}"#, copy.display()),
    ] {
        let (status, refused) = post_json(s.port, &restore, &body);
        assert_eq!(status, 400, "{refused}");
        assert!(refused["error"].as_str().unwrap().contains("confirmation"), "{refused}");
        assert!(!refused["steps"].as_array().unwrap().is_empty(), "{refused}");
    }
    let (status, refused) = post_json(s.port, &restore, r#"{"confirm":true}"#);
    assert_eq!(status, 400, "`to` is required: {refused}");
    assert_eq!(tree(data.path()), untouched, "an unconfirmed restore wrote something");

    // Confirmed, to a new path.
    let body = format!(r#"{{"to":"{}","confirm":true}}"#, copy.display());
    let (status, restored) = post_json(s.port, &restore, &body);
    assert_eq!(status, 200, "{restored}");
    assert_eq!(sqlite3_integrity_check(&copy), "ok");
    assert_eq!(table_counts(&copy), original);
    assert!(restored["report"]["safety_snapshot"].is_null(), "{restored}");

    // Over the live database: refused without force, then done with a safety snapshot.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        insert_events(&conn, 50);
    }
    let changed = table_counts(&db);
    assert_ne!(changed, original);
    let body = format!(r#"{{"to":"{}","confirm":true}}"#, db.display());
    let (status, refused) = post_json(s.port, &restore, &body);
    assert_eq!(status, 409, "{refused}");
    assert_eq!(table_counts(&db), changed);
    let body = format!(r#"{{"to":"{}","confirm":true,"force":true}}"#, db.display());
    let (status, replaced) = post_json(s.port, &restore, &body);
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(sqlite3_integrity_check(&db), "ok");
    assert_eq!(table_counts(&db), original, "the live database does not hold the snapshot's data");
    let safety = replaced["report"]["safety_snapshot"].as_str().unwrap().to_string();
    let snaps = snapshots(&s.repo());
    let pre: Vec<&Value> =
        snaps.iter().filter(|x| x["tags"]["pre-restore"] == id.as_str()).collect();
    assert_eq!(pre.len(), 1, "one pre-restore snapshot: {snaps:?}");
    assert_eq!(pre[0]["id"], safety.as_str());
    assert_eq!(pre[0]["name"], "auth");
    // The safety snapshot holds what the live database had before.
    let before = data.path().join("before.db");
    let body = format!(r#"{{"to":"{}","confirm":true}}"#, before.display());
    let (status, answer) = post_json(s.port, &format!("/api/backups/{safety}/restore"), &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(table_counts(&before), changed);

    let runs = get_json(s.port, "/api/runs?operation=restore");
    assert_eq!(runs["count"], 3, "{runs}");
    assert!(runs["runs"].as_array().unwrap().iter().all(|r| r["status"] == "completed"), "{runs}");
    assert!(runs["runs"][1]["detail"].as_str().unwrap().contains(&safety), "{runs}");
}

#[test]
fn scheduled_drills_complete_show_in_the_runs_and_leave_no_scratch_files() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    let rows = make_sqlite_db(&db, 1);
    let mut s = Service::new("", &job("auth", "sqlite", &db, YEARLY, ""));
    let backup = s.backup_now("auth");
    assert_eq!(backup["status"], "completed", "{backup}");
    s.stop();
    // The job now drills every second, checking a row count of the restored copy.
    let path = s.path("lifeboatd.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{config}drill = \"every 1s\"\nexpect = {{ min_rows = {{ events = {rows} }} }}\n"),
    )
    .unwrap();
    s.start();
    assert_eq!(config_job(&get_json(s.port, "/api/config"), "auth")["drill"], "every 1s");

    let drills = wait_for("three completed drills", Duration::from_secs(120), || {
        let runs = get_json(s.port, "/api/runs?job=auth&operation=drill&status=completed");
        (runs["count"].as_u64().unwrap() >= 3).then_some(runs)
    });
    for run in drills["runs"].as_array().unwrap() {
        assert_eq!(run["trigger"], "schedule", "{run}");
        assert_eq!(run["snapshot"], backup["snapshot"], "{run}");
        assert!(run["detail"].as_str().unwrap().contains("RTO"), "{run}");
        assert!(run["size"].as_u64().unwrap() > 0, "{run}");
    }
    let failed = get_json(s.port, "/api/runs?operation=drill&status=failed");
    assert_eq!(failed["count"], 0, "{failed}");
    let status = s.stop();
    assert!(status.success(), "{status}\n{}", s.log());
    let left: Vec<String> = std::fs::read_dir(s.tmp())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(lifeboat_core::drill::SCRATCH_PREFIX))
        .collect();
    assert!(left.is_empty(), "drill scratch files left behind: {left:?}");
}

#[test]
fn a_job_past_its_rpo_raises_stale_and_then_recovered() {
    let (hook, alerts) = webhook_receiver();
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let s = Service::new(
        &format!("webhooks = [\"http://127.0.0.1:{hook}/alerts\"]\nstale_check = \"1s\""),
        &job("auth", "sqlite", &db, YEARLY, "rpo = \"3s\""),
    );
    let id = s.backup_ok("auth");
    let (_, stale) = next_alert(&alerts, &s, "stale", |a| a["snapshot"] == id.as_str());
    assert_eq!(stale["job"], "auth");
    assert!(stale["message"].as_str().unwrap().contains("stale"), "{stale}");
    let health = health_with(s.port, 503);
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["backups"]["auth"]["status"], "stale", "{health}");
    let listed = get_json(s.port, "/api/alerts/stale");
    assert!(listed.to_string().contains("auth"), "{listed}");

    let id = s.backup_ok("auth");
    let (_, fresh) = next_alert(&alerts, &s, "recovered", |a| a["snapshot"] == id.as_str());
    assert_eq!(fresh["job"], "auth");
    assert!(fresh["message"].as_str().unwrap().contains("fresh again"), "{fresh}");
}

#[test]
fn failed_drills_and_failed_verification_fire_their_webhooks() {
    let (hook, alerts) = webhook_receiver();
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    let rows = make_sqlite_db(&db, 1);
    let impossible = rows * 1000;
    let s = Service::new(
        &format!("webhooks = [\"http://127.0.0.1:{hook}/alerts\"]"),
        &job(
            "auth",
            "sqlite",
            &db,
            YEARLY,
            &format!(
                "verify = \"read-data\"\ndrill = \"every 1s\"\nexpect = {{ min_rows = {{ events = {impossible} }} }}"
            ),
        ),
    );
    let id = s.backup_ok("auth");

    // The drill restores the snapshot and finds fewer rows than it expects.
    let (_, drill) = next_alert(&alerts, &s, "drill.failed", |a| a["snapshot"] == id.as_str());
    assert_eq!(drill["job"], "auth");
    let message = drill["message"].as_str().unwrap();
    assert!(message.contains("events") && message.contains(&impossible.to_string()), "{drill}");
    let failed = get_json(s.port, "/api/runs?job=auth&operation=drill&status=failed");
    assert!(failed["count"].as_u64().unwrap() >= 1, "{failed}");

    // Damage every pack: the next backup deduplicates against them, and its read-data
    // verification fails; so does a verification through the API.
    let packs = tree(&s.path("repo/data"));
    assert!(!packs.is_empty(), "no packs under repo/data");
    for path in packs.keys() {
        let mut bytes = std::fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(path, bytes).unwrap();
    }
    let again = s.backup_now("auth");
    assert_eq!(again["status"], "failed", "{again}");
    let damaged = again["snapshot"].as_str().unwrap().to_string();
    let (_, verify) =
        next_alert(&alerts, &s, "verify.failed", |a| a["snapshot"] == damaged.as_str());
    assert_eq!(verify["job"], "auth");
    assert!(verify["message"].as_str().unwrap().contains("verification"), "{verify}");
    let health = health_with(s.port, 503);
    assert_eq!(health["backups"]["auth"]["status"], "failed", "{health}");

    let (status, report) =
        post_json(s.port, &format!("/api/backups/{id}/verify"), r#"{"read_data":true}"#);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["valid"], false, "{report}");
    let (_, api) = next_alert(&alerts, &s, "verify.failed", |a| a["snapshot"] == id.as_str());
    assert_eq!(api["job"], "auth");
    let run = s.run(report["run_id"].as_i64().unwrap());
    assert_eq!(run["status"], "failed", "{run}");
}

#[test]
fn sigterm_past_the_grace_period_aborts_a_backup_without_a_snapshot() {
    let data = tempfile::tempdir().unwrap();
    let folder = big_folder(data.path(), 32);
    let mut s = Service::new("shutdown_grace = \"0s\"", &job("media", "dir", &folder, YEARLY, ""));
    let run = s.start_and_catch_mid_backup("media");
    let status = s.stop();
    assert!(status.success(), "lifeboatd did not stop cleanly: {status}\n{}", s.log());
    assert!(s.log().contains("aborting"), "{}", s.log());
    let snaps = snapshots(&s.repo());
    assert!(snaps.is_empty(), "an aborted backup left a snapshot: {snaps:?}");

    s.start();
    let aborted = s.run(run);
    assert_eq!(aborted["status"], "failed", "{aborted}");
    assert!(aborted["error"].as_str().unwrap().starts_with("interrupted"), "{aborted}");
    let again = s.backup_now("media");
    assert_eq!(again["status"], "completed", "{again}");
    ok(lifeboat(&s.repo()).args(["verify", "--all", "--read-data"]));
}

#[test]
fn the_minimal_example_is_accepted_by_the_binary_through_lifeboat_config() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/lifeboatd-minimal.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboatd"))
        .arg("--check")
        .env("LIFEBOAT_CONFIG", &path)
        .env_remove("LIFEBOAT_TOKENS")
        .env_remove("LIFEBOAT_REPO")
        .env_remove("LIFEBOAT_WEBHOOKS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 jobs, configuration valid"), "{stdout}");
}

#[test]
fn a_restart_after_missed_slots_catches_up_once() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let mut s = Service::new("", &job("auth", "sqlite", &db, "every 2s", ""));
    let runs_of = |s: &Service, trigger: &str| -> Vec<Value> {
        let runs = get_json(s.port, "/api/runs?job=auth&operation=backup");
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["trigger"] == trigger && r["status"] == "completed")
            .cloned()
            .collect()
    };
    wait_for("a scheduled backup", Duration::from_secs(60), || {
        (!runs_of(&s, "schedule").is_empty()).then_some(())
    });
    s.stop();
    // Down for at least two slots.
    std::thread::sleep(Duration::from_secs(5));
    s.start();
    let catch_up =
        wait_for("the catch-up backup", Duration::from_secs(60), || runs_of(&s, "catch-up").pop());
    // The timetable then goes on from now: the next scheduled run, and no second catch-up.
    let catch_up_id = catch_up["id"].as_i64().unwrap();
    wait_for("a scheduled backup after the catch-up", Duration::from_secs(60), || {
        runs_of(&s, "schedule")
            .iter()
            .any(|r| r["id"].as_i64().unwrap() > catch_up_id)
            .then_some(())
    });
    assert_eq!(runs_of(&s, "catch-up").len(), 1, "one catch-up for all the missed slots");
}

#[test]
fn backups_beyond_max_running_wait_for_a_free_slot() {
    let data = tempfile::tempdir().unwrap();
    let folder = big_folder(data.path(), 3);
    let jobs: String =
        ["one", "two", "three"].iter().map(|n| job(n, "dir", &folder, YEARLY, "")).collect();
    let s = Service::new("max_running = 1", &jobs);
    let config = get_json(s.port, "/api/config");
    assert_eq!(config["max_running"], 1, "{config}");
    let runs: Vec<i64> = ["one", "two", "three"]
        .iter()
        .map(|job| {
            let (status, body) =
                post_json(s.port, "/api/backups", &format!("{{\"job\":\"{job}\"}}"));
            assert_eq!(status, 202, "{body}");
            body["run_id"].as_i64().unwrap()
        })
        .collect();
    // Each capture began after the one before had finished: one backup at a time. (With
    // max_running = 3 the three spans overlap.)
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = runs
        .iter()
        .map(|&id| {
            let run = s.wait_run_finished(id);
            assert_eq!(run["status"], "completed", "{run}");
            let snap =
                get_json(s.port, &format!("/api/backups/{}", run["snapshot"].as_str().unwrap()));
            let began: DateTime<Utc> = snap["time"].as_str().unwrap().parse().unwrap();
            let ended: DateTime<Utc> = run["finished"].as_str().unwrap().parse().unwrap();
            (began, ended)
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two backups ran at once: {spans:?}");
    }
    assert!(s.log().contains("waiting for a free slot"), "{}", s.log());
}

/// Completed backup runs of `job` through `trigger`.
fn completed_runs(s: &Service, job: &str, trigger: &str) -> usize {
    let runs = get_json(s.port, &format!("/api/runs?job={job}&status=completed&operation=backup"));
    runs["runs"].as_array().unwrap().iter().filter(|r| r["trigger"] == trigger).count()
}

#[test]
fn closing_stderr_mid_run_keeps_jobs_running_and_alerting_and_sigterm_still_ends_it() {
    let (hook, alerts) = webhook_receiver();
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("billing.db");
    let mut s = Service::configured(
        &format!("webhooks = [\"http://127.0.0.1:{hook}/alerts\"]"),
        &job("billing", "sqlite", &db, "every 1s", ""),
    );
    // `lifeboatd ... 2>&1 | head -1`: one line read, then the reader goes away.
    s.start_with(Command::new(env!("CARGO_BIN_EXE_lifeboatd")), Stdio::piped());
    let stderr = s.child.as_mut().unwrap().stderr.take().unwrap();
    let mut first = String::new();
    BufReader::new(stderr).read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "no log line before the pipe closed");
    assert!(!first.contains('\u{1b}'), "colour codes on a pipe: {first:?}");
    // The reader is gone: every log line from now on fails to write. The job fails on each
    // slot (the database does not exist yet), logging each time, and must go on.
    let (_, failed) = next_alert(&alerts, &s, "backup.failed", |_| true);
    assert_eq!(failed["job"], "billing");
    std::thread::sleep(Duration::from_secs(3));
    make_sqlite_db(&db, 1);
    let (_, recovered) = next_alert(&alerts, &s, "recovered", |_| true);
    assert_eq!(recovered["job"], "billing");
    wait_for("scheduled backups after the recovery", Duration::from_secs(60), || {
        (completed_runs(&s, "billing", "schedule") >= 2).then_some(())
    });
    // The API still starts runs (no slot left taken by a dead task).
    let run = wait_for("POST /api/backups to be accepted", Duration::from_secs(60), || {
        let (status, body) = post_json(s.port, "/api/backups", "{\"job\":\"billing\"}");
        (status == 202).then(|| body["run_id"].as_i64().unwrap())
    });
    let run = s.wait_run_finished(run);
    assert_eq!(run["status"], "completed", "{run}");
    let stuck = get_json(s.port, "/api/runs?status=in_progress");
    assert!(stuck["count"].as_u64().unwrap() <= 1, "runs stuck in progress: {stuck}");
    let status = s.stop_within(Duration::from_secs(60));
    assert!(status.success(), "lifeboatd did not stop cleanly: {status}");
}

/// A TCP server that accepts connections and never answers: a database server that hangs.
fn silent_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().take(8) {
            open.push(stream);
        }
        std::thread::sleep(Duration::from_secs(600));
    });
    (port, held)
}

#[test]
fn a_run_past_its_deadline_is_failed_and_alerted_and_frees_its_job() {
    let (hook, alerts) = webhook_receiver();
    let (pg, _held) = silent_server();
    let target = format!("postgres://lifeboat@127.0.0.1:{pg}/app");
    let mut s = Service::new(
        &format!("webhooks = [\"http://127.0.0.1:{hook}/alerts\"]\nrun_timeout = \"2s\""),
        &format!(
            "[[jobs]]\nname = \"app\"\nkind = \"postgres\"\ntarget = \"{target}\"\nschedule = \"{YEARLY}\"\n"
        ),
    );
    let (status, started) = post_json(s.port, "/api/backups", "{\"job\":\"app\"}");
    assert_eq!(status, 202, "{started}");
    let id = started["run_id"].as_i64().unwrap();
    let run =
        wait_for(&format!("run {id} to fail at its deadline"), Duration::from_secs(60), || {
            let run = s.run(id);
            (run["status"] != "in_progress").then_some(run)
        });
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["error"].as_str().unwrap().contains("run_timeout"), "{run}");
    let (_, alert) = next_alert(&alerts, &s, "backup.failed", |_| true);
    assert!(alert["message"].as_str().unwrap().contains("run_timeout"), "{alert}");
    // The job is free again: the next run starts (and hits the same deadline).
    let again = s.backup_now("app");
    assert_eq!(again["status"], "failed", "{again}");
    // Finished runs are not counted as running at shutdown.
    let status = s.stop_within(Duration::from_secs(60));
    assert!(status.success(), "{status}");
    let log = s.log();
    assert!(!log.contains("waiting for running backups"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file:\n{log}");
}

#[test]
fn sighup_reloads_a_valid_configuration_and_keeps_the_running_one_when_invalid() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let new_token = "second-token-0123456789abcdef";
    let s = Service::new("", &job("auth", "sqlite", &db, YEARLY, ""));
    let (status, _) = http(s.port, "GET", "/api/runs", Some(new_token), None);
    assert_eq!(status, 401);

    // Valid: a second token and a schedule that fires.
    let text = std::fs::read_to_string(s.path("lifeboatd.toml")).unwrap();
    let text = text
        .replace(&format!("[\"{TOKEN}\"]"), &format!("[\"{TOKEN}\", \"{new_token}\"]"))
        .replace(YEARLY, "every 1s");
    std::fs::write(s.path("lifeboatd.toml"), text).unwrap();
    s.signal("HUP");
    wait_for("the new token to be accepted", Duration::from_secs(30), || {
        (http(s.port, "GET", "/api/runs", Some(new_token), None).0 == 200).then_some(())
    });
    wait_for("a scheduled backup on the reloaded schedule", Duration::from_secs(60), || {
        (completed_runs(&s, "auth", "schedule") >= 1).then_some(())
    });
    assert!(s.log().contains("configuration reloaded"), "{}", s.log());

    // Invalid: refused with its problems, the running configuration stays.
    let good = std::fs::read_to_string(s.path("lifeboatd.toml")).unwrap();
    std::fs::write(
        s.path("lifeboatd.toml"),
        good.replace("schedule = \"every 1s\"", "schedule = \"every soon\""),
    )
    .unwrap();
    s.signal("HUP");
    let log = wait_for("the reload to be refused", Duration::from_secs(30), || {
        let log = s.log();
        log.contains("configuration not reloaded").then_some(log)
    });
    assert!(log.contains("every soon"), "the refusal names the problem: {log}");
    let (status, _) = http(s.port, "GET", "/api/runs", Some(new_token), None);
    assert_eq!(status, 200, "the running configuration was kept");
    let before = completed_runs(&s, "auth", "schedule");
    wait_for("scheduled backups to go on", Duration::from_secs(60), || {
        (completed_runs(&s, "auth", "schedule") > before).then_some(())
    });
}

#[test]
fn idle_connections_beyond_the_cap_cannot_stop_scheduled_backups_or_livez() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let mut s = Service::configured(
        "max_connections = 16\nheader_timeout = \"2s\"",
        &job("auth", "sqlite", &db, "every 1s", ""),
    );
    // Few descriptors, both limits, so the connection cap and not a raised limit protects it.
    let mut shell = Command::new("sh");
    shell.arg("-c").arg("ulimit -n 256 && exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_lifeboatd"));
    let log = std::fs::File::create(s.path("lifeboatd.log")).unwrap();
    s.start_with(shell, log.into());
    wait_for("a first scheduled backup", Duration::from_secs(60), || {
        (completed_runs(&s, "auth", "schedule") >= 1).then_some(())
    });
    // More idle connections than the service has descriptors, held open by the client.
    let idle: Vec<TcpStream> =
        (0..400).map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap()).collect();
    let (status, body) = http(s.port, "GET", "/livez", None, None);
    assert_eq!(status, 200, "/livez under a flood of idle connections: {body}");
    let before = completed_runs(&s, "auth", "schedule");
    wait_for("scheduled backups during the flood", Duration::from_secs(60), || {
        (completed_runs(&s, "auth", "schedule") >= before + 2).then_some(())
    });
    let failed = get_json(s.port, "/api/runs?job=auth&status=failed");
    assert_eq!(failed["count"], 0, "{failed}");
    drop(idle);
    let status = s.stop_within(Duration::from_secs(60));
    assert!(status.success(), "{status}\n{}", s.log());
}

#[test]
fn bad_paths_queries_and_bodies_answer_in_json() {
    let db = tempfile::tempdir().unwrap();
    make_sqlite_db(&db.path().join("auth.db"), 1);
    let s = Service::new("", &job("auth", "sqlite", &db.path().join("auth.db"), YEARLY, ""));
    for (method, path, expected) in [
        ("GET", "/api/runs/not-a-number", 400),
        ("GET", "/api/runs?limit=many", 400),
        ("DELETE", "/api/runs", 405),
        ("GET", "/no/such/endpoint", 404),
    ] {
        let (status, text) = http(s.port, method, path, Some(TOKEN), None);
        assert_eq!(status, expected, "{method} {path}: {text}");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path} is not JSON ({e}): {text}"));
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        assert!(v["hint"].is_string(), "{v}");
    }
    // A body announced too large is refused before any of it is read (none is sent here).
    let mut stream = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        stream,
        "POST /api/backups HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("413 not JSON ({e}): {raw}"));
    assert!(v["hint"].as_str().unwrap().contains("bytes"), "{v}");
}

#[test]
fn under_systemd_it_notifies_ready_pings_the_watchdog_and_says_stopping() {
    let sock_dir = tempfile::tempdir().unwrap();
    let path = sock_dir.path().join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let db = tempfile::tempdir().unwrap();
    make_sqlite_db(&db.path().join("auth.db"), 1);
    let mut s =
        Service::configured("", &job("auth", "sqlite", &db.path().join("auth.db"), YEARLY, ""));
    s.env = vec![
        ("NOTIFY_SOCKET".into(), path.display().to_string()),
        ("WATCHDOG_USEC".into(), "1000000".into()),
    ];
    s.start();
    let next = || {
        let mut buf = [0; 256];
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no sd_notify message ({e}): {}", s.log()));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m == "WATCHDOG=1") {
        seen.push(next());
    }
    assert!(seen.contains(&"READY=1".to_string()), "{seen:?}");
    s.signal("TERM");
    let mut buf = [0; 256];
    let stopping = (0..20).any(|_| {
        let n = socket.recv(&mut buf).unwrap();
        &buf[..n] == b"STOPPING=1"
    });
    assert!(stopping, "no STOPPING=1");
    let mut child = s.child.take().unwrap();
    let status =
        wait_for("lifeboatd to exit", Duration::from_secs(60), || child.try_wait().unwrap());
    assert!(status.success(), "{status}");
}

/// `password_file` makes lifeboatd create and use an encrypted repository; the CLI reads it
/// with the same file; the password shows nowhere; without it the service refuses to start
/// naming the key; both keys at once are refused by `--check`.
#[test]
fn a_password_file_gives_an_encrypted_repository_and_never_shows_the_password() {
    const SECRET: &str = "daemon-secret-7c41e0b2";
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let jobs = job("auth", "sqlite", &db, YEARLY, "");
    let mut s = Service::configured("", &jobs);
    let pw = s.path("repository-password");
    std::fs::write(&pw, format!("{SECRET}\n")).unwrap();
    s.configure(&format!("password_file = \"{}\"", pw.display()), &jobs);
    s.start();

    let (status, run) = post_json(s.port, "/api/backups", "{\"job\":\"auth\"}");
    assert_eq!(status, 202, "{run}");
    let run = s.wait_run_finished(run["run_id"].as_i64().unwrap());
    assert_eq!(run["status"], "completed", "{run}");
    let config: Value =
        serde_json::from_slice(&std::fs::read(Path::new(&s.repo()).join("config")).unwrap())
            .unwrap();
    assert_eq!(config["encryption"], "xchacha20-poly1305", "{config}");
    let (status, shown) = http(s.port, "GET", "/api/config", Some(TOKEN), None);
    assert_eq!(status, 200, "{shown}");
    assert!(!shown.contains(SECRET), "the password shows in /api/config: {shown}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["encrypted"], true, "{shown}");
    assert_eq!(shown["password_file"], pw.display().to_string(), "{shown}");
    assert!(s.stop().success(), "{}", s.log());

    let listed =
        ok(lifeboat(&s.repo()).arg("--password-file").arg(&pw).args(["snapshots", "--json"]));
    let listed: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "auth");
    let log = s.log();
    assert!(log.contains("creating it"), "{log}");
    assert!(!log.contains(SECRET), "the password is in the log: {log}");

    // Without the password: the service does not start, and says which key is missing.
    let lifeboatd = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lifeboatd"))
            .arg("--config")
            .arg(s.path("lifeboatd.toml"))
            .args(extra)
            .env_remove("LIFEBOAT_TOKENS")
            .env_remove("LIFEBOAT_REPO")
            .output()
            .unwrap()
    };
    s.configure("", &jobs);
    let out = lifeboatd(&[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is encrypted and the configuration gives no password"), "{stderr}");
    assert!(stderr.contains("hint: ") && stderr.contains("password_file"), "{stderr}");

    // Both keys: refused before anything starts.
    let both = format!("password_file = \"{}\"\npassword_command = \"cat x\"", pw.display());
    s.configure(&both, &jobs);
    let out = lifeboatd(&["--check"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 6: `password_file` and `password_command` both give"),
        "{stderr}"
    );
}

/// Runs the shell `command` in a pseudo-terminal (util-linux `script`), as a person at a
/// terminal would; returns what the terminal showed.
fn on_a_terminal(command: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("LIFEBOAT_LOG_FORMAT")
        .env("LIFEBOAT_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `script` (util-linux, installed by scripts/test.sh): {e}")
        });
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The log line of `shown` that says `needle` (a terminal's progress bars also move the
/// cursor with escape codes: only the log line is looked at).
fn line_with<'a>(shown: &'a str, needle: &str) -> &'a str {
    shown
        .split(['\n', '\r'])
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}: {shown:?}"))
}

/// The lines of `text` that are JSON objects, parsed; every other non-empty line fails the
/// test unless it starts with one of `allowed`.
fn json_lines(text: &str, allowed: &[&str]) -> Vec<Value> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !allowed.iter().any(|a| l.starts_with(a)))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

#[test]
fn logs_are_coloured_only_on_a_terminal_without_no_color_and_json_on_request() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    // A service that logs its state folder, then stops: its password file is missing.
    let s = Service::configured(
        &format!("password_file = \"{}\"", data.path().join("missing").display()),
        &job("auth", "sqlite", &db, YEARLY, ""),
    );
    let lifeboatd = format!(
        "{} --config {}",
        env!("CARGO_BIN_EXE_lifeboatd"),
        s.path("lifeboatd.toml").display()
    );
    let shown = on_a_terminal(&lifeboatd, &[]);
    let line = line_with(&shown, "state folder in use");
    assert!(line.contains("\u{1b}["), "no colour on a terminal: {line:?}");
    let shown = on_a_terminal(&lifeboatd, &[("NO_COLOR", "1")]);
    let line = line_with(&shown, "state folder in use");
    assert!(!line.contains('\u{1b}'), "colour with NO_COLOR set: {line:?}");

    // JSON, from the flag or the environment: one object per line, never coloured.
    for (command, env) in [
        (format!("{lifeboatd} --log-format json"), vec![]),
        (lifeboatd.clone(), vec![("LIFEBOAT_LOG_FORMAT", "json")]),
    ] {
        let shown = on_a_terminal(&command, &env);
        assert!(!shown.contains('\u{1b}'), "colour in JSON logs: {shown:?}");
        let lines = json_lines(&shown, &["error:", "hint:"]);
        let state = lines
            .iter()
            .find(|l| l["message"] == "state folder in use")
            .unwrap_or_else(|| panic!("no state folder line: {shown}"));
        assert_eq!(state["level"], "INFO", "{state}");
        assert_eq!(state["state_dir"], s.path("state").display().to_string(), "{state}");
        assert!(state["timestamp"].as_str().unwrap().starts_with("20"), "{state}");
        assert!(shown.contains("error: cannot read the repository password"), "{shown}");
    }

    // The CLI: the same flag and the same colour rules.
    let repo = data.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let out = lifeboat(&repo)
        .args(["--log-format", "json", "-v", "backup", "sqlite"])
        .arg(&db)
        .env_remove("LIFEBOAT_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let saved = json_lines(&stderr, &["backup auth:"]);
    let saved = saved
        .iter()
        .find(|l| l["message"] == "snapshot saved")
        .unwrap_or_else(|| panic!("no `snapshot saved` line: {stderr}"));
    assert_eq!(saved["name"], "auth", "{saved}");
    let cli = format!(
        "{} --repo {repo} -v backup sqlite {}",
        env!("CARGO_BIN_EXE_lifeboat"),
        db.display()
    );
    let shown = on_a_terminal(&cli, &[]);
    let line = line_with(&shown, "snapshot saved");
    assert!(line.contains("\u{1b}["), "no colour from the CLI on a terminal: {line:?}");
    let shown = on_a_terminal(&cli, &[("NO_COLOR", "1")]);
    let line = line_with(&shown, "snapshot saved");
    assert!(!line.contains('\u{1b}'), "CLI colour with NO_COLOR set: {line:?}");
}

#[test]
fn the_running_service_logs_json_lines_when_asked() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let mut s = Service::configured("", &job("auth", "sqlite", &db, YEARLY, ""));
    s.env = vec![("LIFEBOAT_LOG_FORMAT".into(), "json".into())];
    s.start();
    s.backup_ok("auth");
    assert!(s.stop().success(), "{}", s.log());
    let lines = json_lines(&s.log(), &[]);
    let started = lines
        .iter()
        .find(|l| l["message"] == "backup started")
        .unwrap_or_else(|| panic!("no `backup started` line: {}", s.log()));
    assert_eq!((&started["job"], &started["trigger"]), (&"auth".into(), &"api".into()));
    assert!(lines.iter().any(|l| l["message"] == "lifeboatd stopped"), "{}", s.log());
}

#[test]
fn health_is_open_with_only_its_status_and_gives_details_and_next_runs_with_a_token() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    // 03:00 in Berlin every day; drills Mondays at 04:00 in Berlin.
    let s = Service::new(
        "timezone = \"Europe/Berlin\"",
        &job("auth", "sqlite", &db, "0 3 * * *", "drill = \"0 4 * * 1\""),
    );
    s.backup_ok("auth");
    let (status, body) = http(s.port, "GET", "/health", None, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), serde_json::json!({"status": "ok"}));
    // A wrong token is refused, not ignored.
    let (status, body) = http(s.port, "GET", "/health", Some("wrong-token-0123456789abcdef"), None);
    assert_eq!(status, 401, "{body}");
    let health = health_with(s.port, 200);
    let auth = &health["backups"]["auth"];
    assert_eq!(auth["status"], "ok", "{health}");
    let at = |key: &str| -> DateTime<Utc> {
        auth[key].as_str().unwrap_or_else(|| panic!("no {key}: {health}")).parse().unwrap()
    };
    let (next, drill) = (at("next_run"), at("next_drill"));
    let now = Utc::now();
    // 03:00 in Berlin is 01:00 or 02:00 UTC (winter or summer time), within a day.
    assert!(next > now && next - now <= chrono::Duration::days(1), "{next}");
    assert!(
        ["01:00:00", "02:00:00"].contains(&next.format("%H:%M:%S").to_string().as_str()),
        "{next}"
    );
    assert!(drill > now && drill - now <= chrono::Duration::days(7), "{drill}");
    assert!(
        ["02:00:00", "03:00:00"].contains(&drill.format("%H:%M:%S").to_string().as_str()),
        "{drill}"
    );
    assert_eq!(drill.format("%a").to_string(), "Mon", "{drill}");
    let config = get_json(s.port, "/api/config");
    assert_eq!(config_job(&config, "auth")["timezone"], "Europe/Berlin", "{config}");

    // `open = []` closes /health: a token is needed.
    let closed = Service::new("open = []", &job("auth", "sqlite", &db, YEARLY, ""));
    let (status, body) = http(closed.port, "GET", "/health", None, None);
    assert_eq!(status, 401, "{body}");
    health_with(closed.port, 200);
    let (status, _) = http(closed.port, "GET", "/livez", Some("wrong-token"), None);
    assert_eq!(status, 200, "/livez looks at no token");
}

/// One request a webhook sink received.
#[derive(Debug, Clone)]
struct Delivery {
    path: String,
    /// Header names in lower case.
    headers: std::collections::BTreeMap<String, String>,
    raw: Vec<u8>,
    body: Value,
}

/// A local HTTP server that answers every POST with 200 and passes each request on.
fn webhook_sink() -> (u16, mpsc::Receiver<Delivery>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                continue;
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
            let mut headers = std::collections::BTreeMap::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
                }
            }
            let length = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut raw = vec![0; length];
            let _ = reader.read_exact(&mut raw);
            let _ =
                write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
            let _ = tx.send(Delivery { path, headers, raw, body });
        }
    });
    (port, rx)
}

/// The event a delivery carries, whatever its format.
fn event_of(d: &Delivery) -> String {
    d.headers.get("x-lifeboat-event").cloned().unwrap_or_default()
}

/// Checks the HMAC-SHA256 signature of a delivery: `sha256=` and the hex HMAC of the
/// timestamp header, `.`, and the body, keyed with `secret`; the timestamp is recent.
fn check_signature(d: &Delivery, secret: &str) {
    use hmac::{KeyInit, Mac};
    let timestamp =
        d.headers.get("x-lifeboat-timestamp").unwrap_or_else(|| panic!("no timestamp: {d:?}"));
    let seconds: i64 = timestamp.parse().unwrap();
    assert!((Utc::now().timestamp() - seconds).abs() < 300, "old timestamp {timestamp}");
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&d.raw);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(d.headers.get("x-lifeboat-signature"), Some(&expected), "{d:?}");
}

#[test]
fn webhooks_in_each_format_are_signed_and_sent_once_per_state_change() {
    const SECRET: &str = "webhook-secret-0123456789";
    let (port, deliveries) = webhook_sink();
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("billing.db");
    let hook =
        |path: &str, rest: &str| format!("{{ url = \"http://127.0.0.1:{port}/{path}\"{rest} }}");
    let s = Service::new(
        &format!(
            "stale_check = \"1s\"\nwebhooks = [\n  {},\n  {},\n  {},\n]",
            hook("generic", &format!(", secret = \"{SECRET}\"")),
            hook("slack", ", format = \"slack\""),
            hook(
                "pagerduty",
                &format!(
                    ", format = \"pagerduty\", routing_key = \"R0UT1NG-KEY\", secret = \"{SECRET}\""
                )
            ),
        ),
        &job("billing", "sqlite", &db, "every 1s", "rpo = \"4s\""),
    );
    let mut seen: Vec<Delivery> = Vec::new();
    let mut collect_until = |what: &str, done: &dyn Fn(&[Delivery]) -> bool| {
        let start = Instant::now();
        while !done(&seen) {
            let left = Duration::from_secs(120).saturating_sub(start.elapsed());
            let d = deliveries
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what} in time; got {seen:#?}; log:\n{}", s.log()));
            seen.push(d);
        }
        seen.clone()
    };
    let count =
        |seen: &[Delivery], event: &str| seen.iter().filter(|d| event_of(d) == event).count();
    // Failing (the database does not exist yet), then stale past its RPO, in all three.
    collect_until("backup.failed and stale", &|seen| {
        count(seen, "backup.failed") >= 3 && count(seen, "stale") >= 3
    });
    make_sqlite_db(&db, 1);
    collect_until("recovered", &|seen| count(seen, "recovered") >= 3);
    // Backups and staleness checks go on every second: nothing more may come.
    std::thread::sleep(Duration::from_secs(5));
    let mut all = collect_until("", &|_| true);
    all.extend(deliveries.try_iter());
    let by_path =
        |path: &str| -> Vec<Delivery> { all.iter().filter(|d| d.path == path).cloned().collect() };
    for path in ["/generic", "/slack", "/pagerduty"] {
        let events: Vec<String> = by_path(path).iter().map(event_of).collect();
        assert_eq!(
            events,
            ["backup.failed", "stale", "recovered"],
            "{path}: one event per state change"
        );
        for d in by_path(path) {
            assert_eq!(d.headers["user-agent"], format!("lifeboatd/{}", env!("CARGO_PKG_VERSION")));
            assert!(d.headers["content-type"].starts_with("application/json"), "{d:?}");
        }
    }

    // generic: the runbook's {event, message, timestamp, source} plus ours, signed.
    let generic = by_path("/generic");
    for d in &generic {
        check_signature(d, SECRET);
        let keys: Vec<&String> = d.body.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "dedup_key",
                "event",
                "job",
                "message",
                "severity",
                "snapshot",
                "source",
                "timestamp",
                "version"
            ],
            "{}",
            d.body
        );
        assert_eq!(d.body["event"], event_of(d));
        assert_eq!(d.body["job"], "billing");
        assert!(d.body["source"].as_str().unwrap().starts_with("lifeboatd@"), "{}", d.body);
        DateTime::parse_from_rfc3339(d.body["timestamp"].as_str().unwrap()).unwrap();
        assert_eq!(d.body["dedup_key"], format!("{}/billing", d.body["source"].as_str().unwrap()));
        assert_eq!(d.body["version"], env!("CARGO_PKG_VERSION"));
    }
    let (failed, stale, recovered) = (&generic[0].body, &generic[1].body, &generic[2].body);
    assert!(failed["message"].as_str().unwrap().contains("billing.db"), "{failed}");
    assert_eq!((&failed["severity"], &failed["snapshot"]), (&"critical".into(), &Value::Null));
    assert!(stale["message"].as_str().unwrap().contains("stale"), "{stale}");
    assert_eq!(stale["severity"], "critical");
    assert_eq!(recovered["severity"], "info");
    let snapshot = recovered["snapshot"].as_str().unwrap();
    assert_eq!(snapshot.len(), 64, "{recovered}");
    assert!(recovered["message"].as_str().unwrap().contains("backs up again"), "{recovered}");

    // slack: text and blocks, unsigned (no secret).
    let slack = by_path("/slack");
    for (d, (mark, event)) in slack.iter().zip([
        (":red_circle:", "backup.failed"),
        (":red_circle:", "stale"),
        (":white_check_mark:", "recovered"),
    ]) {
        assert!(!d.headers.contains_key("x-lifeboat-signature"), "{d:?}");
        let text = d.body["text"].as_str().unwrap();
        assert!(text.starts_with(&format!("{mark} {event} billing: ")), "{text}");
        assert_eq!(d.body["blocks"][0]["type"], "section");
        assert_eq!(d.body["blocks"][0]["text"]["type"], "mrkdwn");
        assert!(d.body["blocks"][0]["text"]["text"].as_str().unwrap().contains("`billing`"));
        assert_eq!(d.body["blocks"][1]["type"], "context");
        assert_eq!(d.body.as_object().unwrap().len(), 2, "{}", d.body);
    }
    assert!(
        slack[2].body["blocks"][1]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .contains(&snapshot[..12])
    );

    // pagerduty: Events API v2, one dedup key for the job, resolved on recovery, signed.
    let pd = by_path("/pagerduty");
    for d in &pd {
        check_signature(d, SECRET);
        assert_eq!(d.body["routing_key"], "R0UT1NG-KEY");
        assert_eq!(d.body["dedup_key"], failed["dedup_key"], "{}", d.body);
    }
    for (d, generic) in pd.iter().zip(&generic).take(2) {
        assert_eq!(d.body["event_action"], "trigger");
        let payload = &d.body["payload"];
        assert_eq!(payload["summary"], generic.body["message"]);
        assert_eq!(payload["source"], generic.body["source"]);
        assert_eq!(payload["severity"], "critical");
        assert_eq!(payload["timestamp"], generic.body["timestamp"]);
        assert_eq!(payload["component"], "billing");
        assert_eq!(payload["class"], event_of(d));
        assert_eq!(d.body["client"], "lifeboatd");
    }
    assert_eq!(pd[2].body["event_action"], "resolve");
    assert_eq!(pd[2].body.as_object().unwrap().len(), 3, "{}", pd[2].body);
}

#[test]
fn metrics_follow_prometheus_conventions_and_feed_the_grafana_dashboard() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let jobs = job(
        "auth",
        "sqlite",
        &db,
        YEARLY,
        "verify = \"read-data\"\ndrill = \"every 1s\"\nrto = \"10m\"\nrpo = \"1h\"",
    ) + &job("broken", "sqlite", &data.path().join("missing.db"), YEARLY, "");
    let s = Service::new("open = [\"metrics\"]", &jobs);
    s.backup_ok("auth");
    assert_eq!(s.backup_now("broken")["status"], "failed");
    wait_for("a passing drill", Duration::from_secs(120), || {
        let runs = get_json(s.port, "/api/runs?job=auth&operation=drill&status=completed");
        (runs["count"].as_u64().unwrap() >= 1).then_some(())
    });

    let (status, text) = http(s.port, "GET", "/metrics", None, None);
    assert_eq!(status, 200, "{text}");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("/metrics does not parse as Prometheus text ({e}):\n{text}"));
    let value = |metric: &str, labels: &[(&str, &str)]| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no {metric} {labels:?} in /metrics:\n{text}"));
        match sample.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{metric}: unexpected {other:?}"),
        }
    };
    let auth = |metric: &str| value(metric, &[("name", "auth")]);
    let now = Utc::now().timestamp() as f64;
    for sample in &scrape.samples {
        assert!(sample.metric.starts_with("lifeboat_"), "{}", sample.metric);
        assert!(sample.labels.get("job").is_none(), "a `job` label: {sample:?}");
    }
    // Every per-job family is labelled `name`.
    for sample in scrape.samples.iter().filter(|s| {
        !s.metric.starts_with("lifeboat_repository")
            && ![
                "lifeboat_runs_in_progress",
                "lifeboat_panics_total",
                "lifeboat_build_info",
                "lifeboat_start_timestamp_seconds",
            ]
            .contains(&s.metric.as_str())
    }) {
        assert!(sample.labels.get("name").is_some(), "no `name` label: {sample:?}");
    }
    let recent =
        |t: f64, what: &str| assert!((now - t).abs() < 300.0, "{what}: {t} is not now ({now})");
    recent(auth("lifeboat_last_success_timestamp_seconds"), "last success");
    recent(auth("lifeboat_last_verify_success_timestamp_seconds"), "last verification");
    recent(auth("lifeboat_last_drill_success_timestamp_seconds"), "last drill");
    assert!(auth("lifeboat_last_backup_duration_seconds") > 0.0);
    assert!(auth("lifeboat_last_verify_duration_seconds") >= 0.0);
    assert!(auth("lifeboat_last_drill_rto_seconds") > 0.0);
    assert_eq!(auth("lifeboat_rto_objective_seconds"), 600.0);
    assert_eq!(auth("lifeboat_rpo_objective_seconds"), 3600.0);
    assert!(auth("lifeboat_next_run_timestamp_seconds") > now);
    assert!(auth("lifeboat_last_size_bytes") > 0.0);
    assert_eq!(auth("lifeboat_snapshots"), 1.0);
    assert_eq!(auth("lifeboat_backups_total"), 1.0);
    assert_eq!(auth("lifeboat_last_run_failed"), 0.0);
    assert_eq!(value("lifeboat_last_run_failed", &[("name", "broken")]), 1.0);
    assert_eq!(
        value(
            "lifeboat_failures_total",
            &[("name", "broken"), ("operation", "backup"), ("reason", "error")]
        ),
        1.0
    );
    assert_eq!(value("lifeboat_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert_eq!(value("lifeboat_repository_up", &[]), 1.0);
    assert!(value("lifeboat_repository_size_bytes", &[]) > 0.0);
    assert_eq!(value("lifeboat_panics_total", &[]), 0.0);

    // Every metric the shipped Grafana dashboard reads is served. The WAL archive's has
    // samples only for jobs with base backups of a PostgreSQL cluster, which this test has
    // not; its name is checked against the source instead.
    let dashboard: Value =
        serde_json::from_str(include_str!("../docs/grafana-dashboard.json")).unwrap();
    let mut read = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("lifeboat_") {
                let name: String =
                    rest[i..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                rest = &rest[i + name.len()..];
                read.insert(name);
            }
        }
    }
    assert!(read.len() >= 20, "the dashboard reads few metrics: {read:?}");
    const ONLY_WITH_BASE_BACKUPS: &str = "lifeboat_wal_last_archived_timestamp_seconds";
    let source = include_str!("../crates/daemon/src/metrics.rs");
    assert!(source.contains("\"wal_last_archived_timestamp\""), "the WAL metric was renamed");
    for name in read.iter().filter(|n| *n != ONLY_WITH_BASE_BACKUPS) {
        assert!(
            scrape.docs.contains_key(name),
            "the dashboard reads {name}, which /metrics lacks:\n{text}"
        );
    }

    // OpenMetrics for scrapers that ask for it.
    let mut stream = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(
        raw.to_ascii_lowercase().contains("content-type: application/openmetrics-text"),
        "{raw}"
    );
    assert!(raw.contains("# UNIT lifeboat_last_backup_duration_seconds seconds"), "{raw}");
    assert!(raw.trim_end().ends_with("# EOF"), "{raw}");
}

/// An HTTP/1.1 request with the headers given: (status, headers in lower case, body).
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no answer: {raw:?}"));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v == "chunked");
    (status, headers, if chunked { dechunk(rest) } else { rest.to_string() })
}

fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Headless Chromium: the DOM of `url` once loaded, serialized (`--dump-dom`), and with
/// `screenshot` a PNG of it. A missing Chromium fails the test saying what to install.
fn chromium(url: &str, profile: &Path, screenshot: Option<(&Path, &str)>) -> String {
    let out = profile.with_extension("dom.html");
    let mut command = Command::new("chromium");
    command
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run"])
        .args(["--disable-dev-shm-usage", "--hide-scrollbars", "--virtual-time-budget=5000"])
        .arg(format!("--user-data-dir={}", profile.display()));
    match screenshot {
        Some((png, size)) => {
            command.arg(format!("--screenshot={}", png.display()));
            command.arg(format!("--window-size={size}"));
        }
        None => {
            command.arg("--dump-dom");
        }
    }
    let mut child = command
        .arg(url)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run chromium ({e}): the status page test needs a headless browser; install Debian's `chromium` package (apt-get install chromium; scripts/test.sh does)"
            )
        });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish loading {url} within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "chromium failed on {url}: {status}");
    std::fs::read_to_string(&out).unwrap()
}

/// The part of `dom` from the element carrying `marker` to the next `end`.
fn part<'a>(dom: &'a str, marker: &str, end: &str) -> &'a str {
    let start = dom.find(marker).unwrap_or_else(|| panic!("no {marker} in the page:\n{dom}"));
    let rest = &dom[start..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

#[test]
fn the_status_page_shows_jobs_a_degraded_job_charts_and_alerts_in_chromium() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    // A job whose file is missing, with markup in its path, so in its error.
    let missing = data.path().join("<script>alert(1)</script>.db");
    let jobs = job("billing", "sqlite", &missing, YEARLY, "")
        + &job("auth", "sqlite", &db, YEARLY, "drill = \"every 2s\"\nrto = \"10m\"");
    let s = Service::new("open = [\"health\", \"status\"]", &jobs);
    for _ in 0..3 {
        s.backup_ok("auth");
    }
    for _ in 0..2 {
        assert_eq!(s.backup_now("billing")["status"], "failed");
    }
    let drill = wait_for("a completed drill of auth", Duration::from_secs(120), || {
        let runs = get_json(s.port, "/api/runs?job=auth&operation=drill&status=completed&limit=1");
        runs["runs"].as_array().unwrap().first().cloned()
    });
    assert!(drill["rto_ms"].is_u64(), "{drill}");
    let health = health_with(s.port, 503);

    let profiles = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/", s.port);
    let dom = chromium(&url, &profiles.path().join("open"), None);
    // Nothing the jobs or their errors carry became markup.
    assert!(!dom.contains("<script"), "{dom}");
    assert!(dom.contains("<title>lifeboatd: degraded</title>"), "{dom}");
    let overall = part(&dom, "id=\"overall\"", "</p>");
    assert!(overall.contains("Degraded"), "{overall}");
    assert!(dom.contains("read-only, open to anyone"), "{dom}");

    // The jobs, each in a row with its status in words.
    let billing = part(&dom, "<tr class=\"job attention\" data-job=\"billing\"", "</tr>");
    assert!(billing.contains(">degraded</span> last backup failed"), "{billing}");
    assert!(billing.contains("&lt;script&gt;alert(1)&lt;/script&gt;.db"), "{billing}");
    let auth = part(&dom, "<tr class=\"job\" data-job=\"auth\"", "</tr>");
    assert!(auth.contains(">ok</span> fresh"), "{auth}");
    assert!(auth.contains("completed <time"), "{auth}");
    assert!(auth.contains("of 10 min objective") && auth.contains("RTO <span"), "{auth}");
    assert!(auth.contains("<meter"), "the RPO gauge: {auth}");
    // The next backup as /health gives it (the same code computes both).
    let next: DateTime<Utc> =
        health["backups"]["auth"]["next_run"].as_str().unwrap().parse().unwrap();
    let exact = next.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    assert!(auth.contains(&exact), "next run {exact}: {auth}");
    assert!(auth.matches("<time").count() >= 4, "last backup and drill, next ones: {auth}");

    // The open alerts.
    let alerts = part(&dom, "id=\"alerts\"", "</section>");
    assert!(alerts.contains("<strong>billing</strong>: backup failing"), "{alerts}");
    assert!(alerts.contains("&lt;script&gt;"), "{alerts}");
    assert!(!alerts.contains("<strong>auth</strong>"), "{alerts}");

    // The charts: one bar (or failure mark) per run, in each of two charts per job.
    let charts = part(&dom, "<article class=\"job-charts\" data-job=\"auth\"", "</article>");
    assert_eq!(charts.matches("<svg").count(), 2, "{charts}");
    assert_eq!(charts.matches("data-points=\"3\"").count(), 2, "{charts}");
    assert_eq!(charts.matches("<rect class=\"size\"").count(), 3, "{charts}");
    assert_eq!(charts.matches("<rect class=\"stored\"").count(), 3, "{charts}");
    assert_eq!(charts.matches("<rect class=\"duration\"").count(), 3, "{charts}");
    let sizes: Vec<u64> = charts
        .split("data-size=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
        .collect();
    assert_eq!(sizes.len(), 3);
    assert!(sizes.iter().all(|&n| n >= 1024 * 1024), "1 MiB database: {sizes:?}");
    let failed = part(&dom, "<article class=\"job-charts\" data-job=\"billing\"", "</article>");
    assert_eq!(failed.matches("<rect class=\"fail\"").count(), 4, "2 runs, 2 charts: {failed}");

    // What a person sees, wide and narrow (one column), as pictures.
    for (name, size) in [("wide", "1280,900"), ("narrow", "390,1600")] {
        let png = s.path(&format!("status-{name}.png"));
        chromium(&url, &profiles.path().join(name), Some((&png, size)));
        let bytes = std::fs::read(&png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{name}: {}", bytes.len());
    }
}

#[test]
fn the_status_page_needs_a_sign_in_whose_cookie_holds_no_token() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let s = Service::new("", &job("auth", "sqlite", &db, YEARLY, ""));
    s.backup_ok("auth");
    let profiles = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/", s.port);

    // Not open, no token, no cookie: the login form and no job data, in the browser too.
    let dom = chromium(&url, &profiles.path().join("anonymous"), None);
    assert!(dom.contains("<form id=\"login\" method=\"post\" action=\"/\">"), "{dom}");
    assert!(dom.contains("name=\"token\" type=\"password\""), "{dom}");
    assert!(!dom.contains("auth") && !dom.contains("data-job"), "{dom}");
    let (status, headers, body) = request(s.port, "GET", "/", &[], "");
    assert_eq!(status, 401, "{body}");
    assert_eq!(header_of(&headers, "content-type"), Some("text/html; charset=utf-8"));
    assert!(header_of(&headers, "content-security-policy").unwrap().contains("default-src 'none'"));
    assert!(!body.contains("auth"), "{body}");

    // A wrong token: the form again, saying so, and no cookie.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let (status, headers, body) =
        request(s.port, "POST", "/", &form, "token=wrong-token-0123456789");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("not one of the configured tokens") && body.contains("id=\"login\""));
    assert!(header_of(&headers, "set-cookie").is_none(), "{headers:?}");

    // The right one: a session cookie, HttpOnly and SameSite=Strict, holding no token.
    let (status, headers, body) = request(s.port, "POST", "/", &form, &format!("token={TOKEN}"));
    assert_eq!(status, 303, "{body}");
    assert_eq!(header_of(&headers, "location"), Some("/"));
    let set = header_of(&headers, "set-cookie").unwrap().to_string();
    let attributes: Vec<&str> = set.split(';').map(str::trim).collect();
    for wanted in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(attributes.contains(&wanted), "{wanted} missing: {set}");
    }
    assert!(!attributes.contains(&"Secure"), "plain HTTP: no Secure, or it would never be sent");
    assert!(!set.contains(TOKEN) && !set.contains(&hex::encode(TOKEN)), "{set}");
    let session = attributes[0].to_string();
    assert!(session.starts_with("lifeboat_session="), "{set}");
    // Behind a TLS proxy the cookie is Secure.
    let proxied = [form[0], ("X-Forwarded-Proto", "https")];
    let (_, headers, _) = request(s.port, "POST", "/", &proxied, &format!("token={TOKEN}"));
    assert!(header_of(&headers, "set-cookie").unwrap().contains("; Secure"), "{headers:?}");

    // With the cookie: the page. It opens the page only, not the API.
    let (status, _, page) = request(s.port, "GET", "/", &[("Cookie", &session)], "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-job=\"auth\"") && page.contains(">Sign out</button>"), "{page}");
    let (status, _, body) = request(s.port, "GET", "/api/runs", &[("Cookie", &session)], "");
    assert_eq!(status, 401, "{body}");
    // The last character changed (to one it is not: a `0` stays a `0` one time in sixteen).
    let last = if session.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &session[..session.len() - 1]);
    let (status, _, body) = request(s.port, "GET", "/", &[("Cookie", &tampered)], "");
    assert!(status == 401 && body.contains("id=\"login\""), "{status} {body}");
    // A bearer token reads it as well; a wrong one is refused as everywhere.
    let (status, _, _) =
        request(s.port, "GET", "/", &[("Authorization", &format!("Bearer {TOKEN}"))], "");
    assert_eq!(status, 200);
    let wrong = [("Authorization", "Bearer wrong-token-0123456789")];
    assert_eq!(request(s.port, "GET", "/", &wrong, "").0, 401);
    // Signing out clears the cookie.
    let (status, headers, _) = request(s.port, "POST", "/", &form, "action=sign-out");
    assert_eq!(status, 303);
    assert!(header_of(&headers, "set-cookie").unwrap().contains("Max-Age=0"), "{headers:?}");

    // The whole flow in the browser: a page of the same site submits the form, as a person
    // would, and the browser follows to the page with its cookie.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let helper = listener.local_addr().unwrap().port();
    let sign_in = format!(
        "<!doctype html><form method=\"post\" action=\"http://127.0.0.1:{}/\"><input name=\"token\" value=\"{TOKEN}\"></form><script>document.forms[0].submit()</script>",
        s.port
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sign_in}",
                sign_in.len()
            );
        }
    });
    let dom =
        chromium(&format!("http://127.0.0.1:{helper}/"), &profiles.path().join("login"), None);
    assert!(dom.contains("data-job=\"auth\"") && dom.contains(">Sign out</button>"), "{dom}");
    assert!(!dom.contains("id=\"login\""), "{dom}");
}

/// Whether `value` has the shape `schema` gives (the parts of OpenAPI 3.0's schema language
/// docs/openapi.json uses: `$ref`, `type`, `nullable`, `enum`, `required`, `properties`,
/// `additionalProperties`, `items`, `oneOf`, `allOf`); the problems found, by JSON path.
fn shape_problems(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        assert!(target.is_object(), "{at}: {reference} is not in components/schemas");
        return shape_problems(doc, target, value, at);
    }
    if let Some(all) = schema["allOf"].as_array() {
        return all.iter().flat_map(|s| shape_problems(doc, s, value, at)).collect();
    }
    if let Some(any) = schema["oneOf"].as_array() {
        let fits = any.iter().filter(|s| shape_problems(doc, s, value, at).is_empty()).count();
        return if fits >= 1 { vec![] } else { vec![format!("{at}: fits none of oneOf: {value}")] };
    }
    if value.is_null() {
        return if schema["nullable"] == true || schema.get("type").is_none() {
            vec![]
        } else {
            vec![format!("{at}: null, but not nullable")]
        };
    }
    let fits_type = match schema["type"].as_str() {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => panic!("{at}: type {other} is not known to this check"),
    };
    if !fits_type {
        return vec![format!("{at}: not {}: {value}", schema["type"])];
    }
    let mut problems = Vec::new();
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(object) = value.as_object() {
        for field in schema["required"].as_array().into_iter().flatten() {
            let field = field.as_str().unwrap();
            if !object.contains_key(field) {
                problems.push(format!("{at}: missing {field}"));
            }
        }
        for (key, item) in object {
            let described = &schema["properties"][key];
            if described.is_object() {
                problems.extend(shape_problems(doc, described, item, &format!("{at}.{key}")));
            } else if schema["additionalProperties"].is_object() {
                let extra = &schema["additionalProperties"];
                problems.extend(shape_problems(doc, extra, item, &format!("{at}.{key}")));
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            problems.extend(shape_problems(doc, items, item, &format!("{at}[{i}]")));
        }
    }
    problems
}

/// Every route docs/openapi.json lists answers, in a working service with a backup, a
/// verification and a restore behind it, with the body its documented success answer
/// describes: no answer is documented as a bare object any more.
#[test]
fn every_documented_answer_has_its_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auth.db");
    make_sqlite_db(&db, 1);
    let mut s = Service::new("allow_restore = true", &job("auth", "sqlite", &db, YEARLY, ""));
    let (status, started) = post_json(s.port, "/api/backups", r#"{"job":"auth"}"#);
    assert_eq!(status, 202, "{started}");
    let run = s.wait_run_finished(started["run_id"].as_i64().unwrap());
    assert_eq!(run["status"], "completed", "{run}");
    let snapshot = run["snapshot"].as_str().unwrap().to_string();
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let restored = dir.path().join("restored.db");
    let restore_body = format!(r#"{{"to":"{}","confirm":true}}"#, restored.display());
    let dry_body = format!(r#"{{"to":"{}","dry_run":true}}"#, restored.display());
    let mut checked = 0;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let success = operation["responses"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(code, _)| code.starts_with('2'))
                .map(|(code, answer)| {
                    (code.clone(), answer["content"]["application/json"]["schema"].clone())
                });
            let Some((code, schema)) = success else {
                continue; // the sign-in form: a redirect, checked by the status page's test
            };
            if !schema.is_object() {
                continue; // HTML and metrics text: checked by their own tests
            }
            assert_ne!(
                schema,
                serde_json::json!({"type": "object"}),
                "{method} {path}: a bare object"
            );
            let concrete =
                path.replace("{id}", if path.starts_with("/api/runs") { "1" } else { &snapshot });
            let bodies: Vec<Option<&str>> = match (method.as_str(), path.as_str()) {
                ("post", "/api/backups/{id}/restore") => vec![Some(&dry_body), Some(&restore_body)],
                ("post", "/api/backups") => continue, // run above: its answer is checked there
                ("post", _) | ("put", _) => vec![Some("{}")],
                _ => vec![None],
            };
            for body in bodies {
                let (status, text) =
                    http(s.port, &method.to_uppercase(), &concrete, Some(TOKEN), body);
                assert_eq!(status.to_string(), code, "{method} {concrete}: {text}");
                let value: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{method} {concrete} is not JSON ({e}): {text}"));
                let problems = shape_problems(&doc, &schema, &value, "$");
                assert!(
                    problems.is_empty(),
                    "{method} {concrete} differs from docs/openapi.json:\n{}\n{text}",
                    problems.join("\n")
                );
                checked += 1;
            }
        }
    }
    // POST /api/backups, checked by hand against its documented answer.
    let schema = &doc["paths"]["/api/backups"]["post"]["responses"]["202"]["content"]["application/json"]
        ["schema"];
    let problems = shape_problems(&doc, schema, &started, "$");
    assert!(problems.is_empty(), "POST /api/backups: {problems:?}");
    assert!(checked >= 12, "only {checked} answers were checked");
    s.stop();
}

#[test]
fn a_sqlite_replica_job_ships_every_commit_and_shows_its_replicator_in_health_and_metrics() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("app.db");
    make_sqlite_db(&db, 1);
    let replica =
        "[[jobs]]\nname = \"app\"\nkind = \"sqlite-replica\"\ntarget = \"DB\"\ninterval = \"200ms\"\n"
            .replace("DB", &db.display().to_string());
    let drilled = format!("{replica}drill = \"every 2s\"\n");
    let mut s = Service::new("", &drilled);
    let conn = rusqlite::Connection::open(&db).unwrap();
    for i in 0..40 {
        conn.execute(
            "INSERT INTO users(name, email) VALUES (?1, 'x@example.com')",
            [format!("u{i}")],
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(25));
    }
    let health = wait_for("the replicator to ship the 40 commits", Duration::from_secs(60), || {
        let health = get_json(s.port, "/health");
        let shipped = health["backups"]["app"]["replica"]["status"]["last_txid"].as_u64();
        (shipped >= Some(40)).then_some(health)
    });
    let app = &health["backups"]["app"];
    assert_eq!(app["replica"]["running"], true, "{health}");
    assert_eq!(app["status"], "ok", "{health}");
    assert_eq!(app["rpo_seconds"], 120, "{health}");

    let (status, text) = http(s.port, "GET", "/metrics", Some(TOKEN), None);
    assert_eq!(status, 200);
    assert_eq!(metric(&text, "lifeboat_replica_running", "app"), 1.0);
    assert!(metric(&text, "lifeboat_replica_last_txid", "app") >= 40.0);
    assert!(metric(&text, "lifeboat_replica_last_commit_timestamp_seconds", "app") > 1.7e9);
    assert!(metric(&text, "lifeboat_replica_lag_seconds", "app") < 60.0);
    assert_eq!(metric(&text, "lifeboat_stale", "app"), 0.0);

    // Its drills restore a random recent second, not the base, and check it.
    let drills = wait_for("a drill of the replica to pass", Duration::from_secs(60), || {
        let runs = get_json(s.port, "/api/runs?job=app&operation=drill&status=completed");
        (runs["count"].as_u64().unwrap_or(0) >= 1).then_some(runs)
    });
    assert!(drills["runs"][0]["detail"].as_str().unwrap().contains("RTO"), "{drills}");
    assert!(s.log().contains("drilling a point of the replica"), "{}", s.log());

    // A graceful stop ships what was read; the newest point is the database as it is.
    let stopped = s.stop();
    assert!(stopped.success(), "lifeboatd did not stop cleanly: {stopped}\n{}", s.log());
    let to = data.path().join("restored.db");
    ok(lifeboat(&s.repo()).args(["restore", "latest", "--name", "app", "--to"]).arg(&to));
    let users = |path: &Path| -> Vec<String> {
        let c = rusqlite::Connection::open(path).unwrap();
        let mut q = c.prepare("SELECT name FROM users ORDER BY id").unwrap();
        q.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    assert_eq!(users(&to), users(&db));
    assert!(users(&to).iter().any(|u| u == "u39"), "the last commit is missing");

    // A replica job has no schedule: one given is refused with the key to use.
    std::fs::write(
        s.path("bad.toml"),
        format!("repository = \"{}\"\n{replica}schedule = \"@daily\"\n", s.repo()),
    )
    .unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_lifeboatd"))
        .args(["--check", "--config"])
        .arg(s.path("bad.toml"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("has no `schedule`") && said.contains("snapshot_every"), "{said}");
}
