//! The chaos suite: Postgres, NATS, two admins and three workers as real processes; builds
//! submitted and watched while a worker is SIGKILLed, another SIGTERMed, NATS and Postgres
//! restarted and an admin restarted under its watchers. Afterwards, from Postgres and
//! Docker: every build final and run to completion exactly once in its final attempt, no two
//! attempts of a build at the same time, every watcher's output equal to the stored log, no
//! container or workspace left. The figures are printed.

// helpers of tests may panic like the tests themselves
#![allow(clippy::unwrap_used)]

use ocelot_core::BuildState;
use ocelot_core::build_state::StageState;
use ocelot_core::events::{BuildEvent, EventKind};
use ocelot_core::ids::{Attempt, BuildId, Seq};
use ocelot_core::model::Build;
use ocelot_core::store::Store;
use ocelot_tests::cluster::{bin_dir, workspaces_in};
use ocelot_tests::git::GitServer;
use ocelot_tests::nats::{NatsServer, NatsUser};
use ocelot_tests::pg_server::PostgresServer;
use ocelot_tests::services::ServiceProcess;
use ocelot_tests::{free_port, wait_until};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Builds submitted before the chaos starts.
const BUILDS: usize = 54;
/// Builds submitted while NATS is down.
const BUILDS_DURING_OUTAGE: usize = 4;
/// Builds followed by `ocelot watch` through the admin that gets restarted.
const WATCHED: usize = 8;
const WORKERS: usize = 3;

/// Each build prints `5 + 15 * (number % 4)` lines a tenth of a second apart (0.5 to 5 s),
/// and every seventh fails on purpose.
const CHAOS_YML: &str = r#"image: ocelot/busybox
stages:
  - name: work
    script:
      - 'n=$BUILD_NUMBER; i=0; while [ $i -lt $((5 + 15 * (n % 4))) ]; do echo "build $n line $i"; i=$((i+1)); sleep 0.1; done'
  - name: verdict
    script:
      - 'if [ $((BUILD_NUMBER % 7)) -eq 0 ]; then echo "build $BUILD_NUMBER fails on purpose"; exit 3; fi'
      - 'echo "build $BUILD_NUMBER passed"'
"#;

/// Graph builds (a diamond whose middle is a 2-job matrix plus a stage beside it, with a
/// service container), submitted among the others so that the chaos hits some of them
/// mid-graph: no service or job container may be left behind.
const GRAPH_YML: &str = r#"image: ocelot/busybox
services:
  - name: web
    image: ocelot/busybox
    command: 'mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 8080 -h /www'
    wait: { port: 8080, timeout: 30s }
stages:
  - name: build
    script: ['wget -qO- http://web:8080/', 'sleep 1', 'echo "graph $BUILD_NUMBER build done"']
  - name: test
    needs: [build]
    matrix: {SHARD: ["1", "2"]}
    script: ['sleep 2', 'echo "graph $BUILD_NUMBER test $SHARD done"']
  - name: lint
    needs: [build]
    script: ['sleep 1', 'echo "graph $BUILD_NUMBER lint done"']
  - name: package
    needs: [test, lint]
    script: ['echo "graph $BUILD_NUMBER package done"']
"#;

/// One graph build every this many of the others.
const GRAPH_EVERY: usize = 9;

/// The stages a graph build records, in order.
const GRAPH_STAGES: [&str; 5] = [
    "build",
    "test (SHARD=1)",
    "test (SHARD=2)",
    "lint",
    "package",
];

fn expected_lines(number: i64) -> usize {
    usize::try_from(5 + 15 * (number % 4)).unwrap()
}

fn expected_state(number: i64) -> BuildState {
    if number % 7 == 0 {
        BuildState::Failed
    } else {
        BuildState::Passed
    }
}

struct Chaos {
    dir: tempfile::TempDir,
    postgres: PostgresServer,
    nats: NatsServer,
    git: GitServer,
    store: Store,
    token: String,
    admins: Vec<(ServiceProcess, String)>,
    workers: Vec<ServiceProcess>,
}

