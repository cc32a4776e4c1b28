//! Docker containers end to end, against the real engine: a container with files and a
//! named volume is backed up, deleted and restored identically (files, volume, config);
//! `--changed-only` stores nothing when nothing changed; a restore whose new container
//! fails to start puts the original back running; deep verification; clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use util::*;

/// A running test container with a named volume: files in its own filesystem (including
/// 512 KiB of random bytes) and in the volume, a secret in its env, labels.
fn start_app(cleanup: &mut DockerCleanup, label: &str) -> (String, String) {
    start_app_with(cleanup, label, &[])
}

/// [`start_app`] with more `docker run` options (a health check, say).
fn start_app_with(cleanup: &mut DockerCleanup, label: &str, options: &[&str]) -> (String, String) {
    docker_engine();
    let name = unique_name("app");
    let volume = format!("{name}-vol");
    cleanup.containers.push(name.clone());
    cleanup.volumes.push(volume.clone());
    docker(&["volume", "create", &volume]);
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(options);
    let volume_arg = format!("{volume}:/vol");
    args.extend_from_slice(&[
        "--name",
        &name,
        "-e",
        "API_TOKEN=hunter2-secret",
        "-e",
        "MODE=production",
        "--label",
        label,
        "--label",
        "lifeboat.test=1",
        "-v",
        &volume_arg,
        "-w",
        "/srv",
        "--restart",
        "unless-stopped",
        TEST_IMAGE,
        "sh",
        "-c",
        // Like a real service, it creates its data on first start only.
        "test -f /srv/blob || { mkdir -p /srv && echo hello > /srv/app.txt && \
         dd if=/dev/urandom of=/srv/blob bs=1024 count=512 2>/dev/null; } && \
         { test -f /vol/v.txt || echo in-volume > /vol/v.txt; } && \
         touch /tmp/ready && exec sleep 3600",
    ]);
    docker(&args);
    wait_for_file(&name, "/tmp/ready");
    (name, volume)
}

fn wait_for_file(container: &str, path: &str) {
    for _ in 0..100 {
        let status = std::process::Command::new("docker")
            .args(["exec", container, "test", "-f", path])
            .status()
            .unwrap();
        if status.success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{container} never wrote {path}");
}

/// SHA-256 of the files the app wrote, read inside the container.
fn digests(container: &str) -> String {
    docker(&["exec", container, "sha256sum", "/srv/app.txt", "/srv/blob", "/vol/v.txt"])
}

/// The configuration a restore must reproduce.
fn config(container: &str) -> serde_json::Value {
    let text = docker(&["inspect", container]);
    let info: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let c = &info[0]["Config"];
    let h = &info[0]["HostConfig"];
    let mut env: Vec<String> = serde_json::from_value(c["Env"].clone()).unwrap();
    env.sort();
    serde_json::json!({
        "env": env, "labels": c["Labels"], "cmd": c["Cmd"], "workdir": c["WorkingDir"],
        "entrypoint": c["Entrypoint"], "user": c["User"], "exposed": c["ExposedPorts"],
        "ports": h["PortBindings"], "restart": h["RestartPolicy"]["Name"],
        "running": info[0]["State"]["Running"],
    })
}

fn backup(repo: &str, args: &[&str]) -> serde_json::Value {
    let mut cmd = lifeboat(repo);
    cmd.args(["backup", "container"]).args(args).arg("--json");
    serde_json::from_str(&ok(&mut cmd)).unwrap()
}

fn new_repo() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").to_string_lossy().into_owned();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    (dir, repo)
}

