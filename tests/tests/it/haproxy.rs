//! Two admins (processes) behind a real HAProxy that checks them with their gRPC health
//! service. `ocelot build` and `ocelot watch` reach the admins only through HAProxy; the
//! admin serving their log streams is SIGKILLed mid-build: both CLIs resume through the other
//! admin and show every line exactly once, in order, and exit with the build's result;
//! HAProxy's health checks take the dead admin out of rotation.

use ocelot_core::ids::BuildId;
use ocelot_tests::cluster::{Cluster, bin_dir};
use ocelot_tests::haproxy::HaProxy;
use ocelot_tests::nats::NatsUser;
use ocelot_tests::services::ServiceProcess;
use ocelot_tests::{free_port, wait_for_port, wait_until};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LINES: u32 = 40;

/// Prints `line 1` to `line 40`, 0.2 s apart.
const SLOW_YML: &str = r#"image: ocelot/busybox
stages:
  - name: count
    script:
      - 'i=1; while [ $i -le 40 ]; do echo "line $i"; i=$((i+1)); sleep 0.2; done'
"#;

/// An `ocelot` process whose output is collected line by line while it runs.
struct RunningCli {
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    child: tokio::process::Child,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

fn collect_lines<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    from: R,
    into: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    use tokio::io::AsyncBufReadExt;
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.lock().unwrap().push(line);
        }
    })
}

impl RunningCli {
    /// `ocelot ARGS` with `OCELOT_ADMIN=admin`.
    fn start(cluster: &Cluster, admin: &str, args: &[&str]) -> RunningCli {
        let mut child = tokio::process::Command::new(bin_dir().unwrap().join("ocelot"))
            .args(args)
            .current_dir(cluster.dir.path())
            .env("OCELOT_ADMIN", admin)
            .env("OCELOT_TOKEN", &cluster.token)
            .env("NO_COLOR", "1")
            .env_remove("OCELOT_TLS_CA")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect_lines(child.stdout.take().unwrap(), stdout.clone()),
            collect_lines(child.stderr.take().unwrap(), stderr.clone()),
        ];
        RunningCli {
            stdout,
            stderr,
            child,
            readers,
        }
    }

    fn has_printed(&self, line: &str) -> bool {
        self.stdout.lock().unwrap().iter().any(|l| l == line)
    }

    /// Waits for the exit (2 minutes at most): exit code, stdout, stderr.
    async fn finish(mut self) -> (i32, String, String) {
        let status = tokio::time::timeout(Duration::from_secs(120), self.child.wait())
            .await
            .expect("ocelot did not end within 2 minutes")
            .unwrap();
        for reader in self.readers {
            reader.await.unwrap();
        }
        (
            status.code().unwrap_or(-1),
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n"),
        )
    }
}

/// The numbers of the `line N` lines, in the order printed.
fn line_numbers(stdout: &str) -> Vec<u32> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.parse().ok())
        .collect()
}

