//! The HTTP API: JSON everywhere, bearer tokens on everything but what the configuration
//! opens. `docs/openapi.json` describes it and is served as `/openapi.json`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use lifeboat_core::backend::{OptionSpec, OptionValue, Options};
use lifeboat_core::{
    MergeMode, NoProgress, Registry, RestoreContext, RestoreOptions, RowSelection, Snapshot,
};
use lifeboat_store::StoredSnapshot;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{bearer, token_matches};
use crate::catalog::{Operation, Outcome, RunFilter};
use crate::error::DaemonError;
use crate::runner::{StartError, start_backup, verify_run};
use crate::settings;
use crate::state::{Daemon, belongs_to};

/// The OpenAPI document, as kept in the repository.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// Every route, as `METHOD PATH` (the OpenAPI document lists the same).
pub const ROUTES: &[&str] = &[
    "GET /",
    "POST /",
    "GET /health",
    "GET /livez",
    "GET /metrics",
    "GET /openapi.json",
    "GET /api/backups",
    "POST /api/backups",
    "GET /api/backups/{id}",
    "POST /api/backups/{id}/verify",
    "POST /api/backups/{id}/restore",
    "GET /api/stats",
    "GET /api/alerts/stale",
    "GET /api/config",
    "PUT /api/config",
    "DELETE /api/config",
    "GET /api/runs",
    "GET /api/runs/{id}",
];

/// An error answer: `{"error": ..., "hint": ...}` with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    hint: Option<String>,
    extra: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        ApiError { status, error: error.into(), hint: hint.into(), extra: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.error, "hint": self.hint });
        if let (Some(Value::Object(extra)), Some(obj)) = (self.extra, body.as_object_mut()) {
            obj.extend(extra);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<DaemonError> for ApiError {
    fn from(e: DaemonError) -> Self {
        use lifeboat_core::Error as Core;
        let core = match &e {
            DaemonError::Store(s) => match s.as_ref() {
                lifeboat_store::StoreError::Core(c) => Some(c),
                _ => None,
            },
            DaemonError::Core(c) => Some(c.as_ref()),
            _ => None,
        };
        let status = match (&e, core) {
            (DaemonError::UnknownJob { .. }, _) | (_, Some(Core::SnapshotNotFound { .. })) => {
                StatusCode::NOT_FOUND
            }
            (_, Some(Core::AmbiguousSnapshot { .. })) => StatusCode::BAD_REQUEST,
            (
                _,
                Some(
                    Core::InvalidInput { .. }
                    | Core::Native { .. }
                    | Core::Unsupported { .. }
                    | Core::UnknownKind { .. }
                    | Core::TargetExists { .. },
                ),
            ) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string(), e.hint())
    }
}

impl From<lifeboat_store::StoreError> for ApiError {
    fn from(e: lifeboat_store::StoreError) -> Self {
        DaemonError::from(e).into()
    }
}

impl From<lifeboat_core::Error> for ApiError {
    fn from(e: lifeboat_core::Error) -> Self {
        DaemonError::from(e).into()
    }
}

type ApiResult<T = Json<Value>> = Result<T, ApiError>;
type Shared = State<Arc<Daemon>>;

/// The largest request body accepted: the API's requests are small JSON documents.
pub const MAX_BODY: usize = 64 * 1024;

/// The router of the whole API.
pub fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route("/", get(crate::page::show).post(crate::page::login))
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/api/backups", get(list_backups).post(run_backup))
        .route("/api/backups/{id}", get(get_backup))
        .route("/api/backups/{id}/verify", post(verify_backup))
        .route("/api/backups/{id}/restore", post(restore_backup))
        .route("/api/stats", get(stats))
        .route("/api/alerts/stale", get(stale))
        .route("/api/config", get(get_config).put(put_config).delete(delete_config))
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{id}", get(get_run))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such endpoint",
                Some("GET /openapi.json lists every endpoint".to_string()),
            )
        })
        .layer(middleware::from_fn_with_state(Arc::clone(&d), require_token))
        .layer(middleware::from_fn(json_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(d)
}

/// Refuses a body announced larger than [`MAX_BODY`] before reading any of it, and makes
/// the errors axum answers by itself (a path or query that does not parse, a body too large,
/// a method not allowed) JSON like every other error. The status page's HTML answers (its
/// login form with 401) stay HTML.
async fn json_errors(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large().into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_ours {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), MAX_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let error = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large().into_response();
    }
    let hint = "GET /openapi.json lists every endpoint with its parameters".to_string();
    ApiError::new(status, error, Some(hint)).into_response()
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is too large",
        Some(format!("request bodies are at most {MAX_BODY} bytes")),
    )
}

