//! `lifeboat replicate KIND TARGET`: follow a database and ship every commit into the
//! repository until stopped. One replicator per replica, whatever the host: it holds the
//! replica's lease (a second one is refused, naming the holder) and a backup lease, so prune
//! keeps what it writes.

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lifeboat_core::replica::{Compaction, HELPER_ARG, ReplicaStatus, ReplicateRequest};
use lifeboat_core::{Registry, TargetSpec};

use crate::output::print_json;
use crate::progress;

/// Objects one shipment writes: its pack, the pack's index entry, the segment's entry.
const PUTS_PER_SEGMENT: f64 = 3.0;

/// What `replicate` was given.
#[derive(Debug)]
pub struct Args {
    pub kind: String,
    pub target: String,
    pub name: Option<String>,
    pub interval: Duration,
    pub snapshot_every: Duration,
    pub poll: Duration,
    pub compaction: Compaction,
    pub json: bool,
}

pub async fn run(url: &str, registry: &Registry, args: Args) -> anyhow::Result<ExitCode> {
    let Some((backend, _)) = registry.command(&args.kind) else {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!("there is no kind of target {:?} to replicate", args.kind),
            hint: "replicate takes sqlite".into(),
        }
        .into());
    };
    let spec = TargetSpec::new(backend.kind(), &args.target);
    backend.check(&spec)?;
    let name = match args.name {
        Some(name) => name,
        None => backend.backup(&spec)?.default_name(),
    };
    lifeboat_core::check_snapshot_name(&name)?;
    let repo = super::open_repo(url).await?;
    repo.check_can_replicate()?;
    let operation = format!("replicate {} {}", args.kind, args.target);
    crate::interrupt::stop_gracefully();
    let stop: lifeboat_core::replica::Stop = Box::pin(crate::interrupt::stop_requested());
    if !progress::is_quiet() {
        let per_second = PUTS_PER_SEGMENT / args.interval.as_secs_f64().max(0.001);
        let per_month = per_second * 86_400.0 * 30.0;
        progress::line(&format!(
            "replicating {} as {name:?}, shipping at most every {}: while writes keep coming, up to {per_second:.1} PUT requests/s ({:.1} million a month, about ${:.2} at S3 Standard's $0.005 per 1,000); an idle database makes none",
            args.target,
            lifeboat_core::format_duration(args.interval),
            per_month / 1e6,
            per_month * 0.005 / 1000.0
        ));
    }
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("finding this program to start the lock holder: {e}"))?;
    let mut helper = vec![exe.display().to_string()];
    // The helper opens the same repository only if it must; it runs with our settings.
    helper.extend([HELPER_ARG.to_string(), args.kind.clone()]);
    let request = ReplicateRequest {
        target: args.target.clone(),
        name: name.clone(),
        interval: args.interval,
        poll: args.poll,
        snapshot_every: args.snapshot_every,
        helper,
        compaction: args.compaction,
    };
    let last_line = Mutex::new((Instant::now(), 0u64));
    let every = progress::every();
    let report = |status: &ReplicaStatus| {
        let Ok(mut last) = last_line.lock() else { return };
        if progress::is_quiet() || last.1 == status.segments || last.0.elapsed() < every {
            return;
        }
        *last = (Instant::now(), status.segments);
        progress::line(&status_line(&name, status));
    };
    let status = repo.replicate_under_lease(backend, &request, &operation, stop, &report).await?;
    if args.json {
        print_json(&status)?;
    } else if !progress::is_quiet() {
        progress::line(&format!("stopped; {}", status_line(&name, &status)));
    }
    Ok(ExitCode::SUCCESS)
}

fn status_line(name: &str, status: &ReplicaStatus) -> String {
    let last = status
        .last_commit
        .map(|t| {
            format!(" (seen committed {})", t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        })
        .unwrap_or_default();
    format!(
        "replica {name:?}: transaction {} shipped{last}, generation {}, {} transactions in {} segments, {} merged, {} dropped, {} base snapshots, lag {} ms",
        status.last_txid,
        status.generation,
        status.transactions,
        status.segments,
        status.merged,
        status.dropped,
        status.snapshots,
        status.lag_ms
    )
}

/// Runs a backend's replica helper (`lifeboat __replica-helper KIND ARGS…`) and returns its
/// exit code; `None` when the command line is not a helper's.
pub fn helper(registry: &Registry) -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(HELPER_ARG) {
        return None;
    }
    let kind = args.get(2)?;
    let outcome = registry
        .command(kind)
        .and_then(|(backend, _)| backend.replica_helper(&args[3..]))
        .unwrap_or_else(|| {
            Err(lifeboat_core::Error::InvalidInput {
                what: format!("no replica helper {:?} for {kind}", &args[3..]),
                hint: "this command is started by `lifeboat replicate`, not by hand".into(),
            })
        });
    Some(match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("lifeboat replica helper: {e}\n").as_bytes(),
            );
            ExitCode::FAILURE
        }
    })
}