/// Starts admin `index` as a process on the cluster's database, NATS and master key.
fn start_admin(cluster: &Cluster, index: usize) -> (ServiceProcess, String) {
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let dir = cluster.dir.path();
    let args = vec![
        "--listen".to_string(),
        address.clone(),
        "--cache-dir".to_string(),
        dir.join(format!("admin-process-{index}"))
            .to_string_lossy()
            .to_string(),
    ];
    let env = [
        vec![
            (
                "OCELOT_DATABASE_URL".to_string(),
                cluster.database.url.clone(),
            ),
            (
                "OCELOT_MASTER_KEY_FILE".to_string(),
                dir.join("master.key").to_string_lossy().to_string(),
            ),
            (
                ocelot_core::storage::OCELOT_STORAGE.to_string(),
                format!("dir:{}", dir.join("storage").display()),
            ),
            ("RUST_LOG".to_string(), "info".to_string()),
        ],
        cluster.nats.env(NatsUser::Admin),
    ]
    .concat();
    let admin = ServiceProcess::start(
        &format!("admin-{index}"),
        &bin_dir().unwrap().join("ocelot-admin"),
        &args,
        &env,
        &dir.join(format!("admin-{index}.log")),
    )
    .unwrap();
    (admin, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_through_haproxy_resumes_on_the_other_admin_when_its_admin_dies() {
    let cluster = Cluster::start().await.unwrap();
    crate::repo_with(&cluster, "slow", SLOW_YML, &[]).await;
    let mut admins: Vec<(ServiceProcess, String)> =
        (0..2).map(|index| start_admin(&cluster, index)).collect();
    for (admin, address) in &admins {
        let port = address.rsplit_once(':').unwrap().1.parse().unwrap();
        if let Err(error) = wait_for_port(port, Duration::from_secs(60)).await {
            panic!("{error}\n{}", admin.log_tail(30));
        }
    }
    let servers: Vec<(String, String)> = admins
        .iter()
        .map(|(admin, address)| (admin.name.clone(), address.clone()))
        .collect();
    let haproxy = HaProxy::start(&servers).await.unwrap();
    haproxy
        .wait_for(
            "both admins to pass HAProxy's gRPC health check",
            Duration::from_secs(30),
            |servers| servers.len() == 2 && servers.iter().all(|s| s.is_up()),
        )
        .await
        .unwrap();

    // `ocelot build` follows its build through HAProxy: one stream, on one admin
    let build = RunningCli::start(&cluster, &haproxy.url(), &["build", "-r", "slow"]);
    wait_until(
        "ocelot build to show line 1",
        Duration::from_secs(120),
        || async { build.has_printed("line 1").then_some(()) },
    )
    .await
    .unwrap_or_else(|error| panic!("{error}\n{}", haproxy.log_text()));
    let build_id: BuildId = cluster.builds().await.unwrap()[0].id;
    let streams_of_build = haproxy.servers().await.unwrap();
    let build_admin = streams_of_build
        .iter()
        .find(|server| server.current == 1)
        .unwrap_or_else(|| panic!("no admin serves the build's stream: {streams_of_build:?}"))
        .name
        .clone();

    // `ocelot watch` joins it: its stream is the one more on an admin
    let watch = RunningCli::start(&cluster, &haproxy.url(), &["watch", &build_id.to_string()]);
    wait_until(
        "both CLIs to show line 10",
        Duration::from_secs(120),
        || async { (build.has_printed("line 10") && watch.has_printed("line 10")).then_some(()) },
    )
    .await
    .unwrap_or_else(|error| panic!("{error}\n{}", haproxy.log_text()));
    let streams = haproxy.servers().await.unwrap();
    let watch_admin = streams
        .iter()
        .find(|server| {
            let before = streams_of_build
                .iter()
                .find(|b| b.name == server.name)
                .map_or(0, |b| b.current);
            server.current == before + 1
        })
        .unwrap_or_else(|| {
            panic!("no admin took the watch's stream: {streams_of_build:?} then {streams:?}")
        })
        .name
        .clone();
    let shared = watch_admin == build_admin;
    eprintln!(
        "haproxy: the build's stream on {build_admin}, the watch's on {watch_admin}: {streams:?}"
    );

    // the admin serving the watch (and the build's stream too, when they share it) dies
    let victim_index = admins
        .iter()
        .position(|(admin, _)| admin.name == watch_admin)
        .unwrap();
    let killed_at = Instant::now();
    admins[victim_index].0.kill().await.unwrap();
    let shown_at_kill = (
        line_numbers(&build.stdout.lock().unwrap().join("\n")).len(),
        line_numbers(&watch.stdout.lock().unwrap().join("\n")).len(),
    );
    eprintln!("haproxy: killed {watch_admin}; lines shown then (build, watch): {shown_at_kill:?}");

    // the health checks take it out of rotation
    let after = haproxy
        .wait_for(
            "HAProxy to mark the killed admin down",
            Duration::from_secs(30),
            |servers| servers.iter().any(|s| s.name == watch_admin && s.is_down()),
        )
        .await
        .unwrap();
    eprintln!(
        "haproxy: {watch_admin} down after {:?}: {after:?}",
        killed_at.elapsed()
    );

    let expected: Vec<u32> = (1..=LINES).collect();
    for (what, cli, on_the_killed_admin) in [("build", build, shared), ("watch", watch, true)] {
        let (code, stdout, stderr) = cli.finish().await;
        eprintln!("haproxy: ocelot {what} (exit {code}) stderr:\n{stderr}");
        assert_eq!(
            code,
            0,
            "ocelot {what}: {stdout}\n{stderr}\n{}",
            haproxy.log_text()
        );
        assert!(stderr.contains("PASSED"), "ocelot {what}: {stderr}");
        assert_eq!(
            line_numbers(&stdout),
            expected,
            "ocelot {what} showed a gap or a duplicate:\n{stdout}\n{stderr}"
        );
        // a stream of the killed admin was resumed (through the other: the only one left)
        assert_eq!(
            stderr.contains("ocelot: reconnected"),
            on_the_killed_admin,
            "ocelot {what} (its stream on the killed admin: {on_the_killed_admin}): {stderr}"
        );
    }
    eprintln!(
        "haproxy: done {:?} after the kill: {:?}",
        killed_at.elapsed(),
        haproxy.servers().await.unwrap()
    );
}