/// Whether the request carries one of the configured tokens: `Ok(true)` yes, `Ok(false)` it
/// carries none, an error when it carries a wrong one.
pub(crate) fn authorized(d: &Daemon, headers: &axum::http::HeaderMap) -> Result<bool, ApiError> {
    let given = headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()).and_then(bearer);
    match given {
        Some(token) if token_matches(&d.config().tokens, token) => Ok(true),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid token",
            Some("send one of the configured tokens as Authorization: Bearer TOKEN".to_string()),
        )),
        None => Ok(false),
    }
}

async fn require_token(State(d): Shared, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    // Liveness and the API's description never look at a token; the status page decides
    // itself (a token, its session cookie, or `open`; else its login form).
    if path == "/livez" || path == "/openapi.json" || path == "/" {
        return next.run(request).await;
    }
    let config = d.config();
    let open =
        (path == "/health" && config.open.health) || (path == "/metrics" && config.open.metrics);
    match authorized(&d, request.headers()) {
        // A wrong token is refused even where none is needed: it is a mistake to report.
        Err(e) => e.into_response(),
        Ok(true) => next.run(request).await,
        Ok(false) if open => next.run(request).await,
        Ok(false) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing token",
            Some(
                "send Authorization: Bearer TOKEN (tokens come from the configuration or LIFEBOAT_TOKENS)"
                    .to_string(),
            ),
        )
        .into_response(),
    }
}

fn parse_body<T: serde::de::DeserializeOwned + Default>(bytes: &Bytes) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not valid JSON for this endpoint: {e}"),
            Some("see /openapi.json for the fields".to_string()),
        )
    })
}

fn json<T: Serialize>(value: &T) -> ApiResult {
    serde_json::to_value(value).map(Json).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {e}"),
            None,
        )
    })
}

/// 200 when every job is fine, 503 when degraded, so probes that read only the status code
/// see it too. Without a token (`/health` is open by default) the body is only the status:
/// job names, errors and snapshot ids are for those with a token.
async fn health(State(d): Shared, headers: axum::http::HeaderMap) -> Result<Response, ApiError> {
    let health = d.health();
    let status =
        if health.status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if !authorized(&d, &headers)? {
        return Ok((status, Json(json!({ "status": health.status }))).into_response());
    }
    Ok((status, json(&health)?).into_response())
}

/// 200 while the process serves requests, whatever the state of the backups: for liveness
/// probes, which restart the service (which would not make a backup fresh).
async fn livez() -> Json<Value> {
    Json(json!({ "status": "alive", "version": env!("CARGO_PKG_VERSION") }))
}

