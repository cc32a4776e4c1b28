//! The real Docker engine for container tests: started if its socket is missing, with a
//! test image built without a registry (`docker import` of a tar holding a static busybox).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The image tests run: busybox's applets on a static binary, `sh` as the shell.
pub const TEST_IMAGE: &str = "lifeboat-test/busybox:1";

/// Applets linked into the image's `/bin`.
const APPLETS: &[&str] = &[
    "sh",
    "sleep",
    "cat",
    "echo",
    "ls",
    "mkdir",
    "rm",
    "sha256sum",
    "touch",
    "dd",
    "head",
    "true",
    "false",
    "test",
    "wc",
    "env",
    "cp",
    "mv",
    "find",
    "sync",
    "date",
];

/// Makes sure the engine answers and the test image exists; returns the `docker` program.
///
/// # Panics
/// When Docker is not installed, the engine does not start, or busybox-static is missing:
/// the message says what to install.
pub fn docker_engine() -> &'static str {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        start_engine();
        build_image();
    });
    "docker"
}

fn engine_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_engine() {
    if crate::find_program("docker").is_none() {
        panic!(
            "the docker client is not installed: `apt-get install docker.io` (.ci/run does this)"
        );
    }
    if engine_answers() {
        return;
    }
    let dockerd = crate::find_program("dockerd")
        .or_else(|| Some(Path::new("/usr/sbin/dockerd").to_path_buf()).filter(|p| p.exists()))
        .unwrap_or_else(|| {
            panic!("the Docker engine is not installed: `apt-get install docker.io` (.ci/run does this)")
        });
    let log = std::env::temp_dir().join("lifeboat-test-dockerd.log");
    let log_file = std::fs::File::create(&log).expect("create dockerd log");
    // The engine outlives this test process on purpose: every test binary shares it.
    #[allow(clippy::zombie_processes)]
    Command::new(dockerd)
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start dockerd (it needs root): {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !engine_answers() {
        if Instant::now() > deadline {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "dockerd did not answer within 60 s; its log ({}):\n{}",
                log.display(),
                tail.lines().rev().take(20).collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn build_image() {
    let exists = Command::new("docker")
        .args(["image", "inspect", TEST_IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if exists {
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "static busybox is missing: `apt-get install busybox-static` (.ci/run does this)"
            )
        });
    let mut tar = tar::Builder::new(Vec::new());
    let data = std::fs::read(busybox).expect("read busybox");
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, "bin/busybox", &data[..]).expect("tar busybox");
    for applet in APPLETS {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        tar.append_link(&mut header, format!("bin/{applet}"), "busybox").expect("tar link");
    }
    for dir in ["tmp", "etc", "data", "var"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        tar.append_data(&mut header, format!("{dir}/"), &[][..]).expect("tar dir");
    }
    let bytes = tar.into_inner().expect("tar");
    let mut child = Command::new("docker")
        .args(["import", "--change", "ENV PATH=/bin", "--change", "CMD [\"sh\"]", "-", TEST_IMAGE])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("docker import");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&bytes).expect("write image tar");
    }
    assert!(
        child.wait().expect("docker import").success(),
        "docker import of the test image failed"
    );
}

/// Runs `docker ARGS` and returns its trimmed stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `docker ARGS` ignoring the outcome (cleanup).
pub fn docker_quiet(args: &[&str]) {
    let _ = Command::new("docker").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// A unique name for a test's container or volume.
pub fn unique_name(prefix: &str) -> String {
    format!("lbtest-{prefix}-{}-{}", std::process::id(), crate::pseudo_random_suffix())
}

/// Removes the named containers, the images restores imported for them
/// (`lifeboat-restore/<name>`), the named volumes and the named images when dropped.
#[derive(Default)]
pub struct DockerCleanup {
    /// Containers to remove.
    pub containers: Vec<String>,
    /// Volumes to remove.
    pub volumes: Vec<String>,
    /// Images (tags) to remove.
    pub images: Vec<String>,
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            docker_quiet(&["rm", "-f", c]);
        }
        for c in &self.containers {
            remove_restore_images(c);
        }
        for v in &self.volumes {
            docker_quiet(&["volume", "rm", "-f", v]);
        }
        for i in &self.images {
            docker_quiet(&["rmi", i]);
        }
    }
}

/// Removes every tag of `lifeboat-restore/<container>`, the images restores to that name
/// imported (names of test containers are already lowercase and image-safe).
fn remove_restore_images(container: &str) {
    let listed = Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .arg(format!("lifeboat-restore/{}", container.to_ascii_lowercase()))
        .output();
    let Ok(listed) = listed else { return };
    for image in String::from_utf8_lossy(&listed.stdout).lines().filter(|l| !l.is_empty()) {
        docker_quiet(&["rmi", "-f", image]);
    }
}
