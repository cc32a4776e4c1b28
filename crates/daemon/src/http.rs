//! The HTTP server under the API, with limits so that no client can starve the service.
//!
//! Without them, 20,000 idle loopback connections held 20,000 file descriptors: scheduled
//! backups then failed with "Too many open files" and `/health` stopped answering. So:
//! - a client gets `header_timeout` to send a request's headers, on a new connection and on a
//!   kept-alive one waiting for its next request (hyper starts the timer as soon as it waits
//!   for a request head), so an idle connection is closed after that long;
//! - at most `max_connections` connections are open. A new one past the cap closes the
//!   oldest idle connection (one with no request being served) to make room, so a probe
//!   still gets through a flood of idle connections; when every connection is busy the new
//!   one gets a JSON 503 and is closed at once;
//! - request bodies are limited (see [`crate::api::MAX_BODY`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::state::{Daemon, lock};
use crate::supervise::SERVICE;

/// One open connection.
#[derive(Debug, Default)]
struct Conn {
    /// Requests being served on it now.
    busy: AtomicUsize,
    /// Told to close when a new connection needs its place.
    close: Notify,
    /// Told when it is closed.
    closed: Notify,
}

/// The open connections, oldest first (ids grow).
#[derive(Debug, Default)]
struct Conns {
    open: Mutex<(u64, BTreeMap<u64, Arc<Conn>>)>,
}

impl Conns {
    /// A place for a new connection: free, or taken from the oldest idle one (returned as
    /// well, told to close). `None` when `cap` connections are open and all of them busy.
    fn admit(&self, cap: usize) -> Option<(u64, Arc<Conn>, Option<Arc<Conn>>)> {
        let mut guard = lock(&self.open);
        let (next, open) = &mut *guard;
        let mut evicted = None;
        if open.len() >= cap {
            let idle = open.iter().find(|(_, c)| c.busy.load(Ordering::SeqCst) == 0);
            let id = *idle?.0;
            evicted = open.remove(&id);
            if let Some(conn) = &evicted {
                debug!(connection = id, "closing the oldest idle connection: at max_connections");
                conn.close.notify_one();
            }
        }
        *next += 1;
        let conn = Arc::new(Conn::default());
        open.insert(*next, Arc::clone(&conn));
        Some((*next, conn, evicted))
    }

    fn remove(&self, id: u64) {
        lock(&self.open).1.remove(&id);
    }
}

/// Counts a request as being served on its connection while it lives.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: &Arc<Conn>) -> Self {
        conn.busy.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(conn))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `app` on `listener` until `stop` turns true; then asks every connection to finish
/// its request and close, and waits for them at most `grace`.
pub async fn serve(
    d: Arc<Daemon>,
    listener: TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let conns = Arc::new(Conns::default());
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors (EMFILE) or a connection reset before it was
                // accepted: wait a moment instead of spinning on the error.
                warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let config = d.config();
        let Some((id, conn, evicted)) = conns.admit(config.max_connections) else {
            refuse(&stream);
            continue;
        };
        let (app, conns2, stop) = (app.clone(), Arc::clone(&conns), stop.clone());
        let (d2, timeout) = (Arc::clone(&d), config.header_timeout);
        tasks.spawn(async move {
            connection(d2, stream, app, &conn, timeout, stop).await;
            conns2.remove(id);
            conn.closed.notify_one();
        });
        // Accept the next one only when the evicted connection has given back its file
        // descriptor, so a flood never holds more than the cap.
        if let Some(evicted) = evicted {
            let _ = tokio::time::timeout(Duration::from_secs(1), evicted.closed.notified()).await;
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        warn!("HTTP connections still open after the grace period: closing them");
        tasks.abort_all();
    }
}

async fn connection(
    d: Arc<Daemon>,
    stream: TcpStream,
    app: Router,
    conn: &Arc<Conn>,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let for_requests = Arc::clone(conn);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = Busy::new(&for_requests);
        let (app, d) = (app.clone(), Arc::clone(&d));
        async move {
            let request = request.map(axum::body::Body::new);
            let answer = crate::supervise::catch(&d, SERVICE, "HTTP request", app.oneshot(request));
            let response = match answer.await {
                Ok(response) => response,
                Err(panic) => Ok(panicked(&panic)),
            };
            drop(busy);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let served = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(e) = result {
                debug!("connection ended: {e}");
            }
            return;
        }
        () = conn.close.notified() => return,
        _ = stop.wait_for(|s| *s) => {}
    }
    served.as_mut().graceful_shutdown();
    if let Err(e) = served.await {
        debug!("connection ended: {e}");
    }
}

/// The answer to a request whose handler panicked (caught, logged, counted and alerted).
fn panicked(panic: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = serde_json::json!({
        "error": format!("lifeboatd failed to answer (a bug): {panic}"),
        "hint": "the log has the details; please report it",
    });
    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

/// Answers a connection past the cap with a JSON 503, as far as it goes without waiting,
/// and closes it at once.
fn refuse(stream: &TcpStream) {
    let body = r#"{"error":"too many connections","hint":"lifeboatd serves max_connections at once; retry shortly"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_new_connection_past_the_cap_takes_the_place_of_the_oldest_idle_one() {
        let conns = Conns::default();
        let (first, a, none) = conns.admit(2).unwrap();
        assert!(none.is_none());
        let (second, _, _) = conns.admit(2).unwrap();
        let _serving = Busy::new(&a);
        // a is busy: the second, the oldest idle one, makes room.
        let (third, _, evicted) = conns.admit(2).unwrap();
        assert!(evicted.is_some());
        assert_eq!(lock(&conns.open).1.keys().copied().collect::<Vec<_>>(), [first, third]);
        assert!(second < third);
        let _also = Busy::new(&lock(&conns.open).1[&third]);
        assert!(conns.admit(2).is_none(), "every connection busy: refused");
    }
}
