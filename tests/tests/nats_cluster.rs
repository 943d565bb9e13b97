//! A replicated bus: the admin and two workers (real processes) connect to a 3-node NATS
//! cluster with every URL and `--nats-replicas 3`. Builds are submitted (some run, some
//! wait, some are watched with `ocelot watch`) and the node that leads the job stream is
//! killed (SIGKILL) mid-run. Afterwards: every build ran once and passed, every watcher
//! printed the stored log once, a new build was accepted and run within seconds of the
//! kill, and the killed node, started again, caught up (its replica is current and holds the
//! same last sequence as the leader). The figures are printed.
//!
//! Beside it, on one server: streams with another replica count are changed in place by
//! the admin, and a count the server cannot hold is refused with a message that says how
//! to fix it.

// helpers of tests may panic like the tests themselves
#![allow(clippy::unwrap_used)]

use ocelot_core::BuildState;
use ocelot_core::events::{BuildEvent, EventKind};
use ocelot_core::ids::{Attempt, BuildId, Seq};
use ocelot_core::model::Build;
use ocelot_core::queue::{Bus, JOBS_STREAM, LOGS_STREAM, Setup};
use ocelot_core::store::Store;
use ocelot_tests::cluster::bin_dir;
use ocelot_tests::git::GitServer;
use ocelot_tests::nats::{NatsServer, NatsUser};
use ocelot_tests::nats_cluster::{ClusterNode, NatsCluster};

/// One 3-node cluster at a time: two electing at once on 2 cores (and racing for the free
/// ports they picked) could miss the meta-leader wait.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
use ocelot_tests::postgres::TestDatabase;
use ocelot_tests::services::ServiceProcess;
use ocelot_tests::{free_port, wait_until};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// Builds submitted before the node dies.
const BUILDS: usize = 12;
/// Of them, the first and last few are followed by `ocelot watch`.
const WATCHED_FIRST: usize = 2;
const WATCHED_LAST: usize = 2;
const WORKERS: usize = 2;
const CONCURRENCY: usize = 3;
/// The stream of the worker registry.
const REGISTRY_STREAM: &str = "KV_OCELOT_WORKERS";

/// Each build prints 30 numbered lines, a fifth of a second apart (6 s).
const COUNTING_YML: &str = r#"image: ocelot/busybox
stages:
  - name: count
    script:
      - 'i=0; while [ $i -lt 30 ]; do echo "build $BUILD_NUMBER line $i"; i=$((i+1)); sleep 0.2; done'
"#;
const LINES: usize = 30;

struct Services {
    dir: tempfile::TempDir,
    _database: TestDatabase,
    /// Reads what the store does not show (whether a build's job reached the stream).
    sql: tokio_postgres::Client,
    store: Store,
    token: String,
    admin: ServiceProcess,
    admin_url: String,
    workers: Vec<ServiceProcess>,
    git: GitServer,
}

