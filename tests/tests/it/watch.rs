//! `ocelot watch`: a finished build replays the identical log; a running one shows it from
//! line 1 and follows it; the JSON stream carries a verifiable digest.

use crate::{queued_build_id, repo_with, status_json};
use ocelot_core::ids::BuildId;
use ocelot_tests::cluster::Cluster;
use ocelot_tests::wait_until;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_a_finished_build_replays_the_identical_log() {
    let cluster = Cluster::start().await.unwrap();
    let yml = "image: ocelot/busybox\nstages:\n  - name: a\n    script:\n      - for i in $(seq 1 300); do echo \"line $i\"; done\n      - echo oops >&2\n  - name: b\n    script: [echo done]\n";
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
    assert!(watched.stdout.contains("line 1\n") && watched.stdout.contains("line 300\n"));
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
