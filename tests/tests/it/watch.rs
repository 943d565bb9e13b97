//! `ocelot watch`: a finished build replays the identical log (page by page); a running one
//! shows it from line 1 and follows it, also when the log bus discarded its first events
//! (filled from Postgres); the JSON stream carries a verifiable digest; a log pruned by
//! `--keep-logs` says so while the build's result stays.

use crate::{queued_build_id, repo_with, status_json};
use ocelot_core::ids::BuildId;
use ocelot_tests::cluster::Cluster;
use ocelot_tests::wait_until;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_a_finished_build_replays_the_identical_log() {
    let cluster = Cluster::start().await.unwrap();
    let yml = "image: ocelot/busybox\nstages:\n  - name: a\n    script:\n      - for i in $(seq 1 3500); do echo \"line $i\"; done\n      - echo oops >&2\n  - name: b\n    script: [echo done]\n";
    repo_with(&cluster, "replay", yml, &[]).await;
    let built = cluster.ocelot(&["build", "-r", "replay"]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    let build_id = queued_build_id(&built);
    let watched = cluster
        .ocelot(&["watch", &build_id.to_string()])
        .await
        .unwrap();
    assert_eq!(watched.code, 0, "{}", watched.both());
    assert_eq!(watched.stdout, built.stdout, "replayed log differs");
    // 3 500 lines cross several replay pages (1 000 events each): every line once, in order
    let numbers: Vec<u32> = watched
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.parse().ok())
        .collect();
    assert_eq!(numbers, (1..=3500).collect::<Vec<u32>>());
    assert!(!watched.stderr.contains("warning"), "{}", watched.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_a_running_build_shows_it_from_line_one() {
    let cluster = Cluster::start().await.unwrap();
    let yml = "image: ocelot/busybox\nstages:\n  - name: slow\n    script:\n      - echo first line\n      - sleep 3\n      - echo after the nap\n";
    repo_with(&cluster, "running", yml, &[]).await;
    let queued = cluster
        .ocelot(&["build", "-r", "running", "--no-follow"])
        .await
        .unwrap();
    assert_eq!(queued.code, 0, "{}", queued.both());
    let build_id: BuildId = queued.stdout.trim().parse().unwrap();
    // attach once the first line was written (the build is mid-stage)
    wait_until(
        "the first line to be stored",
        Duration::from_secs(60),
        || {
            let store = cluster.store.clone();
            async move {
                let build = store.get_build(build_id).await.ok()?;
                let lines = store.lines(build_id, build.attempt).await.ok()?;
                lines.iter().any(|l| l.text == "first line").then_some(())
            }
        },
    )
    .await
    .unwrap();
    let status = status_json(&cluster, build_id).await;
    assert_eq!(
        status["state"], "running",
        "attached too late to prove anything: {status}"
    );
    let watched = cluster
        .ocelot(&["watch", &build_id.to_string()])
        .await
        .unwrap();
    assert_eq!(watched.code, 0, "{}", watched.both());
    let first = watched.stdout.find("first line").expect("line 1 missing");
    let later = watched
        .stdout
        .find("after the nap")
        .expect("live line missing");
    assert!(first < later);
    assert!(watched.stdout.starts_with("build "), "{}", watched.both());
    let replay = cluster
        .ocelot(&["watch", &build_id.to_string()])
        .await
        .unwrap();
    assert_eq!(replay.stdout, watched.stdout);
}

/// The `(seq, text)` of every line event of `ocelot watch --json` output.
fn json_lines(stdout: &str) -> Vec<(u64, String)> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"]["type"] == "line")
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["kind"]["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_joining_a_running_build_at_different_times_each_get_the_whole_log() {
    let cluster = Cluster::start().await.unwrap();
    let yml = "image: ocelot/busybox\nstages:\n  - name: paced\n    script:\n      - 'for i in $(seq 1 40); do echo \"paced $i\"; sleep 0.1; done'\n";
    repo_with(&cluster, "paced", yml, &[]).await;
    let queued = cluster
        .ocelot(&["build", "-r", "paced", "--no-follow"])
        .await
        .unwrap();
    assert_eq!(queued.code, 0, "{}", queued.both());
    let build_id: BuildId = queued.stdout.trim().parse().unwrap();
    let id = build_id.to_string();
    let args = ["watch", id.as_str(), "--json"];
    // the admin reads the build's log from the bus once for all of them: the first watcher
    // starts it, the later ones join it mid-build and must still get line 1
    let first = cluster.ocelot(&args);
    let later = async {
        wait_until("line 10 to be stored", Duration::from_secs(60), || async {
            let build = cluster.store.get_build(build_id).await.ok()?;
            let lines = cluster.store.lines(build_id, build.attempt).await.ok()?;
            lines.iter().any(|l| l.text == "paced 10").then_some(())
        })
        .await
        .unwrap();
        let second = cluster.ocelot(&args);
        let third = async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            cluster.ocelot(&args).await
        };
        tokio::join!(second, third)
    };
    let (first, (second, third)) = tokio::join!(first, later);
    let build = cluster.store.get_build(build_id).await.unwrap();
    let stored: Vec<(u64, String)> = cluster
        .store
        .lines(build_id, build.attempt)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.seq.get(), l.text))
        .collect();
    assert!(stored.iter().any(|(_, text)| text == "paced 40"));
    for watched in [first, second, third] {
        let watched = watched.unwrap();
        assert_eq!(watched.code, 0, "{}", watched.both());
        assert_eq!(json_lines(&watched.stdout), stored, "{}", watched.both());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_events_carry_sequence_numbers_and_a_matching_digest() {
    let cluster = Cluster::start().await.unwrap();
    let yml = "image: ocelot/busybox\nstages:\n  - name: a\n    script: [echo one, echo two, echo three]\n";
    repo_with(&cluster, "json", yml, &[]).await;
    let output = cluster
        .ocelot(&["build", "-r", "json", "--json"])
        .await
        .unwrap();
    assert_eq!(output.code, 0, "{}", output.both());
    let events: Vec<serde_json::Value> = output
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], index as u64 + 1, "sequence broken at {event}");
    }
    let lines: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"]["type"] == "line")
        .map(|e| e["kind"]["text"].as_str().unwrap())
        .collect();
    let result = events.last().unwrap();
    assert_eq!(result["kind"]["type"], "result");
    assert_eq!(result["kind"]["state"], "passed");
    assert_eq!(result["kind"]["line_count"], lines.len() as u64);
    let mut digest = ocelot_core::events::LogDigest::new();
    for line in &lines {
        digest.add_line(line);
    }
    assert_eq!(result["kind"]["log_sha256"], digest.hex());
    assert!(lines.contains(&"two"));
    assert!(!output.stderr.contains("warning"), "{}", output.both());
}

