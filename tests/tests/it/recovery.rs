//! Recovery from a dead or paused worker, with real `ocelot-worker` processes and their
//! default job lease (`--job-ack-wait`): a worker SIGKILLed mid-build has its build taken
//! over by the other worker as attempt 2, which tells watchers at once that the worker was
//! lost; nothing of attempt 1 is shown or stored after attempt 2 began. A worker paused for
//! less than its lease keeps its build; one paused for longer loses it to the other worker,
//! and once it runs again it stops the build and writes nothing. The times are printed
//! (BENCHMARKS.md, "Recovery under chaos"), never asserted.

use crate::repo_with;
use ocelot_core::BuildState;
use ocelot_core::events::{BuildEvent, EventKind};
use ocelot_core::ids::{Attempt, BuildId};
use ocelot_core::model::Build;
use ocelot_tests::cluster::{Cluster, bin_dir};
use ocelot_tests::nats::NatsUser;
use ocelot_tests::services::ServiceProcess;
use ocelot_tests::wait_until;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncBufReadExt;

/// About 12 s of output, a line every 0.3 s.
const SLOW_YML: &str = r#"image: ocelot/busybox
stages:
  - name: work
    script:
      - 'i=0; while [ $i -lt 40 ]; do echo "tick $i"; i=$((i+1)); sleep 0.3; done'
"#;

/// Two worker processes with the default job lease, one build at a time each.
fn start_workers(cluster: &Cluster) -> Vec<ServiceProcess> {
    let env = [
        vec![
            (
                "OCELOT_DATABASE_URL".to_string(),
                cluster.database.url.clone(),
            ),
            (
                "OCELOT_MASTER_KEY_FILE".to_string(),
                cluster
                    .dir
                    .path()
                    .join("master.key")
                    .to_string_lossy()
                    .to_string(),
            ),
            ("RUST_LOG".to_string(), "info".to_string()),
        ],
        cluster.nats.env(NatsUser::Worker),
    ]
    .concat();
    (0..2)
        .map(|index| {
            let args: Vec<String> = [
                "--worker-id",
                &format!("recovery-worker-{index}"),
                "--concurrency",
                "1",
                "--cache-dir",
                &cluster
                    .dir
                    .path()
                    .join(format!("worker-{index}"))
                    .to_string_lossy(),
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
            ServiceProcess::start(
                &format!("worker-{index}"),
                &bin_dir().unwrap().join("ocelot-worker"),
                &args,
                &env,
                &cluster.dir.path().join(format!("worker-{index}.log")),
            )
            .unwrap()
        })
        .collect()
}

/// `ocelot watch ID --json`, its events as they arrive with when they arrived.
fn watch(
    cluster: &Cluster,
    build_id: BuildId,
) -> tokio::task::JoinHandle<Vec<(Instant, BuildEvent)>> {
    let mut child = tokio::process::Command::new(bin_dir().unwrap().join("ocelot"))
        .args(["watch", &build_id.to_string(), "--json"])
        .current_dir(cluster.dir.path())
        .env("OCELOT_ADMIN", &cluster.admin_url)
        .env("OCELOT_TOKEN", &cluster.token)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut events = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let event: BuildEvent = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("ocelot watch --json printed {line:?}: {e}"));
            events.push((Instant::now(), event));
        }
        let _ = child.wait().await;
        events
    })
}

/// Queues a build of `repo` and waits until its first attempt printed a few lines.
async fn running_build(cluster: &Cluster, repo: &str) -> Build {
    let queued = cluster
        .ocelot(&["build", "-r", repo, "--no-follow"])
        .await
        .unwrap();
    assert_eq!(queued.code, 0, "{}", queued.both());
    let build_id: BuildId = queued
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no build id printed: {}", queued.both()));
    wait_until(
        "the build to print a few lines",
        Duration::from_secs(120),
        || async {
            let build = cluster.store.get_build(build_id).await.ok()?;
            let lines = cluster.store.lines(build_id, build.attempt).await.ok()?;
            (build.state == BuildState::Running
                && lines.iter().filter(|l| l.text.starts_with("tick")).count() >= 3)
                .then_some(build)
        },
    )
    .await
    .unwrap()
}

