//! Ctrl-C and SIGTERM for the `lifeboat` command: exit at once (status 130 or 143), as
//! without a handler, except inside a critical stretch such as a restore's swap, which is
//! let finish first so the target is never left half-swapped.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use lifeboat_core::critical;
use tokio::signal::unix::{SignalKind, signal};

/// The exit status an interrupt asked for; 0 while there was none.
static REQUESTED: AtomicU8 = AtomicU8::new(0);

/// Whether the first interrupt asks the command to stop rather than ending the process.
static GRACEFUL: AtomicBool = AtomicBool::new(false);

/// Makes the first interrupt ask the running command to stop (it finishes what it must,
/// such as shipping what it has read); a second one exits at once.
pub fn stop_gracefully() {
    GRACEFUL.store(true, Ordering::SeqCst);
}

/// Resolves once an interrupt asked the command to stop.
pub async fn stop_requested() {
    while REQUESTED.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The exit status to end with when an interrupt arrived: the command finished a swap it
/// was in (and may have finished altogether meanwhile), yet it was interrupted.
pub fn requested_exit() -> Option<ExitCode> {
    if GRACEFUL.load(Ordering::SeqCst) {
        // The command stopped as asked: its own exit code stands.
        return None;
    }
    match REQUESTED.load(Ordering::SeqCst) {
        0 => None,
        code => Some(ExitCode::from(code)),
    }
}

/// Waits for SIGINT or SIGTERM and exits the process, after any critical stretch.
pub async fn exit_on_interrupt() {
    let (Ok(mut int), Ok(mut term)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        // Without handlers the signals keep their default action, which also ends the
        // process, only without waiting for a swap.
        return;
    };
    let code: u8 = tokio::select! {
        _ = int.recv() => 130,
        _ = term.recv() => 143,
    };
    REQUESTED.store(code, Ordering::SeqCst);
    if GRACEFUL.load(Ordering::SeqCst) {
        eprintln!("lifeboat: stopping (interrupt again to exit at once)");
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        std::process::exit(i32::from(code));
    }
    if critical::in_progress() {
        eprintln!(
            "lifeboat: interrupted during a swap; finishing it first so the target stays whole"
        );
        while critical::in_progress() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    std::process::exit(i32::from(code));
}