/// Prometheus' text format, or OpenMetrics' when the scraper's `Accept` asks for it.
async fn metrics(State(d): Shared, headers: axum::http::HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (body, content_type) = crate::metrics::render(&d, openmetrics);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// One snapshot as the API lists it (the same fields as `lifeboat snapshots --json`).
#[derive(Debug, Serialize)]
pub struct SnapshotRow {
    id: String,
    short_id: String,
    kind: lifeboat_core::Kind,
    name: String,
    host: String,
    time: DateTime<Utc>,
    duration_ms: u64,
    size: u64,
    stored: u64,
    sha256: String,
    chunks: usize,
    tags: lifeboat_core::Tags,
    parent: Option<String>,
}

impl SnapshotRow {
    fn new(snap: &StoredSnapshot) -> Self {
        let m = snap.manifest();
        SnapshotRow {
            id: snap.id().to_hex(),
            short_id: snap.id().short(),
            kind: m.kind.clone(),
            name: m.name.clone(),
            host: m.host.clone(),
            time: m.time,
            duration_ms: m.duration_ms,
            size: m.size,
            stored: m.stored,
            sha256: m.sha256.to_hex(),
            chunks: m.chunks.len(),
            tags: m.tags.clone(),
            parent: m.parent.map(|p| p.to_hex()),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct BackupsQuery {
    job: Option<String>,
    limit: Option<usize>,
}

async fn list_backups(State(d): Shared, Query(q): Query<BackupsQuery>) -> ApiResult {
    let view = d.refresh_view().await;
    if let Some(e) = &view.error {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot list the repository: {e}"),
            None,
        ));
    }
    let snaps: Vec<&StoredSnapshot> = view
        .snapshots
        .iter()
        .rev()
        .filter(|s| q.job.as_ref().is_none_or(|j| belongs_to(&s.manifest().name, j)))
        .collect();
    let failed: u64 = d
        .jobs
        .keys()
        .filter(|j| q.job.as_ref().is_none_or(|q| q == *j))
        .map(|j| d.catalog.counts(j).map(|c| c.failed).unwrap_or(0))
        .sum();
    // Statistics are of backups; safety snapshots are listed (marked) but not counted.
    let backups: Vec<&&StoredSnapshot> =
        snaps.iter().filter(|s| !s.manifest().is_safety()).collect();
    let statistics = json!({
        "total_backups": backups.len(),
        "safety_snapshots": snaps.len() - backups.len(),
        "total_size": backups.iter().map(|s| s.manifest().size).sum::<u64>(),
        "stored": snaps.iter().map(|s| s.manifest().stored).sum::<u64>(),
        "oldest_backup": backups.last().map(|s| s.manifest().time),
        "newest_backup": backups.first().map(|s| s.manifest().time),
        "failed_backups": failed,
        "repository_size": view.pack_bytes,
    });
    let rows: Vec<SnapshotRow> =
        snaps.iter().take(q.limit.unwrap_or(usize::MAX)).map(|s| SnapshotRow::new(s)).collect();
    Ok(Json(json!({ "count": rows.len(), "backups": rows, "statistics": statistics })))
}

#[derive(Debug, Default, Deserialize)]
struct RunRequest {
    job: Option<String>,
}

async fn run_backup(State(d): Shared, bytes: Bytes) -> Result<Response, ApiError> {
    let request: RunRequest = parse_body(&bytes)?;
    let job = match (request.job, d.jobs.len()) {
        (Some(job), _) => job,
        (None, 1) => d.jobs.keys().next().cloned().unwrap_or_default(),
        (None, _) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "say which job to run",
                Some(r#"send {"job": "NAME"}; GET /api/config lists the jobs"#.to_string()),
            ));
        }
    };
    match start_backup(&d, &job, "api") {
        Ok(run) => Ok((StatusCode::ACCEPTED, Json(json!({ "run_id": run, "job": job, "status": "in_progress", "run": format!("/api/runs/{run}") }))).into_response()),
        Err(StartError::UnknownJob(job)) => Err(DaemonError::UnknownJob { job }.into()),
        Err(StartError::AlreadyRunning { job, run }) => {
            let mut e = ApiError::new(StatusCode::CONFLICT, format!("job {job:?} is already running (run {run})"), Some(format!("wait for /api/runs/{run} to finish")));
            e.extra = Some(json!({ "run_id": run }));
            Err(e)
        }
        Err(StartError::ShuttingDown) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "lifeboatd is shutting down", None)),
        Err(StartError::Catalog(e)) => Err(e.into()),
    }
}

