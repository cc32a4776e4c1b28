//! `POST /api/backups/{id}/restore` takes the restore options of the registry's backends as
//! fields, refuses one the snapshot's backend does not take, and an unknown field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use lifeboat_core::NoProgress;
use lifeboat_daemon::config::Config;
use lifeboat_daemon::service;
use lifeboat_store::BackupOptions;
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "a-long-random-token-for-tests";

#[tokio::test(flavor = "multi_thread")]
async fn restore_fields_are_the_backends_restore_options() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("files");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.txt"), "a").unwrap();
    std::fs::write(folder.join("b.txt"), "b").unwrap();
    let (d, id) = service_with_a_backup(dir.path(), "files", "dir", &folder).await;
    let restore = |body: String| post_restore(&d, &id, body);
    let out = dir.path().join("out");
    let to = format!("dir:{}", out.display());

    let (status, answer) =
        restore(format!(r#"{{"to":"{to}","confirm":true,"include":["a.txt"]}}"#)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(out.join("a.txt").exists() && !out.join("b.txt").exists(), "include was not applied");

    // A PostgreSQL option on a folder snapshot: refused by the registry, nothing written.
    let other = dir.path().join("other");
    let body = format!(r#"{{"to":"dir:{}","confirm":true,"table":"users"}}"#, other.display());
    let (status, answer) = restore(body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("table"), "{answer}");
    assert!(!other.exists());

    for body in [
        format!(r#"{{"to":"{to}","colour":"blue"}}"#),
        format!(r#"{{"to":"{to}","include":3}}"#),
        format!(r#"{{"to":"{to}","schema_only":"yes"}}"#),
    ] {
        let (status, answer) = restore(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_with_where_brings_back_one_tenants_rows_and_answers_with_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders(id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, total INTEGER);
         CREATE TABLE lines(id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES orders(id), sku TEXT);
         INSERT INTO orders VALUES (1, 'acme', 10), (2, 'acme', 20), (3, 'globex', 30);
         INSERT INTO lines VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 3, 'c');",
    )
    .unwrap();
    let (d, id) = service_with_a_backup(dir.path(), "app", "sqlite", &db).await;
    conn.execute_batch(
        "DELETE FROM lines WHERE order_id IN (1, 2); DELETE FROM orders WHERE tenant_id = 'acme';
         UPDATE orders SET total = 0 WHERE tenant_id = 'globex';",
    )
    .unwrap();
    let restore = |body: String| post_restore(&d, &id, body);
    let to = db.display().to_string();
    let body = |extra: &str| format!(r#"{{"to":"{to}","where":"tenant_id = 'acme'"{extra}}}"#);
    let adds = |answer: &Value| -> Vec<(String, u64)> {
        answer["report"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["table"].as_str().unwrap().to_string(), t["add"].as_u64().unwrap()))
            .collect()
    };
    let (status, dry) = restore(body(r#","dry_run":true"#)).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(adds(&dry), [("lines".to_string(), 2), ("orders".to_string(), 2)], "{dry}");
    let (status, refused) = restore(body("")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["hint"].as_str().unwrap().contains("confirm"), "{refused}");
    let (status, refused) = restore(body(r#","mode":"merge","confirm":true"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(count("SELECT count(*) FROM orders"), 1, "a refused restore wrote rows");

    let (status, done) = restore(body(r#","confirm":true"#)).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(adds(&done), adds(&dry));
    assert!(done["report"]["safety_snapshot"].is_string(), "{done}");
    assert!(done["run_id"].is_number(), "{done}");
    assert_eq!(count("SELECT count(*) FROM orders WHERE tenant_id = 'acme'"), 2);
    assert_eq!(count("SELECT count(*) FROM lines"), 3);
    assert_eq!(
        count("SELECT total FROM orders WHERE tenant_id = 'globex'"),
        0,
        "globex was touched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_restore_with_where_goes_through_the_api_too() {
    let pg = lifeboat_testkit::PgCluster::start();
    pg.psql("postgres", "CREATE DATABASE app");
    pg.psql(
        "app",
        "CREATE TABLE orders(id int PRIMARY KEY, tenant_id text NOT NULL, total int);
         INSERT INTO orders VALUES (1, 'acme', 10), (2, 'acme', 20), (3, 'globex', 30);",
    );
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url("app");
    let (d, id) = service_with_a_backup(dir.path(), "app", "postgres", Path::new(&url)).await;
    pg.psql("app", "DELETE FROM orders WHERE tenant_id = 'acme'; UPDATE orders SET total = 0");
    let body = |extra: &str| format!(r#"{{"to":"{url}","where":"tenant_id = 'acme'"{extra}}}"#);
    let (status, dry) = post_restore(&d, &id, body(r#","dry_run":true"#)).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["report"]["tables"][0]["add"], 2, "{dry}");
    assert_eq!(pg.psql("app", "SELECT count(*) FROM orders"), "1", "a dry run wrote rows");
    let (status, done) = post_restore(&d, &id, body(r#","mode":"upsert","confirm":true"#)).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done["report"]["safety_snapshot"].is_string(), "{done}");
    assert_eq!(
        pg.psql("app", "SELECT string_agg(id || ':' || total, ',' ORDER BY id) FROM orders"),
        "1:10,2:20,3:0",
        "acme back as it was, globex left as it is"
    );
}

/// A service with one job `name` of `kind` on `target`, restores allowed, and the id of the
/// job's first backup.
async fn service_with_a_backup(
    dir: &Path,
    name: &str,
    kind: &str,
    target: &Path,
) -> (std::sync::Arc<lifeboat_daemon::state::Daemon>, String) {
    let text = format!(
        "repository = \"{}\"\nstate_dir = \"{}\"\ntokens = [\"{TOKEN}\"]\nallow_restore = true\n\n\
         [[jobs]]\nname = \"{name}\"\nkind = \"{kind}\"\ntarget = \"{}\"\nschedule = \"every 1h\"\n",
        dir.join("repo").display(),
        dir.join("state").display(),
        target.display(),
    );
    let registry = lifeboat::backends();
    let env = BTreeMap::<String, String>::new();
    let config = Config::parse(&text, Path::new("t.toml"), &env, &registry).unwrap();
    let d = service::open(config, registry).await.unwrap();
    let job = d.jobs[name].job();
    let outcomes = d
        .repo
        .backup_target(&d.registry, &job.spec, &BackupOptions::default(), &NoProgress, &mut |_| {})
        .await
        .unwrap();
    let id = outcomes[0].result.as_ref().unwrap().id().to_hex();
    (d, id)
}

/// `POST /api/backups/{id}/restore` with `body`: the status and the JSON answer.
async fn post_restore(
    d: &std::sync::Arc<lifeboat_daemon::state::Daemon>,
    id: &str,
    body: String,
) -> (StatusCode, Value) {
    let app = lifeboat_daemon::api::router(d.clone());
    let request = Request::post(format!("/api/backups/{id}/restore"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice::<Value>(&bytes).unwrap())
}
