//! The worker registry: every running worker keeps an entry in a NATS KV bucket with a TTL;
//! `ocelot workers` lists them with their tags, capacity and the builds they run now, and
//! why a worker takes no jobs (back-pressure: low disk, a dependency down).

use crate::{repo_with, status_json};
use ocelot_core::ids::BuildId;
use ocelot_tests::cluster::{Cluster, WorkerSpec};
use ocelot_tests::wait_until;
use std::time::Duration;

async fn workers_json(cluster: &Cluster) -> Vec<serde_json::Value> {
    let output = cluster.ocelot(&["workers", "--json"]).await.unwrap();
    assert_eq!(output.code, 0, "{}", output.both());
    serde_json::from_str::<serde_json::Value>(&output.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocelot_workers_lists_live_workers_and_their_running_builds() {
    let cluster = Cluster::start_with(vec![
        WorkerSpec::default(),
        WorkerSpec {
            tags: vec!["gpu".to_string(), "arm64".to_string()],
            concurrency: 3,
            ..WorkerSpec::default()
        },
    ])
    .await
    .unwrap();
    let workers = wait_until(
        "both workers in the registry",
        Duration::from_secs(20),
        || async {
            let workers = workers_json(&cluster).await;
            (workers.len() == 2).then_some(workers)
        },
    )
    .await
    .unwrap();
    let ids: Vec<&str> = workers.iter().map(|w| w["id"].as_str().unwrap()).collect();
    for id in &cluster.worker_ids {
        assert!(ids.contains(&id.as_str()), "{ids:?}");
    }
    let gpu = workers
        .iter()
        .find(|w| w["tags"] == serde_json::json!(["gpu", "arm64"]))
        .expect("the gpu worker");
    assert_eq!(gpu["capacity"], 3);
    assert_eq!(gpu["executor"], "docker");

    // a running build shows on its worker, and goes when it ends
    repo_with(
        &cluster,
        "slow",
        "image: ocelot/busybox\nstages:\n  - name: wait\n    script: [sleep 4]\n",
        &[],
    )
    .await;
    let build = {
        let cluster = &cluster;
        async move { cluster.ocelot(&["build", "-r", "slow"]).await.unwrap() }
    };
    let watch = async {
        wait_until(
            "a worker running one build",
            Duration::from_secs(20),
            || async {
                let workers = workers_json(&cluster).await;
                workers
                    .iter()
                    .find(|w| w["running"] == 1 && w["tags"] == serde_json::json!(["default"]))
                    .cloned()
            },
        )
        .await
    };
    let (built, seen) = tokio::join!(build, watch);
    assert_eq!(built.code, 0, "{}", built.both());
    seen.unwrap();
    wait_until("no running build", Duration::from_secs(20), || async {
        let workers = workers_json(&cluster).await;
        workers.iter().all(|w| w["running"] == 0).then_some(())
    })
    .await
    .unwrap();
    let human = cluster.ocelot(&["workers"]).await.unwrap();
    assert!(human.stdout.contains("gpu,arm64"), "{}", human.both());
    assert!(human.stdout.contains("0/3"), "{}", human.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_short_of_disk_takes_no_job_and_says_why() {
    // no file system has an exbibyte free: this worker is always short of disk
    let cluster = Cluster::start_with(vec![WorkerSpec {
        tags: vec!["small-disk".to_string()],
        min_free_disk_mib: 1 << 40,
        ..WorkerSpec::default()
    }])
    .await
    .unwrap();
    let paused = wait_until(
        "the worker to report low disk",
        Duration::from_secs(20),
        || async {
            let workers = workers_json(&cluster).await;
            workers.first()?["paused"].as_str().map(str::to_string)
        },
    )
    .await
    .unwrap();
    assert!(
        paused.starts_with("free disk ") && paused.contains(" MiB under 1099511627776 MiB at "),
        "{paused}"
    );
    let human = cluster.ocelot(&["workers"]).await.unwrap();
    assert!(
        human.stdout.contains("paused: free disk"),
        "{}",
        human.both()
    );

    repo_with(
        &cluster,
        "tiny",
        "image: ocelot/busybox\nmachineTag: small-disk\nstages:\n  - name: a\n    script: [echo hi]\n",
        &[],
    )
    .await;
    let queued = cluster
        .ocelot(&["build", "-r", "tiny", "--no-follow"])
        .await
        .unwrap();
    assert_eq!(queued.code, 0, "{}", queued.both());
    let build_id: BuildId = queued.stdout.trim().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = status_json(&cluster, build_id).await;
    assert_eq!(status["state"], "queued", "{status}");
    let reason = status["pending_reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("all 1 worker(s) with tag `small-disk` take no jobs now (")
            && reason.contains("free disk"),
        "{reason}"
    );
}