async fn get_backup(State(d): Shared, Path(id): Path<String>) -> ApiResult {
    let snap = d.repo.find(&id, None).await?;
    let mut row = serde_json::to_value(SnapshotRow::new(&snap)).unwrap_or_default();
    if let Some(obj) = row.as_object_mut() {
        obj.insert("metadata".into(), d.registry.printable_metadata(snap.manifest()));
    }
    Ok(Json(row))
}

#[derive(Debug, Default, Deserialize)]
struct VerifyRequest {
    #[serde(default)]
    read_data: bool,
}

async fn verify_backup(State(d): Shared, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    let request: VerifyRequest = parse_body(&bytes)?;
    let snap = d.repo.find(&id, None).await?;
    let (run, report) = verify_run(&d, &snap, request.read_data).await?;
    Ok(Json(json!({
        "run_id": run,
        "snapshot": snap.id().to_hex(),
        "valid": report.ok(),
        "read_data": request.read_data,
        "failures": report.failures(),
        "report": report,
    })))
}

#[derive(Debug, Default, Deserialize)]
struct RestoreRequest {
    to: Option<String>,
    #[serde(default)]
    confirm: bool,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    create: bool,
    #[serde(default)]
    dry_run: bool,
    /// Restore only the rows this SQL condition selects, merged into the live database.
    #[serde(rename = "where")]
    predicate: Option<String>,
    /// With `where`: select only in these tables.
    #[serde(default)]
    tables: Vec<String>,
    /// With `where`: `insert` (the default), `upsert` or `replace`.
    mode: Option<String>,
    /// Every other field is a restore option of a backend by its job key (`include`,
    /// `table`, `schema_only`, `skip_missing_roles`, `settle`); others are refused.
    #[serde(flatten)]
    selection: BTreeMap<String, Value>,
}

/// The restore options in a request's other fields: a flag from a bool, one value from a
/// string or a number, many from an array of strings (or one string).
fn selection(registry: &Registry, fields: &BTreeMap<String, Value>) -> ApiResult<Options> {
    let specs = registry.restore_options();
    let mut options = Options::default();
    for (key, value) in fields {
        let Some(spec) = specs.iter().find(|s| s.config_key() == *key) else {
            let known: Vec<String> =
                ["to", "confirm", "force", "create", "dry_run", "where", "tables", "mode"]
                    .into_iter()
                    .map(String::from)
                    .chain(specs.iter().map(|s| s.config_key()))
                    .collect();
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "the request body is not valid JSON for this endpoint: unknown field `{key}`"
                ),
                Some(format!("a restore takes {}", known.join(", "))),
            ));
        };
        let values: Option<Vec<String>> = match (spec.value, value) {
            (_, Value::Null) => Some(Vec::new()),
            (OptionValue::Flag, Value::Bool(b)) => {
                Some(b.then(|| "true".to_string()).into_iter().collect())
            }
            (OptionValue::One(_) | OptionValue::Many(_), Value::String(s)) => Some(vec![s.clone()]),
            (OptionValue::One(_), Value::Number(n)) => Some(vec![n.to_string()]),
            (OptionValue::Many(_), Value::Array(items)) => {
                items.iter().map(|v| v.as_str().map(String::from)).collect()
            }
            _ => None,
        };
        let Some(values) = values else {
            let wanted = match spec.value {
                OptionValue::Flag => "true or false",
                OptionValue::One(_) => "a string or a number",
                OptionValue::Many(_) => "an array of strings",
            };
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "the request body is not valid JSON for this endpoint: `{key}` must be {wanted}"
                ),
                Some(spec.help.to_string()),
            ));
        };
        values.into_iter().for_each(|v| options.push(spec.name, v));
    }
    Ok(options)
}