impl Chaos {
    async fn start() -> Chaos {
        let dir = tempfile::tempdir().unwrap();
        let postgres = PostgresServer::start().unwrap();
        let database_url = postgres.create_database("ocelot").await.unwrap();
        let nats = NatsServer::start().await.unwrap();
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
        let store = Store::connect(&database_url).await.unwrap();
        let token = store
            .create_token("chaos", ocelot_core::auth::TokenScope::Admin)
            .await
            .unwrap();
        let env = vec![
            ("OCELOT_DATABASE_URL".to_string(), database_url),
            (
                "OCELOT_MASTER_KEY_FILE".to_string(),
                master_key.to_string_lossy().to_string(),
            ),
            ("RUST_LOG".to_string(), "info".to_string()),
        ];
        let bin = bin_dir().unwrap();
        let mut admins = Vec::new();
        for index in 0..2 {
            let address = format!("127.0.0.1:{}", free_port().unwrap());
            let args = vec![
                "--listen".to_string(),
                address.clone(),
                "--cache-dir".to_string(),
                dir.path()
                    .join(format!("admin-{index}"))
                    .to_string_lossy()
                    .to_string(),
            ];
            let admin = ServiceProcess::start(
                &format!("admin-{index}"),
                &bin.join("ocelot-admin"),
                &args,
                &[env.clone(), nats.env(NatsUser::Admin)].concat(),
                &dir.path().join(format!("admin-{index}.log")),
            )
            .unwrap();
            admins.push((admin, format!("http://{address}")));
        }
        let mut workers = Vec::new();
        for index in 0..WORKERS {
            let args: Vec<String> = [
                "--worker-id",
                &format!("chaos-worker-{index}"),
                "--concurrency",
                "3",
                "--cache-dir",
                &dir.path().join(format!("worker-{index}")).to_string_lossy(),
                "--job-ack-wait",
                "8s",
                "--shutdown-grace",
                "2s",
                "--sweep-every",
                "1s",
                "--check-every",
                "500ms",
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
        let chaos = Chaos {
            dir,
            postgres,
            nats,
            git,
            store,
            token,
            admins,
            workers,
        };
        for index in 0..chaos.admins.len() {
            chaos.wait_admin(index).await;
        }
        chaos
    }

    fn ocelot_command(&self, admin: usize, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(bin_dir().unwrap().join("ocelot"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("OCELOT_ADMIN", &self.admins[admin].1)
            .env("OCELOT_TOKEN", &self.token)
            .env("NO_COLOR", "1")
            .env_remove("OCELOT_TLS_CA")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// `ocelot ARGS` through admin `admin`: exit code, stdout, stderr.
    async fn ocelot(&self, admin: usize, args: &[&str]) -> (i32, String, String) {
        let output = tokio::time::timeout(
            Duration::from_secs(120),
            self.ocelot_command(admin, args).output(),
        )
        .await
        .unwrap_or_else(|_| panic!("ocelot {args:?} did not end within 2 minutes"))
        .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    async fn wait_admin(&self, index: usize) {
        let waited = wait_until("the admin to answer", Duration::from_secs(60), || async {
            let (code, _, _) = self.ocelot(index, &["repos", "list"]).await;
            (code == 0).then_some(())
        })
        .await;
        if let Err(error) = waited {
            panic!("{error}\n{}", self.admins[index].0.log_tail(40));
        }
    }

    /// `ocelot build -r chaos --no-follow` through `admin`: the new build's id.
    async fn submit(&self, admin: usize) -> BuildId {
        self.submit_to("chaos", admin).await
    }

    async fn submit_to(&self, repo: &str, admin: usize) -> BuildId {
        let (code, stdout, stderr) = self
            .ocelot(admin, &["build", "-r", repo, "--no-follow"])
            .await;
        assert_eq!(code, 0, "build --no-follow: {stdout}\n{stderr}");
        stdout.trim().parse().unwrap()
    }

    /// Builds of the installation, read while Postgres may be restarting.
    async fn builds(&self) -> Option<Vec<Build>> {
        self.store
            .list_builds(&ocelot_core::store::BuildFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .ok()
    }

    async fn running_count(&self) -> usize {
        self.builds()
            .await
            .map(|builds| {
                builds
                    .iter()
                    .filter(|b| b.state == BuildState::Running)
                    .count()
            })
            .unwrap_or(0)
    }

    fn service_logs(&self) -> String {
        let mut text = String::new();
        for (admin, _) in &self.admins {
            text.push_str(&format!("--- {}\n{}\n", admin.name, admin.log_tail(30)));
        }
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

/// Every activity of one attempt recorded in Postgres: its stages and lines, as times.
async fn attempt_span(
    store: &Store,
    build_id: BuildId,
    attempt: Attempt,
) -> Option<(SystemTime, SystemTime)> {
    let mut times: Vec<SystemTime> = store
        .lines(build_id, attempt)
        .await
        .unwrap()
        .iter()
        .map(|l| l.at)
        .collect();
    for stage in store.stages(build_id, attempt).await.unwrap() {
        times.extend(stage.started_at);
        times.extend(stage.finished_at);
    }
    Some((*times.iter().min()?, *times.iter().max()?))
}

fn leftover_workspaces(root: &Path) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for index in 0..WORKERS {
        left.extend(workspaces_in(&root.join(format!("worker-{index}"))));
    }
    left
}

/// Follows `docker events` for the installation's build containers until `stop`, then
/// returns, per `(build id, attempt)`, when its container started and died (Docker's clock,
/// nanoseconds). Followed live: Docker keeps few past events.
fn follow_container_lifetimes(
    instance: &str,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<Lifetimes> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new("docker")
        .args([
            "events",
            "--filter",
            "type=container",
            "--filter",
            "event=start",
            "--filter",
            "event=die",
            "--filter",
            "event=rename",
            "--filter",
            &format!("label=io.ocelot.instance={instance}"),
            "--format",
            "{{json .}}",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    tokio::spawn(async move {
        let _child = child;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut lifetimes = Lifetimes::new();
        loop {
            let line = tokio::select! {
                () = stop.cancelled() => break,
                line = lines.next_line() => match line {
                    Ok(Some(line)) => line,
                    _ => break,
                },
            };
            let event: serde_json::Value = serde_json::from_str(&line).unwrap();
            // named after the attempt when created for it or when it took a warm container
            // (a rename: its start, as far as the attempt is concerned)
            let Some((build, attempt)) = event["Actor"]["Attributes"]["name"]
                .as_str()
                .and_then(ocelot_worker::container_owner)
            else {
                continue;
            };
            let at = event["timeNano"].as_i64().unwrap();
            let entry = lifetimes.entry((build, attempt)).or_default();
            match event["Action"].as_str() {
                Some("start" | "rename") => entry.0 = Some(at),
                Some("die") => entry.1 = Some(at),
                _ => {}
            }
        }
        lifetimes
    })
}

type Lifetimes = BTreeMap<(BuildId, Attempt), (Option<i64>, Option<i64>)>;

async fn leftover_containers(instance: &str) -> Vec<String> {
    let docker = bollard::Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    // warm containers of running workers are not leftovers (they go when their worker stops)
    let filters = std::collections::HashMap::from([
        (
            "label".to_string(),
            vec![format!("io.ocelot.instance={instance}")],
        ),
        ("name".to_string(), vec!["^/ocelot-build-".to_string()]),
    ]);
    docker
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn builds_survive_killed_workers_restarted_servers_and_a_restarted_admin() {
    let began = Instant::now();
    let mut chaos = Chaos::start().await;
    let instance = chaos.store.instance_id().await.unwrap();
    let events_stop = tokio_util::sync::CancellationToken::new();
    let events = follow_container_lifetimes(&instance, events_stop.clone());
    let repo = chaos
        .git
        .create_repo("chaos", &[("ocelot.yml", CHAOS_YML)])
        .unwrap();
    let (code, stdout, stderr) = chaos.ocelot(0, &["repos", "add", "chaos", &repo.url]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let graph_repo = chaos
        .git
        .create_repo("graph", &[("ocelot.yml", GRAPH_YML)])
        .unwrap();
    let (code, stdout, stderr) = chaos
        .ocelot(0, &["repos", "add", "graph", &graph_repo.url])
        .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");

    // submit through both admins, graph builds among the others
    let mut submitted = Vec::new();
    let mut graphs = Vec::new();
    for index in 0..BUILDS {
        if index % GRAPH_EVERY == 0 {
            graphs.push(chaos.submit_to("graph", index % 2).await);
        }
        submitted.push(chaos.submit(index % 2).await);
    }
    // watchers follow the last builds (still queued or running when their admin restarts)
    // through admin 1, which is restarted under them
    let mut watchers = Vec::new();
    for &build_id in submitted.iter().skip(BUILDS - WATCHED) {
        let command = chaos.ocelot_command(1, &["watch", &build_id.to_string(), "--json"]);
        let mut command = command;
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = command.spawn().unwrap();
        watchers.push(Watcher {
            build_id,
            output: tokio::spawn(child.wait_with_output()),
        });
    }

    // the chaos, while builds run
    wait_until("builds to run", Duration::from_secs(60), || async {
        (chaos.running_count().await >= 6).then_some(())
    })
    .await
    .unwrap();
    eprintln!(
        "chaos: SIGKILL worker-0 ({} builds running)",
        chaos.running_count().await
    );
    chaos.workers[0].kill().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    chaos.workers[0].start_again().unwrap();

    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!(
        "chaos: SIGTERM worker-1 ({} builds running)",
        chaos.running_count().await
    );
    let exit = chaos.workers[1]
        .terminate(Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(exit, Some(0), "{}", chaos.workers[1].log_tail(30));
    chaos.workers[1].start_again().unwrap();

    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("chaos: NATS down");
    chaos.nats.kill().await.unwrap();
    for index in 0..BUILDS_DURING_OUTAGE {
        submitted.push(chaos.submit(index % 2).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    chaos.nats.start_again().await.unwrap();
    eprintln!("chaos: NATS back");

    tokio::time::sleep(Duration::from_secs(3)).await;
    eprintln!("chaos: Postgres restart");
    let registry = ocelot_core::queue::Bus::connect(
        &chaos.nats.args(NatsUser::Admin),
        ocelot_core::queue::Setup::Streams,
    )
    .await
    .unwrap();
    chaos.postgres.stop("fast").unwrap();
    // back-pressure: the workers take no jobs meanwhile and say why
    let paused = wait_until(
        "a worker to pause for Postgres",
        Duration::from_secs(10),
        || async {
            let workers = registry.list_workers().await.ok()?;
            workers
                .into_iter()
                .find_map(|w| w.paused.filter(|p| p.contains("Postgres")))
        },
    )
    .await
    .unwrap();
    eprintln!("chaos: a worker says: {paused}");
    chaos.postgres.start_again().unwrap();
    eprintln!("chaos: Postgres back");
    wait_until(
        "every worker to take jobs again",
        Duration::from_secs(30),
        || async {
            let workers = registry.list_workers().await.ok()?;
            (workers.len() == WORKERS && workers.iter().all(|w| w.paused.is_none())).then_some(())
        },
    )
    .await
    .unwrap();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let watched_ids: Vec<BuildId> = watchers.iter().map(|w| w.build_id).collect();
    let watched_unfinished = chaos
        .builds()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|b| watched_ids.contains(&b.id) && !b.state.is_final())
        .count();
    eprintln!(
        "chaos: admin-1 killed and restarted under its watchers ({watched_unfinished} of their builds not finished)"
    );
    assert!(
        watched_unfinished > 0,
        "every watched build ended before the admin restart: the restart tests nothing"
    );
    chaos.admins[1].0.kill().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    chaos.admins[1].0.start_again().unwrap();

    // every build ends
    let finals = wait_until(
        "every build to be final",
        Duration::from_secs(300),
        || async {
            let builds = chaos.builds().await?;
            let ours: Vec<Build> = builds
                .into_iter()
                .filter(|b| submitted.contains(&b.id))
                .collect();
            (ours.len() == submitted.len() && ours.iter().all(|b| b.state.is_final()))
                .then_some(ours)
        },
    )
    .await;
    let finals = match finals {
        Ok(finals) => finals,
        Err(error) => {
            let states: Vec<String> = chaos
                .builds()
                .await
                .unwrap_or_default()
                .iter()
                .filter(|b| !b.state.is_final())
                .map(|b| format!("{}:{}@{}", b.id, b.state, b.attempt))
                .collect();
            panic!("{error}: not final {states:?}\n{}", chaos.service_logs());
        }
    };

    // every graph build passed, every stage and matrix job recorded once, passed, its work
    // printed once in the final attempt: a lost worker cost a retry, never a half-recorded
    // graph (and no job container is left: see below)
    let graph_finals = wait_until(
        "every graph build to be final",
        Duration::from_secs(120),
        || async {
            let builds = chaos.builds().await?;
            let ours: Vec<Build> = builds
                .into_iter()
                .filter(|b| graphs.contains(&b.id))
                .collect();
            (ours.len() == graphs.len() && ours.iter().all(|b| b.state.is_final())).then_some(ours)
        },
    )
    .await
    .unwrap();
    let mut graphs_retried = 0;
    for build in &graph_finals {
        assert_eq!(
            build.state,
            BuildState::Passed,
            "graph build {}: {:?}",
            build.id,
            build.reason
        );
        if build.attempt > Attempt::FIRST {
            graphs_retried += 1;
        }
        let stages = chaos.store.stages(build.id, build.attempt).await.unwrap();
        let recorded: Vec<(&str, StageState)> =
            stages.iter().map(|s| (s.name.as_str(), s.state)).collect();
        let want: Vec<(&str, StageState)> = GRAPH_STAGES
            .iter()
            .map(|name| (*name, StageState::Passed))
            .collect();
        assert_eq!(recorded, want, "stages of graph build {}", build.id);
        let lines = chaos.store.lines(build.id, build.attempt).await.unwrap();
        let done: Vec<&str> = lines
            .iter()
            .map(|l| l.text.as_str())
            .filter(|t| t.starts_with("graph ") && t.ends_with(" done"))
            .collect();
        let n = build.number;
        let mut want_done = vec![
            format!("graph {n} build done"),
            format!("graph {n} test 1 done"),
            format!("graph {n} test 2 done"),
            format!("graph {n} lint done"),
            format!("graph {n} package done"),
        ];
        let mut got_done: Vec<String> = done.iter().map(|t| t.to_string()).collect();
        want_done.sort();
        got_done.sort();
        assert_eq!(got_done, want_done, "graph build {}: work lines", build.id);
    }

    // every build ran to completion exactly once, in its final attempt
    let mut duplicates = 0;
    let mut lost = 0;
    for build in &finals {
        let expected = expected_state(build.number);
        if build.state != expected {
            lost += 1;
            eprintln!(
                "build {} #{} ended {} ({:?}), expected {expected}",
                build.id, build.number, build.state, build.reason
            );
            continue;
        }
        let stages = chaos.store.stages(build.id, build.attempt).await.unwrap();
        let stage_states: Vec<StageState> = stages.iter().map(|s| s.state).collect();
        let want_stages = if expected == BuildState::Passed {
            vec![StageState::Passed, StageState::Passed]
        } else {
            vec![StageState::Passed, StageState::Failed]
        };
        assert_eq!(stage_states, want_stages, "stages of build {}", build.id);
        let lines = chaos.store.lines(build.id, build.attempt).await.unwrap();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        let want: Vec<String> = (0..expected_lines(build.number))
            .map(|i| format!("build {} line {i}", build.number))
            .collect();
        let printed: Vec<&str> = texts
            .iter()
            .copied()
            .filter(|t| t.starts_with(&format!("build {} line ", build.number)))
            .collect();
        if printed != want {
            duplicates += 1;
            eprintln!(
                "build {}: work lines {printed:?}, expected {want:?}",
                build.id
            );
        }
        let seqs: Vec<Seq> = lines.iter().map(|l| l.seq).collect();
        let unique: HashSet<Seq> = seqs.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seqs.len(),
            "build {}: a line stored twice",
            build.id
        );
        assert_eq!(
            build.line_count,
            Some(i64::try_from(lines.len()).unwrap()),
            "build {}: the result's line count differs from the stored log",
            build.id
        );
    }

    // no two attempts of one build ran at the same time: by their containers' lifetimes
    // (Docker's events) and by what they recorded (Postgres)
    // the last containers die when their builds end: give the events a moment
    tokio::time::sleep(Duration::from_secs(2)).await;
    events_stop.cancel();
    let lifetimes = events.await.unwrap();
    assert!(
        lifetimes.len() >= finals.len(),
        "docker events saw {} containers",
        lifetimes.len()
    );
    let mut pairs_checked = 0;
    for build in finals.iter().filter(|b| b.attempt > Attempt::FIRST) {
        for attempt in (1..build.attempt.get()).map(Attempt::from) {
            let (Some((_, Some(died))), Some((Some(next_started), _))) = (
                lifetimes.get(&(build.id, attempt)),
                lifetimes.get(&(build.id, attempt.next())),
            ) else {
                continue;
            };
            pairs_checked += 1;
            assert!(
                died <= next_started,
                "build {}: attempt {}'s container started while attempt {attempt}'s still ran",
                build.id,
                attempt.next()
            );
        }
    }
    let mut retried = 0;
    let mut handed_back = 0;
    for build in finals.iter().filter(|b| b.attempt > Attempt::FIRST) {
        retried += 1;
        for attempt in (1..build.attempt.get()).map(Attempt::from) {
            let lines = chaos.store.lines(build.id, attempt).await.unwrap();
            if lines
                .iter()
                .any(|l| l.text.contains("handed back to the queue"))
            {
                handed_back += 1;
            }
        }
        let mut previous_end: Option<SystemTime> = None;
        for attempt in (1..=build.attempt.get()).map(Attempt::from) {
            let Some((start, end)) = attempt_span(&chaos.store, build.id, attempt).await else {
                continue;
            };
            if let Some(previous_end) = previous_end {
                assert!(
                    previous_end <= start,
                    "build {}: attempt {attempt} began before the attempt before it ended",
                    build.id
                );
            }
            previous_end = Some(end);
        }
    }

    // every watcher printed the stored log: no gap, no duplicate
    let mut reconnected = 0;
    for watcher in watchers {
        let output = tokio::time::timeout(Duration::from_secs(120), watcher.output)
            .await
            .expect("a watcher did not end within 2 minutes after its build")
            .unwrap()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let build = finals.iter().find(|b| b.id == watcher.build_id).unwrap();
        if stderr.contains("ocelot: reconnected") {
            reconnected += 1;
        }
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
        let final_attempt = build.attempt;
        let final_seqs = per_attempt.get(&final_attempt).cloned().unwrap_or_default();
        let contiguous: Vec<u64> = (1..=u64::try_from(final_seqs.len()).unwrap()).collect();
        assert_eq!(
            final_seqs, contiguous,
            "watcher of build {}: the final attempt's events have a gap\n{stderr}",
            build.id
        );
        let shown: Vec<(Seq, String)> = events
            .iter()
            .filter(|e| e.attempt == final_attempt)
            .filter_map(|e| match &e.kind {
                EventKind::Line { text, .. } => Some((e.seq, text.clone())),
                _ => None,
            })
            .collect();
        let stored: Vec<(Seq, String)> = chaos
            .store
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
        let result = events.last().map(|e| &e.kind);
        assert!(
            matches!(result, Some(EventKind::Result { state, .. }) if *state == build.state),
            "watcher of build {}: no result {} at the end\n{stderr}",
            build.id,
            build.state
        );
        assert_eq!(
            output.status.code(),
            Some(if build.state == BuildState::Passed {
                0
            } else {
                1
            }),
            "watcher of build {}: {stderr}",
            build.id
        );
    }

    // nothing left behind
    wait_until("no container left", Duration::from_secs(30), || async {
        leftover_containers(&instance)
            .await
            .is_empty()
            .then_some(())
    })
    .await
    .unwrap();
    wait_until("no workspace left", Duration::from_secs(30), || async {
        leftover_workspaces(chaos.dir.path())
            .is_empty()
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", leftover_workspaces(chaos.dir.path())));

    // every service stops cleanly
    for worker in &mut chaos.workers {
        assert_eq!(
            worker.terminate(Duration::from_secs(60)).await.unwrap(),
            Some(0)
        );
    }
    for (admin, _) in &mut chaos.admins {
        assert_eq!(
            admin.terminate(Duration::from_secs(30)).await.unwrap(),
            Some(0)
        );
    }

    let completed = finals.iter().filter(|b| b.state.is_final()).count();
    let figures = format!(
        "chaos figures: submitted {}, completed {completed}, retried {retried} (attempts handed back at SIGTERM: {handed_back}), \
         lost {lost}, duplicates {duplicates}, attempts overlapping 0 (of {pairs_checked} consecutive pairs with containers), \
         watched {WATCHED} (resumed after the admin restart: {reconnected}); graph builds with a matrix {} (passed, retried {graphs_retried}); took {:.1} s",
        submitted.len(),
        graph_finals.len(),
        began.elapsed().as_secs_f64()
    );
    eprintln!("{figures}");
    // scripts/test.sh prints it after the run (cargo test hides a passing test's output)
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-figures.txt"),
        format!("{figures}\n"),
    )
    .unwrap();
    assert_eq!(lost, 0, "builds lost or ended wrongly");
    assert_eq!(duplicates, 0, "builds whose work ran twice or partly");
    assert!(retried > 0, "the killed worker's builds were retried");
    assert!(
        pairs_checked > 0,
        "no retried build had containers for two attempts: the overlap check saw nothing"
    );
    assert!(
        reconnected > 0,
        "watchers resumed after their admin restarted"
    );
}