/// Tests that leave an interrupted restore behind, or clean every leftover on the engine
/// (`cleanup --force`), run one at a time: one test's cleanup would otherwise put right
/// another test's interrupted restore while that test still inspects it.
static LEFTOVERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    LEFTOVERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn container_with_volume_round_trips_after_deletion() {
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    let (name, volume) = start_app(&mut cleanup, "tenant=round-trip");
    let before_files = digests(&name);
    let before_config = config(&name);

    let snap = backup(&repo, &[&name]);
    assert_eq!(snap["kind"], "container");
    assert_eq!(snap["name"], name.as_str());
    let id = snap["id"].as_str().unwrap().to_string();
    // Taken by the container's id, the snapshot is still named after the container.
    let container_id = docker(&["inspect", "--format", "{{.Id}}", &name]);
    let by_id = backup(&repo, &[&container_id.trim()[..12]]);
    assert_eq!(by_id["name"], name.as_str(), "{by_id}");
    assert_eq!(by_id["parent"], id.as_str(), "the one by name is its parent");

    // Secrets are stored but never printed by listings.
    let listing = ok(lifeboat(&repo).args(["snapshots", "--json"]));
    assert!(!listing.contains("hunter2"), "env value leaked into the listing: {listing}");
    assert!(listing.contains("API_TOKEN"), "env names stay visible: {listing}");
    // Nor by logs at their most verbose, where the Docker client prints what it gets.
    for (flag, level) in [("-vv", None), ("-v", Some("debug")), ("-v", Some("trace"))] {
        let mut cmd = lifeboat(&repo);
        cmd.args([flag, "backup", "container", &name]);
        match level {
            Some(level) => cmd.env("LIFEBOAT_LOG", level),
            None => cmd.env_remove("LIFEBOAT_LOG"),
        };
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("DEBUG") || stderr.contains("TRACE"), "not verbose: {stderr}");
        assert!(!stderr.contains("hunter2"), "env value leaked into the log: {stderr}");
    }

    // The disaster: container and volume gone.
    docker(&["rm", "-f", &name]);
    docker(&["volume", "rm", &volume]);

    let plan = ok(lifeboat(&repo).args([
        "restore",
        &id,
        "--to",
        &format!("container:{name}"),
        "--dry-run",
    ]));
    assert!(plan.contains("import") && plan.contains(&volume), "{plan}");
    assert!(docker(&["ps", "-a", "--filter", &format!("name=^{name}$"), "-q"]).is_empty());

    let out = ok(lifeboat(&repo).args([
        "restore",
        &id,
        "--to",
        &format!("container:{name}"),
        "--settle",
        "1s",
    ]));
    assert!(out.contains("restored"), "{out}");
    assert_eq!(digests(&name), before_files, "files and volume data differ after restore");
    assert_eq!(config(&name), before_config, "configuration differs after restore");
    assert_eq!(docker(&["volume", "inspect", "-f", "{{.Name}}", &volume]), volume);
}

#[test]
fn changed_only_stores_nothing_until_something_changes() {
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    let (name, _) = start_app(&mut cleanup, "tenant=hot");

    let first = backup(&repo, &[&name, "--changed-only"]);
    assert!(first["stored"].as_u64().unwrap() > 500_000, "{first}");
    assert_ne!(first["unchanged"], true);

    let second = backup(&repo, &[&name, "--changed-only"]);
    assert_eq!(second["unchanged"], true, "{second}");
    assert_eq!(second["stored"], 0, "{second}");
    assert_eq!(second["sha256"], first["sha256"]);
    let text = ok(lifeboat(&repo).args(["backup", "container", &name, "--changed-only"]));
    assert!(text.contains("unchanged"), "{text}");

    // A change in the container's own filesystem...
    docker(&["exec", &name, "sh", "-c", "echo more >> /srv/app.txt"]);
    let third = backup(&repo, &[&name, "--changed-only"]);
    assert_ne!(third["unchanged"], true, "{third}");
    assert!(third["stored"].as_u64().unwrap() > 0, "{third}");
    assert_ne!(third["sha256"], first["sha256"]);

    // ... and one in the volume only are both seen.
    docker(&["exec", &name, "sh", "-c", "echo more >> /vol/v.txt"]);
    let fourth = backup(&repo, &[&name, "--changed-only"]);
    assert_ne!(fourth["unchanged"], true, "{fourth}");
    assert_ne!(fourth["sha256"], third["sha256"]);

    // Every unchanged snapshot restores like the one it repeats.
    ok(lifeboat(&repo).args(["verify", "--all", "--read-data"]));
}

#[test]
fn failed_restore_puts_the_original_back_running() {
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    let (name, _) = start_app(&mut cleanup, "tenant=rollback");
    let original_id = docker(&["inspect", "-f", "{{.Id}}", &name]);

    // A snapshot of a running container that, restored, exits at once: it cannot settle.
    let broken = unique_name("broken");
    cleanup.containers.push(broken.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &broken,
        TEST_IMAGE,
        "sh",
        "-c",
        "test -f /ran && exit 3; touch /ran; exec sleep 3600",
    ]);
    wait_for_file(&broken, "/ran");
    let snap = backup(&repo, &[&broken]);
    let id = snap["id"].as_str().unwrap();

    // Without --force the existing container is refused and left alone.
    let err = fails(lifeboat(&repo).args(["restore", id, "--to", &format!("container:{name}")]));
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        docker(&["inspect", "-f", "{{.Id}} {{.State.Running}}", &name]),
        format!("{original_id} true")
    );

    let err = fails(lifeboat(&repo).args([
        "restore",
        id,
        "--to",
        &format!("container:{name}"),
        "--force",
        "--settle",
        "1s",
    ]));
    assert!(err.contains("did not come up") && err.contains("original"), "{err}");
    assert_eq!(
        docker(&["inspect", "-f", "{{.Id}} {{.State.Running}}", &name]),
        format!("{original_id} true"),
        "the original container is not back running"
    );
    assert!(digests(&name).contains("/srv/blob"));
    // Nothing of the attempt is left behind, and the safety snapshot exists.
    let left = docker(&["ps", "-a", "--filter", &format!("name={name}-lifeboat"), "-q"]);
    assert!(left.is_empty(), "leftover containers: {left}");
    let safety: Vec<_> =
        snapshots(&repo).into_iter().filter(|s| s["tags"].get("pre-restore").is_some()).collect();
    assert_eq!(safety.len(), 1, "one pre-restore safety snapshot");
}