async fn restore_backup(State(d): Shared, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    let request: RestoreRequest = parse_body(&bytes)?;
    let selection = selection(&d.registry, &request.selection)?;
    let snap = d.repo.find(&id, None).await?;
    let Some(to) = request.to.clone() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "`to` is missing: where to restore",
            Some(format!(
                "give a path, a database URL, or KIND:TARGET with KIND one of {}",
                d.registry.kinds_text()
            )),
        ));
    };
    // Refused before the plan's own checks of the target, whose hints (use force) would be
    // no help; a dry run changes nothing and stays open.
    if !request.dry_run && !d.config().allow_restore {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "restores through the API are off",
            Some(
                "set allow_restore = true in the configuration, or restore with the lifeboat CLI"
                    .to_string(),
            ),
        ));
    }
    if let Some(predicate) = request.predicate.clone() {
        return restore_rows(&d, &snap, &to, predicate, request, selection).await;
    }
    let options =
        RestoreOptions { force: request.force, create: request.create, ..Default::default() };
    let plan = d.registry.plan_restore(&snap, &to, &options, &selection).await?;
    let steps = plan.steps();
    if request.dry_run {
        return Ok(Json(
            json!({ "snapshot": snap.id().to_hex(), "to": to, "dry_run": true, "steps": steps }),
        ));
    }
    if !request.confirm {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "a restore changes the target: confirmation required",
            Some(
                r#"send "confirm": true after reviewing the steps (try "dry_run": true)"#
                    .to_string(),
            ),
        );
        e.extra = Some(json!({ "steps": steps }));
        return Err(e);
    }
    let name = snap.manifest().name.clone();
    let run = d.catalog.start(&name, Operation::Restore, "api")?;
    let ctx = RestoreContext { snapshot: &snap, safety_net: &d.repo, progress: &NoProgress };
    let result = plan.execute(&ctx).await;
    finish_restore(&d, &snap, run, result, |report| Outcome {
        size: Some(report.bytes),
        detail: report.safety_snapshot.as_ref().map(|s| format!("safety snapshot {s}")),
        ..Outcome::default()
    })
    .await
}

/// Records how restore `run` of `snap` ended (`done` describes a success) and answers with
/// its report, or its error.
async fn finish_restore<R: Serialize>(
    d: &Daemon,
    snap: &StoredSnapshot,
    run: i64,
    result: lifeboat_core::Result<R>,
    done: impl FnOnce(&R) -> Outcome,
) -> ApiResult {
    let outcome = match &result {
        Ok(report) => Outcome { snapshot: Some(snap.id().to_hex()), ..done(report) },
        Err(e) => Outcome {
            snapshot: Some(snap.id().to_hex()),
            error: Some(e.to_string()),
            ..Outcome::default()
        },
    };
    d.catalog.finish(run, &outcome)?;
    d.refresh_view().await;
    let report = result?;
    Ok(Json(json!({ "run_id": run, "snapshot": snap.id().to_hex(), "report": report })))
}