/// Every line number of `ocelot watch`'s output, in the order shown.
fn line_numbers(stdout: &str) -> Vec<u32> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.parse().ok())
        .collect()
}

/// The log bus keeps a bounded number of bytes (an unbounded stream of an earlier release
/// is bounded in place; an operator's own limit is kept). When it discarded the first events
/// of a running build (here: an operator set 64 KiB), a watcher still gets the whole log:
/// the admin fills the gap from Postgres, page by page, then follows the bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_gets_the_whole_log_when_the_bus_discarded_its_start() {
    use ocelot_core::queue::{Bus, LOGS_MAX_BYTES, LOGS_STREAM, Setup};
    use ocelot_tests::nats::NatsUser;

    let cluster = Cluster::start().await.unwrap();
    let client = async_nats::ConnectOptions::with_user_and_password(
        "admin".into(),
        cluster.nats.password(NatsUser::Admin).unwrap(),
    )
    .custom_inbox_prefix(ocelot_core::queue::inbox_prefix(Some("admin")))
    .connect(cluster.nats.url.as_str())
    .await
    .unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let config = async |jetstream: &async_nats::jetstream::Context| {
        jetstream
            .get_stream(LOGS_STREAM)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone()
    };
    let created = config(&jetstream).await;
    assert_eq!(created.config.max_bytes, LOGS_MAX_BYTES, "created bounded");

    // a stream of an earlier release (no byte limit) is bounded in place, events kept
    let mut unbounded = created.config.clone();
    unbounded.max_bytes = -1;
    jetstream.update_stream(&unbounded).await.unwrap();
    Bus::connect(&cluster.nats.args(NatsUser::Admin), Setup::Streams)
        .await
        .unwrap();
    let updated = config(&jetstream).await;
    assert_eq!(updated.config.max_bytes, LOGS_MAX_BYTES);
    assert_eq!(updated.created, created.created, "the stream was recreated");

    // an operator's limit is kept: 64 KiB, far less than the build below prints
    let mut small = updated.config.clone();
    small.max_bytes = 64 * 1024;
    jetstream.update_stream(&small).await.unwrap();
    Bus::connect(&cluster.nats.args(NatsUser::Admin), Setup::Streams)
        .await
        .unwrap();
    assert_eq!(config(&jetstream).await.config.max_bytes, 64 * 1024);

    // the bus carries lines in runs, a few bytes each: 20 000 lines are far more than 64 KiB
    let yml = "image: ocelot/busybox\nstages:\n  - name: long\n    script:\n      - for i in $(seq 1 20000); do echo \"line $i\"; done\n      - sleep 8\n      - echo \"line 20001\"\n";
    repo_with(&cluster, "discarded", yml, &[]).await;
    let queued = cluster
        .ocelot(&["build", "-r", "discarded", "--no-follow"])
        .await
        .unwrap();
    assert_eq!(queued.code, 0, "{}", queued.both());
    let build_id: BuildId = queued.stdout.trim().parse().unwrap();
    wait_until("line 20000 to be stored", Duration::from_secs(60), || {
        let store = cluster.store.clone();
        async move {
            let build = store.get_build(build_id).await.ok()?;
            let lines = store.lines(build_id, build.attempt).await.ok()?;
            lines.iter().any(|l| l.text == "line 20000").then_some(())
        }
    })
    .await
    .unwrap();
    // the bus no longer has the build's first events
    let state = config(&jetstream).await.state;
    assert!(state.bytes <= 64 * 1024, "{state:?}");
    assert!(state.first_sequence > 1, "nothing was discarded: {state:?}");
    let status = status_json(&cluster, build_id).await;
    assert_eq!(status["state"], "running", "attached too late: {status}");

    let watched = cluster
        .ocelot(&["watch", &build_id.to_string()])
        .await
        .unwrap();
    assert_eq!(watched.code, 0, "{}", watched.both());
    assert_eq!(
        line_numbers(&watched.stdout),
        (1..=20001).collect::<Vec<u32>>()
    );
    assert!(!watched.stderr.contains("warning"), "{}", watched.both());
}