#[test]
fn forced_restore_replaces_a_running_container_and_keeps_volumes_safe() {
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    // With a health check: the restore waits for the new container to report healthy.
    let health = ["--health-cmd", "test -f /tmp/ready", "--health-interval", "1s"];
    let (name, volume) = start_app_with(&mut cleanup, "tenant=replace", &health);
    let snap = backup(&repo, &[&name]);
    let before = digests(&name);
    let old_id = docker(&["inspect", "-f", "{{.Id}}", &name]);
    docker(&["exec", &name, "sh", "-c", "echo damage > /srv/app.txt; echo damage > /vol/v.txt"]);

    let out = ok(lifeboat(&repo).args([
        "restore",
        snap["id"].as_str().unwrap(),
        "--to",
        &format!("container:{name}"),
        "--force",
        "--settle",
        "1s",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["safety_snapshot"].is_string(), "{report}");
    assert!(report["checks"].to_string().contains("healthy"), "{report}");
    assert_eq!(docker(&["inspect", "-f", "{{.State.Health.Status}}", &name]), "healthy");
    let new_id = docker(&["inspect", "-f", "{{.Id}}", &name]);
    assert_ne!(new_id, old_id);
    assert_eq!(digests(&name), before, "restored data differs");
    // The existing volume was not overwritten: the restore used a new one.
    let old_volume =
        docker(&["run", "--rm", "-v", &format!("{volume}:/v"), TEST_IMAGE, "cat", "/v/v.txt"]);
    assert_eq!(old_volume, "damage");
    let mounted = docker(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", &name]);
    cleanup.volumes.push(mounted.clone());
    assert!(mounted.starts_with(&volume) && mounted != volume, "{mounted}");
    // The old container is gone.
    assert!(docker(&["ps", "-a", "-q", "--filter", &format!("id={old_id}")]).is_empty());

    // Restoring under a new name leaves the running one alone.
    let copy = format!("{name}-copy");
    cleanup.containers.push(copy.clone());
    ok(lifeboat(&repo).args([
        "restore",
        snap["id"].as_str().unwrap(),
        "--to",
        &format!("container:{copy}"),
        "--settle",
        "1s",
    ]));
    cleanup.volumes.push(docker(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", &copy]));
    assert_eq!(
        docker(&["inspect", "-f", "{{.Id}} {{.State.Running}}", &name]),
        format!("{new_id} true")
    );
    assert_eq!(digests(&copy), before);
}

/// The tests that look at every drill leftover on the engine, or make some, run one at a
/// time: one's fake leftovers of another host are the other's "scratch containers left".
static DRILL_LEFTOVERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn deep_verify_and_drill_use_a_throwaway_container() {
    let _one_at_a_time = DRILL_LEFTOVERS.lock().unwrap_or_else(|e| e.into_inner());
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    let (name, _) = start_app(&mut cleanup, "tenant=drill");
    let snap = backup(&repo, &[&name]);
    let id = snap["id"].as_str().unwrap();
    let out = ok(lifeboat(&repo).args(["verify", id, "--restore", "--json"]));
    assert!(out.contains("files of filesystem") && out.contains("files of /vol"), "{out}");
    let report = ok(lifeboat(&repo).args(["drill", "--name", &name, "--json"]));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report[0]["passed"], true, "{report}");
    let scratch = docker(&["ps", "-a", "-q", "--filter", "name=lifeboat-drill-"]);
    assert!(scratch.is_empty(), "scratch containers left: {scratch}");
    let volumes = docker(&["volume", "ls", "-q", "--filter", "name=lifeboat-drill-"]);
    assert!(volumes.is_empty(), "scratch volumes left: {volumes}");
}

#[test]
fn label_selector_backs_up_every_match() {
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    let label = format!("tenant-group={}", unique_name("group"));
    let (a, _) = start_app(&mut cleanup, &label);
    let (b, _) = start_app(&mut cleanup, &label);
    let out = ok(lifeboat(&repo).args(["backup", "containers", "--label", &label, "--json"]));
    let results: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(results.len(), 2, "{out}");
    assert!(results.iter().all(|r| r["ok"] == true), "{out}");
    let names: Vec<String> =
        snapshots(&repo).iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
    assert!(names.contains(&a) && names.contains(&b), "{names:?}");

    let err = fails(lifeboat(&repo).args(["backup", "containers", "--label", "nobody-has=this"]));
    assert!(err.contains("no container"), "{err}");
}

#[test]
fn unknown_container_and_missing_engine_are_clear_errors() {
    docker_engine();
    let (_dir, repo) = new_repo();
    let err = fails(lifeboat(&repo).args(["backup", "container", "no-such-container-lbtest"]));
    assert!(err.contains("does not exist"), "{err}");
    let err = fails(
        lifeboat(&repo)
            .args(["backup", "container", "anything"])
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
    );
    assert!(err.contains("not reachable"), "{err}");
    assert!(err.contains("start the Docker engine"), "{err}");
    assert!(snapshots(&repo).is_empty());
}

/// `docker inspect -f FORMAT container`.
fn inspect(container: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, container])
}

#[test]
fn bind_mounts_ports_entrypoint_and_user_come_back() {
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    docker_engine();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("conf.txt"), "bound config\n").unwrap();
    let name = unique_name("bound");
    cleanup.containers.push(name.clone());
    let bind = format!("{}:/conf", host.path().display());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &bind,
        "-p",
        "127.0.0.1::8080",
        "--user",
        "0:0",
        "--entrypoint",
        "sh",
        TEST_IMAGE,
        "-c",
        "cat /conf/conf.txt > /tmp/seen && exec sleep 3600",
    ]);
    wait_for_file(&name, "/tmp/seen");
    let before = config(&name);
    let snap = backup(&repo, &[&name]);
    let id = snap["id"].as_str().unwrap().to_string();

    // The disaster: the container and the host folder's contents are gone.
    docker(&["rm", "-f", &name]);
    std::fs::remove_file(host.path().join("conf.txt")).unwrap();
    let to = format!("container:{name}");
    let plan = ok(lifeboat(&repo).args(["restore", &id, "--to", &to, "--dry-run"]));
    assert!(plan.contains("if the host folder is empty"), "{plan}");
    let out = ok(lifeboat(&repo).args(["restore", &id, "--to", &to, "--settle", "1s", "--json"]));
    assert!(out.contains("was empty: filled from the snapshot"), "{out}");
    let conf = host.path().join("conf.txt");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "bound config\n");
    assert_eq!(config(&name), before, "configuration differs after restore");
    assert_ne!(inspect(&name, "{{json .NetworkSettings.Ports}}"), "{}", "no port published");

    // A host folder with files is the host's: a forced restore leaves it as it is.
    std::fs::write(&conf, "edited on the host\n").unwrap();
    let out =
        ok(lifeboat(&repo)
            .args(["restore", &id, "--to", &to, "--force", "--settle", "1s", "--json"]));
    assert!(out.contains("has files: left as it is"), "{out}");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "edited on the host\n");
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");

    // A copy beside the running original does not take its ports.
    let copy = format!("{name}-copy");
    cleanup.containers.push(copy.clone());
    let out = ok(lifeboat(&repo).args([
        "restore",
        &id,
        "--to",
        &format!("container:{copy}"),
        "--settle",
        "1s",
        "--json",
    ]));
    assert!(out.contains("holds them"), "{out}");
    assert_eq!(inspect(&copy, "{{.State.Running}}"), "true");
    let bindings = inspect(&copy, "{{json .HostConfig.PortBindings}}");
    assert!(bindings == "null" || bindings == "{}", "the copy publishes ports: {bindings}");
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
}

