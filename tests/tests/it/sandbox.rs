//! The build sandbox, attacked with real builds on `ocelot/busybox`: a fork bomb hits the
//! pids limit, a memory hog is killed at the memory limit, a build cannot connect to another
//! build's container nor to the worker host's own addresses (while a worker started with
//! `--build-host-access allow` can: the control that proves a reach would be seen), and the
//! container's HostConfig has the limits, `no-new-privileges` and the capability set. Every
//! time the worker goes on and other builds pass.

use crate::repo_with;
use bollard::Docker;
use ocelot_core::BuildState;
use ocelot_core::ids::BuildId;
use ocelot_tests::cluster::{CliOutput, Cluster, WorkerSpec};
use ocelot_tests::wait_until;
use ocelot_worker::{HostAccess, SandboxArgs};
use std::time::Duration;

/// A build that passes and says so.
const PASSING_YML: &str = r#"image: ocelot/busybox
stages:
  - name: work
    script:
      - 'for i in 1 2 3 4 5 6 7 8 9 10; do echo "step $i"; sleep 0.2; done'
      - echo all steps done
"#;

async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

/// The newest build of `repo`.
async fn build_of(cluster: &Cluster, repo: &str) -> Option<ocelot_core::model::Build> {
    cluster
        .builds()
        .await
        .ok()?
        .into_iter()
        .find(|b| b.repo_name == repo)
}