/// `--keep-logs`: one retention pass deletes the events of a build that finished longer ago
/// than that (its `finished_at` set back here) and keeps a recent build's; the old build's
/// row and result stay, and `ocelot watch` says its log was pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_logs_are_pruned_and_their_builds_results_stay() {
    let cluster = Cluster::start().await.unwrap();
    let yml = "image: ocelot/busybox\nstages:\n  - name: a\n    script:\n      - for i in $(seq 1 20); do echo \"line $i\"; done\n";
    repo_with(&cluster, "retained", yml, &[]).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let built = cluster.ocelot(&["build", "-r", "retained"]).await.unwrap();
        assert_eq!(built.code, 0, "{}", built.both());
        ids.push(queued_build_id(&built));
    }
    let (old, recent) = (ids[0], ids[1]);
    let (client, connection) =
        tokio_postgres::connect(&cluster.database.url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "UPDATE builds SET finished_at = finished_at - interval '100 days',
                               started_at = started_at - interval '100 days'
             WHERE id = $1",
            &[&old.to_db()],
        )
        .await
        .unwrap();

    let keep = ocelot_admin::retention::parse_keep_logs("90d")
        .unwrap()
        .duration()
        .unwrap();
    // two admins' passes at once: the old build is pruned once, by one of them
    let (first, second) = tokio::join!(
        ocelot_admin::retention::pass(&cluster.store, keep),
        ocelot_admin::retention::pass(&cluster.store, keep)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.builds + second.builds, 1, "{first:?} {second:?}");
    // stored rows: a run of lines is one
    assert!(first.events + second.events > 4, "{first:?} {second:?}");
    let old_build = cluster.store.get_build(old).await.unwrap();
    assert!(
        cluster
            .store
            .events(
                old,
                old_build.attempt,
                ocelot_core::ids::Seq::START,
                ocelot_core::ids::Seq::from(u64::MAX),
                10
            )
            .await
            .unwrap()
            .is_empty(),
        "the old build's events are left"
    );
    let recent_build = cluster.store.get_build(recent).await.unwrap();
    let recent_lines = cluster
        .store
        .lines(recent, recent_build.attempt)
        .await
        .unwrap();
    assert!(recent_lines.iter().any(|l| l.text == "line 20"));
    // a second pass finds nothing more
    let again = ocelot_admin::retention::pass(&cluster.store, keep)
        .await
        .unwrap();
    assert_eq!(again.builds, 0);

    // the old build's row and result stay
    let status = status_json(&cluster, old).await;
    assert_eq!(status["state"], "passed", "{status}");
    let watched = cluster.ocelot(&["watch", &old.to_string()]).await.unwrap();
    assert_eq!(watched.code, 0, "{}", watched.both());
    assert!(
        watched
            .stdout
            .contains("[ocelot: the log of this build was pruned on "),
        "{}",
        watched.both()
    );
    assert!(line_numbers(&watched.stdout).is_empty());
    assert!(!watched.stderr.contains("warning"), "{}", watched.both());
    assert!(watched.stderr.contains("PASSED"), "{}", watched.both());
    // the recent build replays whole
    let recent_watch = cluster
        .ocelot(&["watch", &recent.to_string()])
        .await
        .unwrap();
    assert_eq!(recent_watch.code, 0, "{}", recent_watch.both());
    assert_eq!(
        line_numbers(&recent_watch.stdout),
        (1..=20).collect::<Vec<u32>>()
    );
}