#[test]
fn one_failing_container_does_not_stop_the_others() {
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    let label = format!("tenant-group={}", unique_name("mixed"));
    let (good, _) = start_app(&mut cleanup, &label);
    // A container whose bind-mounted folder was deleted: the engine cannot read that mount.
    let gone = tempfile::tempdir().unwrap();
    let broken = unique_name("broken");
    cleanup.containers.push(broken.clone());
    let mount = format!("type=bind,src={},dst=/data", gone.path().display());
    docker(&["create", "--name", &broken, "--label", &label, "--mount", &mount, TEST_IMAGE]);
    drop(gone);

    let out = lifeboat(&repo)
        .args(["backup", "containers", "--label", &label, "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "one container failed: the command must fail");
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), 2, "{results:?}");
    let result = |n: &str| results.iter().find(|r| r["container"] == n).cloned().unwrap();
    assert_eq!(result(&good)["ok"], true, "{results:?}");
    assert_eq!(result(&broken)["ok"], false, "{results:?}");
    assert!(result(&broken)["error"].as_str().unwrap().contains("/data"), "{results:?}");
    let names: Vec<String> =
        snapshots(&repo).iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, [good], "only the good container has a snapshot");
}

/// A running container whose PID 1 takes 3 s to stop and marks when it began (so a restore's
/// stop step is easy to catch), restarted by the engine unless stopped by hand.
fn start_slow_stopper(cleanup: &mut DockerCleanup, label: &str) -> String {
    docker_engine();
    let name = unique_name("slowstop");
    cleanup.containers.push(name.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        label,
        "--restart",
        "unless-stopped",
        TEST_IMAGE,
        "sh",
        "-c",
        "rm -f /tmp/stopping; trap 'touch /tmp/stopping; sleep 3; exit 0' TERM; \
         touch /tmp/ready; while true; do sleep 1; done",
    ]);
    wait_for_file(&name, "/tmp/ready");
    name
}