/// A restore with `where`: the rows it selects, merged into the live database; a dry run
/// answers with the counts per table, a real one needs `confirm` as any restore does.
async fn restore_rows(
    d: &Daemon,
    snap: &lifeboat_store::StoredSnapshot,
    to: &str,
    predicate: String,
    request: RestoreRequest,
    selection: Options,
) -> ApiResult {
    let bad = |what: String, hint: &str| {
        ApiError::new(StatusCode::BAD_REQUEST, what, Some(hint.to_string()))
    };
    let mode: MergeMode = request
        .mode
        .as_deref()
        .unwrap_or("insert")
        .parse()
        .map_err(|e: String| bad(e, r#"send "mode": "insert", "upsert" or "replace""#))?;
    let mut tables = request.tables;
    tables.extend(selection.values(OptionSpec::TABLE).iter().cloned());
    if let Some(other) = selection.names().find(|n| *n != OptionSpec::TABLE) {
        return Err(bad(
            format!("`{}` does not go with `where`", other.replace('-', "_")),
            "a restore with where takes to, where, tables, mode, dry_run and confirm",
        ));
    }
    let rows = RowSelection { predicate, tables, mode };
    let ctx = RestoreContext { snapshot: snap, safety_net: &d.repo, progress: &NoProgress };
    if request.dry_run {
        let report = d.registry.restore_rows(&ctx, to, &rows, true).await?;
        return Ok(Json(
            json!({ "snapshot": snap.id().to_hex(), "to": to, "dry_run": true, "report": report }),
        ));
    }
    if !request.confirm {
        return Err(bad(
            "a restore changes the target: confirmation required".into(),
            r#"send "confirm": true after reviewing the counts (try "dry_run": true)"#,
        ));
    }
    let name = snap.manifest().name.clone();
    let run = d.catalog.start(&name, Operation::Restore, "api")?;
    let result = d.registry.restore_rows(&ctx, to, &rows, false).await;
    finish_restore(d, snap, run, result, |report| {
        let total = report.total();
        let safety =
            report.safety_snapshot.map(|s| format!("; safety snapshot {s}")).unwrap_or_default();
        Outcome {
            detail: Some(format!(
                "rows where {}: {} added, {} changed, {} deleted{safety}",
                report.predicate, total.add, total.change, total.delete
            )),
            ..Outcome::default()
        }
    })
    .await
}

async fn stats(State(d): Shared) -> ApiResult {
    let stats = lifeboat_store::stats::stats(&d.repo).await?;
    let mut runs = serde_json::Map::new();
    for name in d.jobs.keys() {
        runs.insert(
            name.clone(),
            serde_json::to_value(d.catalog.counts(name)?).unwrap_or_default(),
        );
    }
    Ok(Json(json!({ "repository": stats, "runs": runs })))
}

async fn stale(State(d): Shared) -> ApiResult {
    let view = d.refresh_view().await;
    let now = Utc::now();
    let jobs: Vec<Value> = d
        .jobs
        .iter()
        .map(|(name, state)| {
            let job = state.job();
            let newest = view.newest(name);
            let reason = d.stale_reason(&job, &view, now);
            json!({
                "job": name,
                "stale": reason.is_some(),
                "reason": reason,
                "newest_snapshot": newest.map(|s| s.id().to_hex()),
                "newest_time": newest.map(|s| s.manifest().time),
                "rpo_seconds": job.rpo(now).as_secs(),
            })
        })
        .collect();
    let stale: Vec<&Value> = jobs.iter().filter(|j| j["stale"] == true).collect();
    Ok(Json(json!({ "stale": stale, "jobs": jobs })))
}

async fn get_config(State(d): Shared) -> ApiResult {
    json(&settings::describe(&d))
}

async fn put_config(State(d): Shared, bytes: Bytes) -> ApiResult {
    let change: settings::Change = parse_body(&bytes)?;
    settings::apply(&d, &change).map_err(|problems| {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{} problems; nothing was changed", problems.len()),
            None,
        );
        e.extra = Some(json!({ "problems": problems }));
        e
    })?;
    json(&settings::describe(&d))
}

async fn delete_config(State(d): Shared) -> ApiResult {
    settings::forget(&d)?;
    json(&settings::describe(&d))
}

async fn list_runs(State(d): Shared, Query(filter): Query<RunFilter>) -> ApiResult {
    let runs = d.catalog.list(&filter)?;
    Ok(Json(json!({ "count": runs.len(), "runs": runs })))
}

async fn get_run(State(d): Shared, Path(id): Path<i64>) -> ApiResult {
    match d.catalog.get(id)? {
        Some(run) => json(&run),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no run {id}"),
            Some("GET /api/runs lists the runs".to_string()),
        )),
    }
}