impl Services {
    /// An admin and [`WORKERS`] workers connected to `nats` (every URL, its replicas).
    async fn start(nats: &NatsCluster) -> Services {
        let dir = tempfile::tempdir().unwrap();
        let database = TestDatabase::create().await.unwrap();
        let git = GitServer::start(&dir.path().join("git")).await.unwrap();
        let master_key = dir.path().join("master.key");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(
                &master_key,
                ocelot_core::secrets::cipher::MasterKey::generate_hex().unwrap(),
            )
            .unwrap();
            std::fs::set_permissions(&master_key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let store = Store::connect(&database.url).await.unwrap();
        let token = store
            .create_token("nats-cluster", ocelot_core::auth::TokenScope::Admin)
            .await
            .unwrap();
        let env = vec![
            ("OCELOT_DATABASE_URL".to_string(), database.url.clone()),
            (
                "OCELOT_MASTER_KEY_FILE".to_string(),
                master_key.to_string_lossy().to_string(),
            ),
            ("RUST_LOG".to_string(), "info".to_string()),
        ];
        let bin = bin_dir().unwrap();
        let address = format!("127.0.0.1:{}", free_port().unwrap());
        let admin = ServiceProcess::start(
            "admin",
            &bin.join("ocelot-admin"),
            &[
                "--listen".to_string(),
                address.clone(),
                "--cache-dir".to_string(),
                dir.path().join("admin").to_string_lossy().to_string(),
            ],
            &[env.clone(), nats.env(NatsUser::Admin)].concat(),
            &dir.path().join("admin.log"),
        )
        .unwrap();
        let mut workers = Vec::new();
        for index in 0..WORKERS {
            let args: Vec<String> = [
                "--worker-id",
                &format!("cluster-worker-{index}"),
                "--concurrency",
                &CONCURRENCY.to_string(),
                "--cache-dir",
                &dir.path().join(format!("worker-{index}")).to_string_lossy(),
                "--min-free-disk-mib",
                "1",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            workers.push(
                ServiceProcess::start(
                    &format!("worker-{index}"),
                    &bin.join("ocelot-worker"),
                    &args,
                    &[env.clone(), nats.env(NatsUser::Worker)].concat(),
                    &dir.path().join(format!("worker-{index}.log")),
                )
                .unwrap(),
            );
        }
        let (sql, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let services = Services {
            dir,
            _database: database,
            sql,
            store,
            token,
            admin,
            admin_url: format!("http://{address}"),
            workers,
            git,
        };
        let answered = wait_until("the admin to answer", Duration::from_secs(60), || async {
            let (code, _, _) = services.ocelot(&["repos", "list"]).await;
            (code == 0).then_some(())
        })
        .await;
        if let Err(error) = answered {
            panic!("{error}\n{}", services.logs());
        }
        services
    }

    fn ocelot_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(bin_dir().unwrap().join("ocelot"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("OCELOT_ADMIN", &self.admin_url)
            .env("OCELOT_TOKEN", &self.token)
            .env("NO_COLOR", "1")
            .env_remove("OCELOT_TLS_CA")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// `ocelot ARGS`: exit code, stdout, stderr.
    async fn ocelot(&self, args: &[&str]) -> (i32, String, String) {
        let output =
            tokio::time::timeout(Duration::from_secs(60), self.ocelot_command(args).output())
                .await
                .unwrap_or_else(|_| panic!("ocelot {args:?} did not end within a minute"))
                .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `ocelot build -r REPO --no-follow`: the new build's id, or what the CLI said.
    async fn try_submit(&self, repo: &str) -> Result<BuildId, String> {
        let (code, stdout, stderr) = self.ocelot(&["build", "-r", repo, "--no-follow"]).await;
        if code != 0 {
            return Err(format!("exit code {code}: {stdout}\n{stderr}"));
        }
        stdout
            .trim()
            .parse()
            .map_err(|e| format!("{e}: {stdout}\n{stderr}"))
    }

    /// The builds `ids`, as Postgres has them now.
    async fn builds(&self, ids: &[BuildId]) -> Vec<Build> {
        let mut builds = Vec::with_capacity(ids.len());
        for &id in ids {
            builds.push(self.store.get_build(id).await.unwrap());
        }
        builds
    }

    async fn count_in(&self, ids: &[BuildId], state: BuildState) -> usize {
        self.builds(ids)
            .await
            .iter()
            .filter(|b| b.state == state)
            .count()
    }

    /// Whether the job of `build_id` reached the job stream (its publish was acknowledged).
    async fn job_published(&self, build_id: BuildId) -> bool {
        let id = build_id.get();
        self.sql
            .query_one("SELECT job_published FROM builds WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0)
    }

    fn logs(&self) -> String {
        let mut text = format!("--- admin\n{}\n", self.admin.log_tail(30));
        for worker in &self.workers {
            text.push_str(&format!("--- {}\n{}\n", worker.name, worker.log_tail(30)));
        }
        text
    }
}

/// A running `ocelot watch ID --json`.
struct Watcher {
    build_id: BuildId,
    output: tokio::task::JoinHandle<std::io::Result<std::process::Output>>,
}

fn watch(services: &Services, build_id: BuildId) -> Watcher {
    let mut command = services.ocelot_command(&["watch", &build_id.to_string(), "--json"]);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    Watcher {
        build_id,
        output: tokio::spawn(child.wait_with_output()),
    }
}

/// The replica count of stream `name` as `node` holds it.
async fn replicas_on(node: &ClusterNode, name: &str) -> Option<u64> {
    node.stream(name).await?["config"]["num_replicas"].as_u64()
}

/// Whether `node` caught up on stream `name`: the leader (another node) reports its replica
/// current, and it holds the leader's last sequence. Both sequences when it did.
async fn caught_up(nats: &NatsCluster, node: &ClusterNode, name: &str) -> Option<(u64, u64)> {
    let leader_name = nats.stream_leader(name).await?;
    let on_leader = nats.node(&leader_name).ok()?.stream(name).await?;
    let current = on_leader["cluster"]["replicas"]
        .as_array()?
        .iter()
        .any(|replica| replica["name"] == node.name.as_str() && replica["current"] == true);
    let leader_seq = on_leader["state"]["last_seq"].as_u64()?;
    let node_seq = node.stream(name).await?["state"]["last_seq"].as_u64()?;
    (current && leader_seq == node_seq).then_some((leader_seq, node_seq))
}

/// Checks one watcher's output against the stored log of its build: every event once, the
/// final attempt's events without a gap, its lines equal to the stored ones, the result last.
async fn check_watcher(store: &Store, watcher: Watcher, build: &Build) {
    let output = tokio::time::timeout(Duration::from_secs(120), watcher.output)
        .await
        .expect("a watcher did not end within 2 minutes after its build")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let events: Vec<BuildEvent> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut seen = HashSet::new();
    for event in &events {
        assert!(
            seen.insert((event.attempt, event.seq)),
            "watcher of build {}: event {}/{} shown twice\n{stderr}",
            build.id,
            event.attempt,
            event.seq
        );
    }
    let mut per_attempt: BTreeMap<Attempt, Vec<u64>> = BTreeMap::new();
    for event in &events {
        per_attempt
            .entry(event.attempt)
            .or_default()
            .push(event.seq.get());
    }
    let final_seqs = per_attempt.get(&build.attempt).cloned().unwrap_or_default();
    let contiguous: Vec<u64> = (1..=u64::try_from(final_seqs.len()).unwrap()).collect();
    assert_eq!(
        final_seqs, contiguous,
        "watcher of build {}: the events have a gap\n{stderr}",
        build.id
    );
    let shown: Vec<(Seq, String)> = events
        .iter()
        .filter(|e| e.attempt == build.attempt)
        .filter_map(|e| match &e.kind {
            EventKind::Line { text, .. } => Some((e.seq, text.clone())),
            _ => None,
        })
        .collect();
    let stored: Vec<(Seq, String)> = store
        .lines(build.id, build.attempt)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.seq, l.text))
        .collect();
    assert_eq!(
        shown, stored,
        "watcher of build {}: output differs from the stored log\n{stderr}",
        build.id
    );
    assert!(
        matches!(events.last().map(|e| &e.kind), Some(EventKind::Result { state, .. }) if *state == build.state),
        "watcher of build {}: no result {} at the end\n{stderr}",
        build.id,
        build.state
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "watcher of build {}: {stderr}",
        build.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn builds_survive_the_death_of_the_node_leading_the_job_stream() {
    let _cluster_turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let began = Instant::now();
    let mut nats = NatsCluster::start(3).await.unwrap();
    let services = Services::start(&nats).await;
    // the admin and workers made every stream with three replicas (the consumers inherit it)
    for name in [JOBS_STREAM, LOGS_STREAM, REGISTRY_STREAM] {
        for node in &nats.nodes {
            let replicas = wait_until(
                &format!("{name} on {}", node.name),
                Duration::from_secs(30),
                || replicas_on(node, name),
            )
            .await
            .unwrap();
            assert_eq!(replicas, 3, "{name} on {}", node.name);
        }
    }
    let repo = services
        .git
        .create_repo("counting", &[("ocelot.yml", COUNTING_YML)])
        .unwrap();
    let (code, stdout, stderr) = services
        .ocelot(&["repos", "add", "counting", &repo.url])
        .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");

    let mut submitted = Vec::new();
    for _ in 0..BUILDS {
        submitted.push(services.try_submit("counting").await.unwrap());
    }
    let mut watchers = Vec::new();
    for &build_id in submitted
        .iter()
        .take(WATCHED_FIRST)
        .chain(submitted.iter().skip(BUILDS - WATCHED_LAST))
    {
        watchers.push(watch(&services, build_id));
    }
    // the workers' consumer inherits the stream's replicas (it names none: `num_replicas` 0)
    wait_until(
        "the job consumer to have three replicas",
        Duration::from_secs(30),
        || async {
            let stream = nats.nodes[0].stream(JOBS_STREAM).await?;
            let consumer = stream["consumer_detail"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == "jobs-default")?
                .clone();
            // the replicas besides the node asked
            let others = consumer["cluster"]["replicas"].as_array()?.len();
            (others + 1 == 3).then_some(())
        },
    )
    .await
    .unwrap();

    // mid-run: some builds running, the others waiting in the queue
    let (running, queued) = wait_until(
        "builds to run, others to wait",
        Duration::from_secs(90),
        || async {
            let running = services.count_in(&submitted, BuildState::Running).await;
            let queued = services.count_in(&submitted, BuildState::Queued).await;
            (running >= 3 && queued >= 3).then_some((running, queued))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", services.logs()));
    let leader = wait_until("the job stream's leader", Duration::from_secs(30), || {
        nats.stream_leader(JOBS_STREAM)
    })
    .await
    .unwrap();
    eprintln!(
        "nats cluster: SIGKILL {leader}, the job stream's leader ({running} builds running, {queued} queued)"
    );
    nats.kill(&leader).unwrap();
    let killed_at = Instant::now();

    // a new build is accepted, and a new leader elected, within seconds
    let accept = async {
        wait_until(
            "a build to be accepted after the kill",
            Duration::from_secs(60),
            || async { services.try_submit("counting").await.ok() },
        )
        .await
        .unwrap()
    };
    let elect = async {
        wait_until(
            "a new leader of the job stream",
            Duration::from_secs(60),
            || nats.stream_leader(JOBS_STREAM),
        )
        .await
        .unwrap()
    };
    let (after_kill, new_leader) = tokio::join!(
        async {
            let build = accept.await;
            (build, killed_at.elapsed())
        },
        async {
            let leader = elect.await;
            (leader, killed_at.elapsed())
        }
    );
    let (new_build, accepted_after) = after_kill;
    let (new_leader, elected_after) = new_leader;
    eprintln!(
        "nats cluster: {new_leader} leads the job stream after {elected_after:.1?}; build {new_build} accepted after {accepted_after:.1?}"
    );
    assert_ne!(new_leader, leader);
    submitted.push(new_build);
    let new_job_published_after = wait_until(
        "the job of the build submitted after the kill to reach the stream",
        Duration::from_secs(60),
        || async {
            services
                .job_published(new_build)
                .await
                .then(|| killed_at.elapsed())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", services.logs()));

    // every build ends, each run once, in its first attempt
    let finals = wait_until(
        "every build to be final",
        Duration::from_secs(240),
        || async {
            let ours = services.builds(&submitted).await;
            ours.iter().all(|b| b.state.is_final()).then_some(ours)
        },
    )
    .await;
    let finals = finals.unwrap_or_else(|error| {
        panic!("{error}\n{}", services.logs());
    });
    for build in &finals {
        assert_eq!(
            (build.state, build.attempt),
            (BuildState::Passed, Attempt::FIRST),
            "build {} #{}: {:?}\n{}",
            build.id,
            build.number,
            build.reason,
            services.logs()
        );
        let lines = services.store.lines(build.id, build.attempt).await.unwrap();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        let prefix = format!("build {} line ", build.number);
        let printed: Vec<&str> = texts
            .iter()
            .copied()
            .filter(|t| t.starts_with(&prefix))
            .collect();
        let want: Vec<String> = (0..LINES).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(
            printed, want,
            "build {}: its work ran once, whole",
            build.id
        );
        assert_eq!(
            build.line_count,
            Some(i64::try_from(lines.len()).unwrap()),
            "build {}: the result's line count differs from the stored log",
            build.id
        );
    }
    // every watcher printed its build's stored log once
    let watched = watchers.len();
    for watcher in watchers {
        let build = finals.iter().find(|b| b.id == watcher.build_id).unwrap();
        check_watcher(&services.store, watcher, build).await;
    }

    // the killed node comes back and catches up on every stream
    nats.start_again(&leader).await.unwrap();
    let restarted_at = Instant::now();
    let node = nats.node(&leader).unwrap();
    let mut sequences = Vec::new();
    for name in [JOBS_STREAM, LOGS_STREAM, REGISTRY_STREAM] {
        let seqs = wait_until(
            &format!("{leader} to catch up on {name}"),
            Duration::from_secs(60),
            || caught_up(&nats, node, name),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", node.log()));
        sequences.push(format!("{name} {}", seqs.0));
    }
    let caught_up_after = restarted_at.elapsed();

    let figures = format!(
        "nats cluster figures: 3 nodes, --nats-replicas 3; killed {leader} (the job stream's leader) with {running} builds running and {queued} queued; \
         new leader {new_leader} after {:.1} s; a new build accepted after {:.1} s, its job on the stream after {:.1} s; \
         {} builds, each passed in its first attempt; {watched} watchers saw every line once; \
         {leader} restarted and caught up in {:.1} s (last sequences: {}); took {:.1} s",
        elected_after.as_secs_f64(),
        accepted_after.as_secs_f64(),
        new_job_published_after.as_secs_f64(),
        finals.len(),
        caught_up_after.as_secs_f64(),
        sequences.join(", "),
        began.elapsed().as_secs_f64()
    );
    eprintln!("{figures}");
    // scripts/test.sh prints it after the run (cargo test hides a passing test's output)
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("nats-cluster-figures.txt"),
        format!("{figures}\n"),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_changes_the_replicas_of_existing_streams() {
    let _cluster_turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let nats = NatsCluster::start(3).await.unwrap();
    // streams of an installation that ran with one replica
    let single = nats.args(NatsUser::Admin).with_replicas(1);
    Bus::connect(&single, Setup::Streams).await.unwrap();
    // a worker started with three leaves them to the admin
    Bus::connect(&nats.args(NatsUser::Worker), Setup::StreamsIfMissing)
        .await
        .unwrap();
    for name in [JOBS_STREAM, LOGS_STREAM, REGISTRY_STREAM] {
        let mut held = Vec::new();
        for node in &nats.nodes {
            held.extend(replicas_on(node, name).await);
        }
        assert_eq!(held, [1], "{name}: one node holds it, with one replica");
    }
    // the admin started with three changes them in place
    Bus::connect(&nats.args(NatsUser::Admin), Setup::Streams)
        .await
        .unwrap();
    for name in [JOBS_STREAM, LOGS_STREAM, REGISTRY_STREAM] {
        for node in &nats.nodes {
            wait_until(
                &format!("{name} on {} with three replicas", node.name),
                Duration::from_secs(30),
                || async { (replicas_on(node, name).await? == 3).then_some(()) },
            )
            .await
            .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_one_server_cannot_hold_are_refused_with_a_fix() {
    let nats = NatsServer::start().await.unwrap();
    // new streams
    let three = nats.args(NatsUser::Admin).with_replicas(3);
    let Err(error) = Bus::connect(&three, Setup::Streams).await else {
        panic!("three replicas on one server were accepted");
    };
    let message = error.to_string();
    assert!(
        message.contains("--nats-replicas 3 needs a NATS cluster"),
        "{message}"
    );
    // existing streams
    Bus::connect(&nats.args(NatsUser::Admin), Setup::Streams)
        .await
        .unwrap();
    let Err(error) = Bus::connect(&three, Setup::Streams).await else {
        panic!("three replicas on one server were accepted");
    };
    let message = error.to_string();
    assert!(
        message.contains("keeps 1 replica(s) and --nats-replicas asks for 3")
            && message.contains("nats stream edit OCELOT_JOBS --replicas 3"),
        "{message}"
    );
    // a worker leaves them to the admin: it starts
    let worker = nats.args(NatsUser::Worker).with_replicas(3);
    Bus::connect(&worker, Setup::StreamsIfMissing)
        .await
        .unwrap();
}