/// Starts `restore ID --to container:NAME --force` and returns once it is stopping the
/// original container `old_id`.
fn restore_until_stopping(repo: &str, id: &str, name: &str, old_id: &str) -> std::process::Child {
    let restore = lifeboat(repo)
        .args(["restore", id, "--to", &format!("container:{name}")])
        .args(["--force", "--settle", "1s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded generously: the safety snapshot and the import come first, slow on a busy host.
    let stopping = (0..3600).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::process::Command::new("docker")
            .args(["exec", old_id, "test", "-f", "/tmp/stopping"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(stopping, "the restore never began to stop the original");
    restore
}

/// SIGKILLs `child` and waits for it, then for the engine to finish stopping `container`.
fn kill_and_wait_stopped(mut child: std::process::Child, container: &str) {
    child.kill().unwrap();
    child.wait().unwrap();
    for _ in 0..100 {
        if inspect(container, "{{.State.Running}}") == "false" {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{container} did not stop");
}

#[test]
fn an_interrupt_during_the_swap_lets_it_finish() {
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    docker_engine();
    let name = start_slow_stopper(&mut cleanup, "tenant=slowstop");
    let snap = backup(&repo, &[&name]);
    let old_id = docker(&["inspect", "-f", "{{.Id}}", &name]);

    let restore = restore_until_stopping(&repo, snap["id"].as_str().unwrap(), &name, &old_id);
    // Ctrl-C while the original is stopping: the old one is down, the new one not yet up.
    let pid = restore.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = restore.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("finishing it first"), "{stderr}");
    // The swap finished: the restored container runs under the name, the original is gone.
    assert_eq!(docker(&["inspect", "-f", "{{.State.Running}}", &name]), "true");
    let new_id = docker(&["inspect", "-f", "{{.Id}}", &name]);
    assert_ne!(new_id, old_id, "the original still holds the name");
    assert!(docker(&["ps", "-a", "-q", "--filter", &format!("id={old_id}")]).is_empty());
}

#[test]
fn safety_snapshot_is_named_after_the_target_it_protects() {
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    let (source, _) = start_app(&mut cleanup, "tenant=source");
    let (target, _) = start_app(&mut cleanup, "tenant=target");
    let snap = backup(&repo, &[&source]);
    let id = snap["id"].as_str().unwrap();

    let out = ok(lifeboat(&repo).args([
        "restore",
        id,
        "--to",
        &format!("container:{target}"),
        "--force",
        "--settle",
        "1s",
        "--json",
    ]));
    cleanup.volumes.push(inspect(&target, "{{range .Mounts}}{{.Name}}{{end}}"));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let safety_id = report["safety_snapshot"].as_str().unwrap();
    let all = snapshots(&repo);
    let safety = all.iter().find(|s| s["id"] == safety_id).unwrap();
    // It holds the target's files: named after the source it would pass for the source's data.
    assert_eq!(safety["name"], target.as_str(), "{safety}");
    assert_eq!(safety["tags"]["pre-restore"], id, "{safety}");
    let sources: Vec<_> = all.iter().filter(|s| s["name"] == source.as_str()).collect();
    assert_eq!(sources.len(), 1, "only the real backup is named {source}: {all:?}");
}

#[test]
fn a_label_backup_never_captures_a_restores_working_containers() {
    let _serial = one_at_a_time();
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    let label = format!("tenant-group={}", unique_name("staging"));
    let name = start_slow_stopper(&mut cleanup, &label);
    let snap = backup(&repo, &[&name]);
    let old_id = inspect(&name, "{{.Id}}");
    // A restore killed while it stops the original leaves its staging container behind,
    // created with the production labels (the engine cannot change them later).
    let restore = restore_until_stopping(&repo, snap["id"].as_str().unwrap(), &name, &old_id);
    kill_and_wait_stopped(restore, &name);
    let staging = docker(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("name={name}-lifeboat-"),
    ]);
    cleanup.containers.extend(staging.lines().map(str::to_string));
    assert!(!staging.is_empty(), "the killed restore left no staging container");

    let out = ok(lifeboat(&repo).args(["backup", "containers", "--label", &label, "--json"]));
    let results: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let captured: Vec<&str> = results.iter().map(|r| r["container"].as_str().unwrap()).collect();
    assert_eq!(captured, [name.as_str()], "{out}");
}

#[test]
fn a_stopped_container_restores_stopped_and_a_one_shot_is_not_a_failure() {
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    docker_engine();
    // A service stopped by hand, and a one-shot job that ran and exited 0.
    let (service, volume) = start_app(&mut cleanup, "tenant=stopped");
    let service_files = digests(&service);
    docker(&["stop", "-t", "1", &service]);
    let job = unique_name("job");
    cleanup.containers.push(job.clone());
    docker(&["run", "--name", &job, TEST_IMAGE, "sh", "-c", "echo migrated > /done"]);
    let service_snap = backup(&repo, &[&service]);
    let job_snap = backup(&repo, &[&job]);

    docker(&["rm", "-f", &service, &job]);
    docker(&["volume", "rm", &volume]);
    for (snap, name) in [(&service_snap, &service), (&job_snap, &job)] {
        let to = format!("container:{name}");
        let id = snap["id"].as_str().unwrap();
        let plan = ok(lifeboat(&repo).args(["restore", id, "--to", &to, "--dry-run"]));
        assert!(plan.contains("not started"), "{plan}");
        let out = ok(lifeboat(&repo).args(["restore", id, "--to", &to, "--settle", "1s"]));
        assert!(out.contains("restored"), "{out}");
        assert_eq!(inspect(name, "{{.State.Running}}"), "false", "{name} was started");
    }
    // Their data came back all the same.
    docker(&["start", &service]);
    wait_for_file(&service, "/tmp/ready");
    assert_eq!(digests(&service), service_files);
    // A drill starts the one-shot job: exiting 0 is what it is meant to do.
    let report = ok(lifeboat(&repo).args(["drill", "--name", &job, "--json"]));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report[0]["passed"], true, "{report}");
    assert!(report.to_string().contains("exited 0"), "{report}");
}

#[test]
fn a_restore_killed_while_stopping_the_original_is_put_back_by_cleanup() {
    let _serial = one_at_a_time();
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    let name = start_slow_stopper(&mut cleanup, "tenant=killed");
    let snap = backup(&repo, &[&name]);
    let old_id = inspect(&name, "{{.Id}}");
    let restore = restore_until_stopping(&repo, snap["id"].as_str().unwrap(), &name, &old_id);
    kill_and_wait_stopped(restore, &name);
    // Stopped through the API, `unless-stopped` keeps it down: the engine will not help.
    assert_eq!(inspect(&name, "{{.Id}} {{.State.Running}}"), format!("{old_id} false"));

    let listed = ok(lifeboat(&repo).args(["cleanup", "--json"]));
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    let ours: Vec<_> = listed.iter().filter(|l| l["target"] == name.as_str()).collect();
    assert_eq!(ours.len(), 1, "{listed:?}");
    assert_eq!(ours[0]["kind"], "interrupted restore", "{listed:?}");
    assert!(ours[0]["action"].as_str().unwrap().contains("start it"), "{listed:?}");
    assert_eq!(inspect(&name, "{{.State.Running}}"), "false", "listing changed nothing");

    ok(lifeboat(&repo).args(["cleanup", "--force"]));
    assert_eq!(inspect(&name, "{{.Id}} {{.State.Running}}"), format!("{old_id} true"));
    let left = docker(&["ps", "-a", "-q", "--filter", &format!("name={name}-lifeboat")]);
    assert!(left.is_empty(), "leftover containers: {left}");
    let journals = docker(&["volume", "ls", "-q", "--filter", &format!("name={name}-lifeboat")]);
    assert!(journals.is_empty(), "leftover journals: {journals}");
}

#[test]
fn no_leftovers_after_killed_restores_and_one_clean_run() {
    let _serial = one_at_a_time();
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    let (name, volume) = start_app(&mut cleanup, "tenant=leftovers");
    let snap = backup(&repo, &[&name]);
    let id = snap["id"].as_str().unwrap();
    let to = format!("container:{name}");
    let images_before = lifeboat_images();
    // Killed at ten points spread over a restore: importing, filling, creating, swapping,
    // settling.
    for i in 0..10u64 {
        let mut restore = lifeboat(&repo)
            .args(["restore", id, "--to", &to, "--force", "--settle", "2s"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300 + 350 * i));
        let _ = restore.kill();
        restore.wait().unwrap();
    }
    let out = ok(lifeboat(&repo).args(["restore", id, "--to", &to, "--force", "--settle", "1s"]));
    assert!(out.contains("restored"), "{out}");
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
    let mounted = inspect(&name, "{{range .Mounts}}{{.Name}}{{end}}");
    cleanup.volumes.push(mounted.clone());

    let left = docker(&["ps", "-a", "--format", "{{.Names}}", "--filter", &format!("name={name}")]);
    assert_eq!(left, name, "containers left besides the restored one");
    let volumes = docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]);
    let mut volumes: Vec<&str> = volumes.lines().collect();
    volumes.sort();
    let mut expected = vec![volume.as_str(), mounted.as_str()];
    expected.sort();
    expected.dedup();
    assert_eq!(volumes, expected, "volumes left besides the original's and the restored one's");
    let journals = docker(&["volume", "ls", "-q", "--filter", "label=lifeboat.restore.journal"]);
    assert!(!journals.contains(&name), "journals left: {journals}");
    // One image per restored container, whatever the attempts before.
    let images: Vec<String> =
        lifeboat_images().into_iter().filter(|i| !images_before.contains(i)).collect();
    assert_eq!(images.len(), 1, "{images:?}");
    let listed = ok(lifeboat(&repo).args(["cleanup", "--json"]));
    assert!(!listed.contains(&name), "cleanup still finds leftovers: {listed}");
}

/// Ids of the images restores imported, tagged or not (the import comment names them).
fn lifeboat_images() -> Vec<String> {
    docker(&["images", "-a", "-q", "--no-trunc"])
        .lines()
        .filter(|id| docker(&["image", "inspect", "-f", "{{.Comment}}", id]).contains("lifeboat"))
        .map(str::to_string)
        .collect()
}
#[test]
fn a_shared_volume_stays_shared() {
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    docker_engine();
    let volume = unique_name("shared");
    cleanup.volumes.push(volume.clone());
    docker(&["volume", "create", &volume]);
    let (writer, reader) = (unique_name("writer"), unique_name("reader"));
    for (name, dest) in [(&writer, "/data"), (&reader, "/in")] {
        cleanup.containers.push(name.clone());
        let mount = format!("{volume}:{dest}");
        docker(&["run", "-d", "--name", name, "-v", &mount, TEST_IMAGE, "sleep", "3600"]);
    }
    docker(&["exec", &writer, "sh", "-c", "echo first > /data/f"]);
    let writer_snap = backup(&repo, &[&writer]);
    let reader_snap = backup(&repo, &[&reader]);

    // The disaster: both containers and their volume are gone; both come back.
    docker(&["rm", "-f", &writer, &reader]);
    docker(&["volume", "rm", &volume]);
    for (snap, name) in [(&writer_snap, &writer), (&reader_snap, &reader)] {
        let to = format!("container:{name}");
        let id = snap["id"].as_str().unwrap();
        if name == &reader {
            let plan = ok(lifeboat(&repo).args(["restore", id, "--to", &to, "--dry-run"]));
            assert!(plan.contains("shared with") && plan.contains(writer.as_str()), "{plan}");
        }
        let out =
            ok(lifeboat(&repo).args(["restore", id, "--to", &to, "--settle", "1s", "--json"]));
        if name == &reader {
            assert!(out.contains("still shared"), "{out}");
        }
    }
    for name in [&writer, &reader] {
        assert_eq!(inspect(name, "{{range .Mounts}}{{.Name}}{{end}}"), volume, "{name}");
    }
    docker(&["exec", &writer, "sh", "-c", "echo second > /data/f"]);
    assert_eq!(docker(&["exec", &reader, "cat", "/in/f"]), "second");
}

#[test]
fn a_safety_snapshot_over_a_corrupt_chunk_keeps_the_original() {
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    // Another container's snapshot, restored onto the precious one below: it reads fine.
    let (other, _) = start_app(&mut cleanup, "tenant=other");
    let other_snap = backup(&repo, &[&other]);
    let data = std::path::Path::new(&repo).join("data");
    let before: std::collections::BTreeSet<_> = tree(&data).into_keys().collect();
    let (name, _) = start_app(&mut cleanup, "tenant=precious");
    backup(&repo, &[&name]);
    // The packs its backup added hold what only it has (its random blob): damage them.
    // Its safety snapshot deduplicates against exactly those chunks.
    let added: Vec<_> = tree(&data).into_keys().filter(|p| !before.contains(p)).collect();
    assert!(!added.is_empty(), "the second backup wrote no pack");
    for pack in &added {
        let mut bytes = std::fs::read(pack).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(pack, bytes).unwrap();
    }
    let old_id = inspect(&name, "{{.Id}}");
    let files = digests(&name);

    let err = fails(lifeboat(&repo).args([
        "restore",
        other_snap["id"].as_str().unwrap(),
        "--to",
        &format!("container:{name}"),
        "--force",
        "--settle",
        "1s",
    ]));
    assert!(err.contains("corrupt") || err.contains("damaged"), "{err}");
    assert_eq!(inspect(&name, "{{.Id}} {{.State.Running}}"), format!("{old_id} true"));
    assert_eq!(digests(&name), files, "the original's files changed");
    let left = docker(&["ps", "-a", "-q", "--filter", &format!("name={name}-lifeboat")]);
    assert!(left.is_empty(), "leftover containers: {left}");
}

/// Whether `docker KIND inspect REFERENCE` finds it (`container`, `volume` or `image`).
fn exists(kind: &str, reference: &str) -> bool {
    std::process::Command::new("docker")
        .args([kind, "inspect", reference])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn drill_cleanup_removes_only_what_this_hosts_dead_drills_left() {
    let _serial = one_at_a_time();
    let _one_at_a_time = DRILL_LEFTOVERS.lock().unwrap_or_else(|e| e.into_inner());
    let mut cleanup = DockerCleanup::default();
    let (_dir, repo) = new_repo();
    let (name, _) = start_app(&mut cleanup, "tenant=drill-owners");
    backup(&repo, &[&name]);
    // lifeboat runs as host `here`; the fakes below say which host, boot and process made
    // them, as a drill labels its scratch container, volumes and image.
    let here = unique_name("drillhost");
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let boot = boot.trim();
    let dead = 999_999_999u32; // above any pid_max: no process of this boot has it
    let alive = std::process::id();
    // (case, host label, pid, whether it must survive)
    let cases = [
        // Another host sharing the engine, whose pid is no process here: its drill may run.
        ("foreign", format!("elsewhere-{here} {boot}"), dead, true),
        ("dead", format!("{here} {boot}"), dead, false),
        // An earlier boot of this host: its pid now names another process.
        ("oldboot", format!("{here} 00000000-earlier-boot"), alive, false),
        ("running", format!("{here} {boot}"), alive, true),
    ];
    let mut fakes = Vec::new();
    for (case, host, pid, survives) in &cases {
        let object = unique_name(&format!("drillfake-{case}"));
        let image = format!("lifeboat-drill/{object}:1");
        let host_label = format!("lifeboat.drill.host={host}");
        let pid_label = format!("lifeboat.drill.pid={pid}");
        let labels = ["--label", host_label.as_str(), "--label", pid_label.as_str()];
        cleanup.containers.push(object.clone());
        cleanup.volumes.push(object.clone());
        cleanup.images.push(image.clone());
        docker(&[&["volume", "create"][..], &labels, &[&object]].concat());
        docker(&[&["create", "--name", &object][..], &labels, &[TEST_IMAGE, "true"]].concat());
        // A committed image carries the container's labels, as a drill's import does.
        docker(&["commit", &object, &image]);
        fakes.push((*case, object, image, *survives));
    }
    // Another name for the dead drill's image: only the drill's own tag may go.
    let kept_tag = format!("{}-keep:1", unique_name("drillfake"));
    cleanup.images.push(kept_tag.clone());
    docker(&["tag", &fakes[1].2, &kept_tag]);

    let listed = ok(lifeboat(&repo).env("LIFEBOAT_HOST", &here).args(["cleanup", "--json"]));
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    let action = |reference: &str| -> String {
        let found = listed.iter().find(|l| l["name"] == reference);
        let found = found.unwrap_or_else(|| panic!("{reference} not listed: {listed:?}"));
        assert_eq!(found["done"], false, "listing did something: {found}");
        found["action"].as_str().unwrap().to_string()
    };
    for (case, object, image, _) in &fakes {
        for reference in [object, image] {
            let action = action(reference);
            let expected = match *case {
                "foreign" => "another host's",
                "running" => "is running",
                _ => "is gone: remove it",
            };
            assert!(action.contains(expected), "{case} {reference}: {action}");
            assert!(exists("image", image) && exists("volume", object), "listing removed {case}");
        }
    }

    let report =
        ok(lifeboat(&repo).env("LIFEBOAT_HOST", &here).args(["drill", "--name", &name, "--json"]));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report[0]["passed"], true, "{report}");
    for (case, object, image, survives) in &fakes {
        for kind in ["container", "volume"] {
            assert_eq!(exists(kind, object), *survives, "{case} {kind} {object}");
        }
        assert_eq!(exists("image", image), *survives, "{case} image {image}");
    }
    assert!(exists("image", &kept_tag), "an image tag that is not a drill's was removed");

    let cleaned =
        ok(lifeboat(&repo).env("LIFEBOAT_HOST", &here).args(["cleanup", "--force", "--json"]));
    for (case, object, image, survives) in &fakes {
        if *survives {
            assert!(exists("container", object) && exists("image", image), "{case}: {cleaned}");
        }
    }
}