/// The stored log of `build_id`'s attempt, one string.
async fn log_of(cluster: &Cluster, build: &ocelot_core::model::Build) -> String {
    let lines = cluster.store.lines(build.id, build.attempt).await.unwrap();
    lines
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `ocelot build -r REPO` (bounded: 3 minutes) and returns its output.
async fn build(cluster: &Cluster, repo: &str) -> CliOutput {
    cluster.ocelot(&["build", "-r", repo]).await.unwrap()
}

/// Asserts that the worker takes one more build and passes it.
async fn worker_still_builds(cluster: &Cluster, repo: &str) {
    let output = build(cluster, repo).await;
    assert_eq!(output.code, 0, "{}", output.both());
    assert!(
        output.stdout.contains("all steps done"),
        "{}",
        output.both()
    );
}

/// Waits until no container of `build_id` is left by the cluster's workers, and every
/// network of the installation is in use (by a running build or a warm container): the
/// build's own network went with its container.
async fn wait_cleaned_up(cluster: &Cluster, docker: &Docker, build_id: BuildId) {
    wait_until(
        &format!("build {build_id}'s container and network to be removed"),
        Duration::from_secs(30),
        || async {
            if !cluster.containers_of_build(build_id).await.ok()?.is_empty() {
                return None;
            }
            let filters = std::collections::HashMap::from([(
                "label".to_string(),
                vec![format!("io.ocelot.instance={}", cluster.instance)],
            )]);
            let networks = docker
                .list_networks(Some(
                    bollard::query_parameters::ListNetworksOptionsBuilder::new()
                        .filters(&filters)
                        .build(),
                ))
                .await
                .ok()?;
            for network in networks {
                let inspected = docker
                    .inspect_network(
                        network.id.as_deref()?,
                        None::<bollard::query_parameters::InspectNetworkOptions>,
                    )
                    .await
                    .ok()?;
                if inspected.containers.unwrap_or_default().is_empty() {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_hits_the_pids_limit_while_another_build_passes() {
    let cluster = Cluster::start().await.unwrap();
    let docker = docker().await;
    repo_with(
        &cluster,
        "bomb",
        r#"image: ocelot/busybox
resources: {pids: 64}
stages:
  - name: bomb
    timeout: 15s
    script:
      - 'bomb() { bomb | bomb & }; bomb; while :; do sleep 1; done'
"#,
        &[],
    )
    .await;
    repo_with(&cluster, "alongside", PASSING_YML, &[]).await;
    let (bombed, alongside) = tokio::join!(build(&cluster, "bomb"), async {
        // the bomb's container runs first
        wait_until("the bomb to start", Duration::from_secs(60), || async {
            let bomb = build_of(&cluster, "bomb").await?;
            (bomb.state == BuildState::Running).then_some(())
        })
        .await
        .unwrap();
        build(&cluster, "alongside").await
    });
    assert_eq!(alongside.code, 0, "{}", alongside.both());
    assert!(alongside.stdout.contains("all steps done"));
    assert_ne!(bombed.code, 0, "{}", bombed.both());
    let bomb = build_of(&cluster, "bomb").await.unwrap();
    assert_eq!(bomb.state, BuildState::TimedOut, "{bomb:?}");
    // the limit stopped it: forks were refused inside the container
    assert!(
        log_of(&cluster, &bomb).await.contains("can't fork"),
        "no refused fork in the bomb's log"
    );
    wait_cleaned_up(&cluster, &docker, bomb.id).await;
    worker_still_builds(&cluster, "alongside").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_is_killed_at_its_limit_and_the_worker_goes_on() {
    let cluster = Cluster::start().await.unwrap();
    let docker = docker().await;
    repo_with(
        &cluster,
        "hog",
        r#"image: ocelot/busybox
resources: {memory: 64m}
stages:
  - name: hog
    script:
      - echo before the hog
      - dd if=/dev/zero of=/dev/null bs=256M count=1
      - echo after the hog
"#,
        &[],
    )
    .await;
    repo_with(&cluster, "after", PASSING_YML, &[]).await;
    let output = build(&cluster, "hog").await;
    assert_ne!(output.code, 0, "{}", output.both());
    assert!(
        output.stdout.contains("before the hog"),
        "{}",
        output.both()
    );
    assert!(
        !output.stdout.contains("after the hog"),
        "{}",
        output.both()
    );
    let hog = build_of(&cluster, "hog").await.unwrap();
    assert_eq!(hog.state, BuildState::Failed, "{hog:?}");
    // killed by the OOM killer: SIGKILL, 128 + 9
    assert!(
        hog.reason
            .as_deref()
            .unwrap_or_default()
            .contains("exit code 137"),
        "{hog:?}"
    );
    wait_cleaned_up(&cluster, &docker, hog.id).await;
    worker_still_builds(&cluster, "after").await;
}

/// The IP address of `build_id`'s container on its network, and its inspection.
async fn container_of(
    docker: &Docker,
    cluster: &Cluster,
    build_id: BuildId,
) -> (String, bollard::models::ContainerInspectResponse) {
    let ids = cluster.containers_of_build(build_id).await.unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let inspected = docker.inspect_container(&ids[0], None).await.unwrap();
    let networks = inspected
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.clone())
        .unwrap_or_default();
    assert_eq!(networks.len(), 1, "one network per build: {networks:?}");
    let (name, endpoint) = networks.into_iter().next().unwrap();
    assert_ne!(name, "bridge", "the build is on Docker's default bridge");
    let ip = endpoint.ip_address.unwrap_or_default();
    assert!(!ip.is_empty(), "no IP on {name}");
    (ip, inspected)
}

/// A build that listens on port 8080 of its container, checks that it reaches its own
/// listener on its container IP, then stays until `/tmp/done` exists (at most 2 minutes).
const LISTENER_YML: &str = r#"image: ocelot/busybox
resources: {memory: 256m, cpus: 0.5, pids: 100}
stages:
  - name: listen
    script:
      - 'nc -ll -p 8080 -e echo answer-from-a &'
      - sleep 0.5
      - 'nc -w 3 "$(hostname -i)" 8080 </dev/null | grep -q answer-from-a && echo a-reaches-itself'
      - 'i=0; while [ ! -e /tmp/done ] && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_cannot_reach_another_builds_container_and_its_box_is_limited() {
    let cluster = Cluster::start().await.unwrap();
    let docker = docker().await;
    repo_with(&cluster, "listener", LISTENER_YML, &[]).await;
    let (listened, a) = tokio::join!(build(&cluster, "listener"), async {
        let a = wait_until(
            "build A to reach its own listener",
            Duration::from_secs(90),
            || async {
                let a = build_of(&cluster, "listener").await?;
                log_of(&cluster, &a)
                    .await
                    .contains("a-reaches-itself")
                    .then_some(a)
            },
        )
        .await
        .unwrap();
        probe_from_another_build(&cluster, &docker, a.id).await;
        a
    });
    // A goes on and passes
    assert_eq!(listened.code, 0, "{}", listened.both());
    wait_cleaned_up(&cluster, &docker, a.id).await;
}

/// Creates and removes Docker networks until `stop`.
async fn churn_networks(stop: tokio_util::sync::CancellationToken) {
    let name = format!(
        "ocelot-churn-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    while !stop.is_cancelled() {
        for verb in ["create", "rm"] {
            let _ = tokio::process::Command::new("docker")
                .args(["network", verb, &name])
                .output()
                .await;
        }
    }
}

/// While A runs: its box is checked, build B fails to reach A's listener, then A is told
/// to end.
async fn probe_from_another_build(cluster: &Cluster, docker: &Docker, a: BuildId) {
    let (a_ip, inspected) = container_of(docker, cluster, a).await;

    // its box: the file's lower limits, no swap, no new privileges, few capabilities
    let host = inspected.host_config.unwrap();
    assert_eq!(host.memory, Some(256 << 20));
    assert_eq!(host.memory_swap, Some(256 << 20));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.pids_limit, Some(100));
    assert_eq!(
        host.security_opt,
        Some(vec!["no-new-privileges".to_string()])
    );
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    let mut added = host.cap_add.unwrap_or_default();
    added.sort();
    assert_eq!(
        added,
        [
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "FSETID",
            "KILL",
            "NET_BIND_SERVICE",
            "SETGID",
            "SETUID"
        ]
    );

    // build B tries A's listener
    repo_with(
        cluster,
        "intruder",
        &format!(
            r#"image: ocelot/busybox
stages:
  - name: intrude
    script:
      - 'for i in 1 2 3 4 5 6; do if nc -w 1 {a_ip} 8080 </dev/null | grep answer-from-a; then echo REACHED-A; fi; done; echo a-unreachable'
      - echo all steps done
"#
        ),
        &[],
    )
    .await;
    // while B tries, networks come and go on the Docker host (other builds' and warm
    // containers' do at any moment): Docker unhooks its own isolation rules for a moment
    // each time, which must not open a way from B to A
    let churning = tokio_util::sync::CancellationToken::new();
    let churn = tokio::spawn(churn_networks(churning.clone()));
    let intruder = build(cluster, "intruder").await;
    churning.cancel();
    churn.await.unwrap();
    assert_eq!(intruder.code, 0, "{}", intruder.both());
    assert!(
        intruder.stdout.contains("a-unreachable"),
        "{}",
        intruder.both()
    );
    assert!(
        !intruder.stdout.contains("REACHED-A"),
        "{}",
        intruder.both()
    );

    let ids = cluster.containers_of_build(a).await.unwrap();
    let exec = docker
        .create_exec(
            &ids[0],
            bollard::exec::CreateExecOptions {
                cmd: Some(vec!["touch".to_string(), "/tmp/done".to_string()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    docker
        .start_exec(
            &exec.id,
            Some(bollard::exec::StartExecOptions {
                detach: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
}

/// An IPv4 address of this host that is neither loopback nor on a build bridge (`eth0`'s).
fn host_address() -> String {
    let output = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let interface = fields.next()?;
            let address = fields.nth(1)?.split('/').next()?;
            let ours = ["lo", "ocb", "oca", "veth"]
                .iter()
                .any(|prefix| interface.starts_with(prefix));
            (!ours).then(|| address.to_string())
        })
        .expect("this host has a non-loopback IPv4 address")
}

/// A cluster with a default (`deny`) worker and an `allow` one, which takes the builds of
/// `machineTag: open`.
async fn deny_and_allow_workers() -> Cluster {
    let open = SandboxArgs {
        build_host_access: HostAccess::Allow,
        ..WorkerSpec::default().sandbox
    };
    Cluster::start_with(vec![
        WorkerSpec::default(),
        WorkerSpec {
            tags: vec!["open".to_string()],
            sandbox: open,
            ..WorkerSpec::default()
        },
    ])
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_reach_the_host_only_on_a_worker_that_allows_it() {
    let cluster = deny_and_allow_workers().await;
    // a service on every address of the host, like a Postgres listening on 0.0.0.0
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut stream, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = stream.write_all(b"answer-from-host\n").await;
            }
        }
    });
    let host_ip = host_address();
    let script = format!(
        r#"    script:
      - 'gateway=$(ip route | awk "/^default/ {{print \$3}}"); echo "gateway $gateway"'
      - 'for target in "$gateway" {host_ip}; do if nc -w 3 "$target" {port} </dev/null | grep -q answer-from-host; then echo "REACHED $target"; else echo "blocked $target"; fi; done'
      - echo all steps done
"#
    );
    repo_with(
        &cluster,
        "closed",
        &format!("image: ocelot/busybox\nstages:\n  - name: probe\n{script}"),
        &[],
    )
    .await;
    repo_with(
        &cluster,
        "opened",
        &format!("image: ocelot/busybox\nmachineTag: open\nstages:\n  - name: probe\n{script}"),
        &[],
    )
    .await;

    let closed = build(&cluster, "closed").await;
    assert_eq!(closed.code, 0, "{}", closed.both());
    assert!(closed.stdout.contains("gateway "), "{}", closed.both());
    assert!(!closed.stdout.contains("REACHED"), "{}", closed.both());
    assert_eq!(
        closed.stdout.matches("blocked ").count(),
        2,
        "{}",
        closed.both()
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);

    // the control: the same probe on an `allow` worker reaches the host both ways
    let opened = build(&cluster, "opened").await;
    assert_eq!(opened.code, 0, "{}", opened.both());
    assert_eq!(
        opened.stdout.matches("REACHED ").count(),
        2,
        "{}",
        opened.both()
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    server.abort();
    worker_still_builds_after(&cluster).await;
}

/// The `deny` worker still takes a build after the probes.
async fn worker_still_builds_after(cluster: &Cluster) {
    repo_with(cluster, "after", PASSING_YML, &[]).await;
    worker_still_builds(cluster, "after").await;
}

/// A stand-in for a cloud's instance metadata service: a network namespace of the test's own
/// holding 169.254.169.254, routed from the host through a veth pair, with an HTTP-ish
/// listener that answers `metadata-answer`. Removed when dropped.
struct MetadataService {
    namespace: String,
    host_side: String,
    server: std::process::Child,
}

impl MetadataService {
    fn start() -> MetadataService {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
        let namespace = format!("ocmeta{suffix}");
        let host_side = format!("ocmh{suffix}");
        let inner_side = format!("ocmi{suffix}");
        let ip = |args: &[&str]| {
            let output = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        ip(&["netns", "add", &namespace]);
        ip(&[
            "link",
            "add",
            &host_side,
            "type",
            "veth",
            "peer",
            "name",
            &inner_side,
        ]);
        ip(&["link", "set", &inner_side, "netns", &namespace]);
        ip(&["addr", "add", "169.254.169.253/32", "dev", &host_side]);
        ip(&["link", "set", &host_side, "up"]);
        ip(&["route", "add", "169.254.169.254/32", "dev", &host_side]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &namespace, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", "169.254.169.254/32", "dev", &inner_side]);
        inside(&["link", "set", &inner_side, "up"]);
        inside(&["link", "set", "lo", "up"]);
        inside(&["route", "add", "default", "dev", &inner_side]);
        let server = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &namespace,
                "busybox",
                "nc",
                "-ll",
                "-p",
                "80",
                "-e",
                "echo",
                "metadata-answer",
            ])
            .spawn()
            .unwrap();
        MetadataService {
            namespace,
            host_side,
            server,
        }
    }
}

impl Drop for MetadataService {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_side])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_do_not_reach_cloud_instance_metadata_unless_their_worker_allows_the_host() {
    let metadata = MetadataService::start();
    let cluster = deny_and_allow_workers().await;
    let probe = "    script:\n      - 'if nc -w 3 169.254.169.254 80 </dev/null | grep -q metadata-answer; then echo REACHED-METADATA; else echo metadata-blocked; fi'\n";
    repo_with(
        &cluster,
        "closed",
        &format!("image: ocelot/busybox\nstages:\n  - name: probe\n{probe}"),
        &[],
    )
    .await;
    repo_with(
        &cluster,
        "opened",
        &format!("image: ocelot/busybox\nmachineTag: open\nstages:\n  - name: probe\n{probe}"),
        &[],
    )
    .await;
    let closed = build(&cluster, "closed").await;
    assert_eq!(closed.code, 0, "{}", closed.both());
    assert!(
        closed.stdout.contains("metadata-blocked"),
        "{}",
        closed.both()
    );
    // the control: routed the same way from an `allow` worker's build, it answers
    let opened = build(&cluster, "opened").await;
    assert_eq!(opened.code, 0, "{}", opened.both());
    assert!(
        opened.stdout.contains("REACHED-METADATA"),
        "{}",
        opened.both()
    );
    drop(metadata);
    worker_still_builds_after(&cluster).await;
}