async fn final_build(cluster: &Cluster, build_id: BuildId) -> Build {
    wait_until("the build to end", Duration::from_secs(180), || async {
        let build = cluster.store.get_build(build_id).await.ok()?;
        build.state.is_final().then_some(build)
    })
    .await
    .unwrap()
}

/// The worker process running `build`, among `workers`.
fn index_of(workers: &[ServiceProcess], build: &Build) -> usize {
    let worker = build.worker.as_deref().unwrap();
    workers
        .iter()
        .position(|w| worker == format!("recovery-{}", w.name))
        .unwrap_or_else(|| panic!("build {} runs on unknown worker {worker}", build.id))
}

fn signal(worker: &ServiceProcess, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(worker.pid().unwrap()).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

/// The lines of a line event (one line, or a run of them).
fn lines_of(event: &BuildEvent) -> Vec<&str> {
    match &event.kind {
        EventKind::Line { text, .. } => vec![text.as_str()],
        EventKind::Lines { text, .. } => text.lines().collect(),
        _ => Vec::new(),
    }
}

/// Whether a line of `event` passes `check`.
fn has_line(event: &BuildEvent, check: impl Fn(&str) -> bool) -> bool {
    lines_of(event).into_iter().any(check)
}

/// Nothing of an earlier attempt after the first event of a later one, in what the watcher
/// printed.
fn assert_attempts_in_order(events: &[(Instant, BuildEvent)]) {
    let mut highest = Attempt::NONE;
    for (_, event) in events {
        assert!(
            event.attempt >= highest,
            "the watcher printed an event of attempt {} after attempt {highest} began: {event:?}",
            event.attempt
        );
        highest = event.attempt;
    }
}

/// Every stored event of `build_id`'s `attempt` happened before `before`.
async fn assert_stored_before(
    cluster: &Cluster,
    build_id: BuildId,
    attempt: Attempt,
    before: SystemTime,
) {
    let lines = cluster.store.lines(build_id, attempt).await.unwrap();
    assert!(!lines.is_empty(), "attempt {attempt} stored no line");
    for line in lines {
        assert!(
            line.at <= before,
            "attempt {attempt} stored a line after the next attempt began: {line:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_build_is_taken_over_and_its_watchers_told_at_once() {
    let cluster = Cluster::start_with(Vec::new()).await.unwrap();
    repo_with(&cluster, "slow", SLOW_YML, &[]).await;
    let mut workers = start_workers(&cluster);
    let build = running_build(&cluster, "slow").await;
    let watcher = watch(&cluster, build.id);
    let dead = index_of(&workers, &build);
    let dead_id = build.worker.clone().unwrap();
    // SIGKILL: no hand-back, no last word
    let died = Instant::now();
    let died_at = SystemTime::now();
    workers[dead].kill().await.unwrap();
    let taken_over = wait_until(
        "another worker to take the build over",
        Duration::from_secs(120),
        || async {
            let now = cluster.store.get_build(build.id).await.ok()?;
            (now.attempt > build.attempt).then_some(now)
        },
    )
    .await
    .unwrap();
    let seen = died.elapsed();
    let finished = final_build(&cluster, build.id).await;
    let events = watcher.await.unwrap();

    assert_eq!(finished.state, BuildState::Passed, "{finished:?}");
    assert_eq!(finished.attempt, Attempt::from(2), "{finished:?}");
    assert_ne!(finished.worker.as_deref(), Some(dead_id.as_str()));
    let started_2 = taken_over.started_at.unwrap();
    // the watcher: the notice first in attempt 2, nothing of attempt 1 after it began
    assert_attempts_in_order(&events);
    let notice = format!("worker {dead_id} lost");
    let (told_at, told) = events
        .iter()
        .find(|(_, e)| e.attempt == Attempt::from(2) && has_line(e, |t| t.contains(&notice)))
        .unwrap_or_else(|| panic!("the watcher was not told `{notice}`: {events:#?}"));
    assert!(
        has_line(told, |t| t.contains("retrying as attempt 2")),
        "{told:?}"
    );
    assert!(
        events
            .iter()
            .any(|(_, e)| e.attempt == Attempt::from(2) && has_line(e, |t| t == "tick 39")),
        "attempt 2 ran to its end"
    );
    // Postgres: attempt 1 wrote nothing once attempt 2 began, attempt 2 begins with the notice
    assert_stored_before(&cluster, build.id, Attempt::FIRST, started_2).await;
    let second = cluster
        .store
        .lines(build.id, Attempt::from(2))
        .await
        .unwrap();
    assert!(second[0].text.contains(&notice), "{:?}", second[0]);

    let to_claim = started_2.duration_since(died_at).unwrap_or_default();
    eprintln!(
        "recovery: worker SIGKILLed mid-build → attempt 2 claimed by another worker after {:.1} s \
         (Postgres clock; seen by the test after {:.1} s), watcher told after {:.1} s (default --job-ack-wait)",
        to_claim.as_secs_f64(),
        seen.as_secs_f64(),
        told_at.duration_since(died).as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_keeps_its_build_within_its_lease_and_stops_once_past_it() {
    let cluster = Cluster::start_with(Vec::new()).await.unwrap();
    repo_with(&cluster, "slow", SLOW_YML, &[]).await;
    let workers = start_workers(&cluster);

    // paused for less than the lease: the build stays with its worker
    let build = running_build(&cluster, "slow").await;
    let paused = index_of(&workers, &build);
    signal(&workers[paused], rustix::process::Signal::STOP);
    tokio::time::sleep(Duration::from_secs(5)).await;
    signal(&workers[paused], rustix::process::Signal::CONT);
    let finished = final_build(&cluster, build.id).await;
    assert_eq!(
        (finished.state, finished.attempt),
        (BuildState::Passed, Attempt::FIRST),
        "a worker paused within its lease lost its build: {finished:?}"
    );

    // paused for longer: the other worker takes over; once it runs again the paused worker
    // stops its build and writes nothing more
    let build = running_build(&cluster, "slow").await;
    let watcher = watch(&cluster, build.id);
    let paused = index_of(&workers, &build);
    let paused_id = build.worker.clone().unwrap();
    signal(&workers[paused], rustix::process::Signal::STOP);
    let taken_over = wait_until(
        "another worker to take the build over",
        Duration::from_secs(120),
        || async {
            let now = cluster.store.get_build(build.id).await.ok()?;
            (now.attempt > build.attempt).then_some(now)
        },
    )
    .await;
    signal(&workers[paused], rustix::process::Signal::CONT);
    let taken_over = taken_over.unwrap();
    wait_until(
        "the paused worker to see that its lease lapsed",
        Duration::from_secs(60),
        || async {
            let log = std::fs::read_to_string(&workers[paused].log).ok()?;
            log.contains("the job's lease lapsed").then_some(())
        },
    )
    .await
    .unwrap();
    let finished = final_build(&cluster, build.id).await;
    let events = watcher.await.unwrap();
    assert_eq!(
        (finished.state, finished.attempt),
        (BuildState::Passed, Attempt::from(2)),
        "{finished:?}"
    );
    assert_ne!(finished.worker.as_deref(), Some(paused_id.as_str()));
    assert_attempts_in_order(&events);
    assert!(
        events
            .iter()
            .any(|(_, e)| has_line(e, |t| t.contains(&format!("worker {paused_id} lost")))),
        "the watcher was not told the paused worker was lost: {events:#?}"
    );
    assert_stored_before(
        &cluster,
        build.id,
        Attempt::FIRST,
        taken_over.started_at.unwrap(),
    )
    .await;
    // the workers go on taking builds
    let next = running_build(&cluster, "slow").await;
    let next = final_build(&cluster, next.id).await;
    assert_eq!(next.state, BuildState::Passed, "{next:?}");
}
