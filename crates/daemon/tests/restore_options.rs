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
    let text = format!(
        "repository = \"{}\"\nstate_dir = \"{}\"\ntokens = [\"{TOKEN}\"]\nallow_restore = true\n\n\
         [[jobs]]\nname = \"files\"\nkind = \"dir\"\ntarget = \"{}\"\nschedule = \"every 1h\"\n",
        dir.path().join("repo").display(),
        dir.path().join("state").display(),
        folder.display(),
    );
    let registry = lifeboat::backends();
    let env = BTreeMap::<String, String>::new();
    let config = Config::parse(&text, Path::new("t.toml"), &env, &registry).unwrap();
    let d = service::open(config, registry).await.unwrap();
    let job = d.jobs["files"].job();
    let outcomes = d
        .repo
        .backup_target(&d.registry, &job.spec, &BackupOptions::default(), &NoProgress, &mut |_| {})
        .await
        .unwrap();
    let id = outcomes[0].result.as_ref().unwrap().id().to_hex();
    let restore = |body: String| {
        let app = lifeboat_daemon::api::router(d.clone());
        let request = Request::post(format!("/api/backups/{id}/restore"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
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
