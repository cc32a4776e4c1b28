//! This machine, as far as process ids mean anything: its host name, its boot, and whether a
//! process recorded with them is gone.
//!
//! A process id says something only on the host that recorded it, and only until that host
//! reboots (ids are reused from one boot to the next). So a record of "who holds this" (a
//! lease, a restore's journal) carries host, boot id and pid, and [`holder_gone`] trusts a
//! pid only when host and boot match this machine's.

/// This host's name: `LIFEBOAT_HOST` when set (tests, containers sharing a name), else the
/// kernel's host name, else `unknown`.
pub fn host_name() -> String {
    if let Ok(h) = std::env::var("LIFEBOAT_HOST")
        && !h.is_empty()
    {
        return h;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The id of this boot of the machine (`/proc/sys/kernel/random/boot_id`), if readable.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
}

/// Whether process `pid` of this boot of this machine runs (`/proc/PID` exists).
pub fn process_alive(pid: u32) -> bool {
    pid != 0 && std::path::Path::new("/proc").join(pid.to_string()).exists()
}

/// Whether the process `pid` that `host` recorded during boot `boot` is known to be gone:
/// it ran on this host and either this host has rebooted since or the process no longer
/// runs. `false` whenever that cannot be known: another host, or no boot id recorded (an
/// older record) or readable here.
pub fn holder_gone(host: &str, boot: Option<&str>, pid: u32) -> bool {
    owner_alive(host, boot, pid) == Some(false)
}

/// Whether the process `pid` that `host` recorded during boot `boot` still runs: `None`
/// when this machine cannot tell (another host, or no boot id recorded or readable),
/// `Some(false)` when it ran on this host before a reboot or in this boot and is gone.
pub fn owner_alive(host: &str, boot: Option<&str>, pid: u32) -> Option<bool> {
    let (Some(boot), Some(this_boot)) = (boot, boot_id()) else { return None };
    if host != host_name() {
        return None;
    }
    Some(boot == this_boot && (pid == std::process::id() || process_alive(pid)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_a_dead_process_of_this_host_and_boot_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let (host, boot) = (host_name(), boot_id().unwrap());
        assert!(holder_gone(&host, Some(&boot), dead));
        assert!(!holder_gone(&host, Some(&boot), std::process::id()));
        assert!(holder_gone(&host, Some("an earlier boot"), std::process::id()));
        assert!(!holder_gone("another-host", Some(&boot), dead));
        assert!(!holder_gone(&host, None, dead), "an old record without a boot id");
    }
}
