//! systemd's readiness and watchdog protocol (`sd_notify`), for `Type=notify` with
//! `WatchdogSec=`: `READY=1` once the API listens, `WATCHDOG=1` from the scheduler, and
//! `RELOADING=1` / `STOPPING=1` around a reload and a shutdown. Outside systemd
//! (`NOTIFY_SOCKET` unset) every call does nothing.
//!
//! The protocol is one unix datagram per message to the socket `$NOTIFY_SOCKET` names (a
//! path, or an abstract name when it starts with `@`), so std's `UnixDatagram` is all it
//! takes.

use std::time::Duration;

/// The socket systemd listens on.
pub const SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Sends `state` (such as `READY=1`) to systemd; false when not under systemd or when
/// sending failed (which is logged: the service runs on, unsupervised).
pub fn notify(state: &str) -> bool {
    let Some(socket) = std::env::var_os(SOCKET_ENV).filter(|s| !s.is_empty()) else {
        return false;
    };
    match send(&socket, state) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(socket = ?socket, "cannot notify systemd ({state}): {e}");
            false
        }
    }
}

#[cfg(unix)]
fn send(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let sock = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(std::io::Error::other("abstract sockets need Linux"));
        }
    }
    sock.send_to(state.as_bytes(), socket)?;
    Ok(())
}

#[cfg(not(unix))]
fn send(_socket: &std::ffi::OsStr, _state: &str) -> std::io::Result<()> {
    Err(std::io::Error::other("sd_notify needs a unix system"))
}

/// How often to send `WATCHDOG=1`: half of systemd's `WatchdogSec` (`WATCHDOG_USEC`), when
/// the watchdog is on and meant for this process (`WATCHDOG_PID`, when set).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?.parse::<u64>().ok().filter(|&u| u > 0)?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    Some(Duration::from_micros(usec) / 2)
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
