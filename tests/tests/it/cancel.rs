//! `ocelot kill`, `ocelot rerun` and why a queued build waits: a running build is stopped
//! (container gone, later stages not run, a watching `ocelot build` exits 4), a queued one
//! is cancelled before it starts, a finished one is a no-op; a rerun builds the same commit
//! again; `ocelot status` says why a queued build waits; build containers that no attempt
//! owns any more (a dead worker's) are swept, other installations' are not.

use crate::{queued_build_id, repo_with, status_json};
use ocelot_core::BuildState;
use ocelot_core::build_state::StageState;
use ocelot_core::ids::{Attempt, BuildId};
use ocelot_tests::cluster::{Cluster, WorkerSpec};
use ocelot_tests::wait_until;
use std::time::{Duration, Instant};

const LONG_YML: &str = "image: ocelot/busybox
stages:
  - name: long
    script:
      - echo started
      - sleep 120
  - name: after
    script: [echo never runs]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_stops_a_running_build_and_its_watcher_exits_cancelled() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(&cluster, "long", LONG_YML, &[]).await;
    let watcher = {
        let cluster = &cluster;
        async move { cluster.ocelot(&["build", "-r", "long"]).await.unwrap() }
    };
    let killer = async {
        let build = wait_until(
            "the first stage to run",
            Duration::from_secs(60),
            || async {
                let builds = cluster.builds().await.ok()?;
                let build = builds.into_iter().next()?;
                let stages = cluster.store.stages(build.id, build.attempt).await.ok()?;
                (stages.first()?.state == StageState::Running).then_some(build)
            },
        )
        .await
        .unwrap();
        let asked = Instant::now();
        let killed = cluster
            .ocelot(&["kill", &build.id.to_string()])
            .await
            .unwrap();
        (build, killed, asked.elapsed())
    };
    let (watched, (build, killed, took)) = tokio::join!(watcher, killer);
    eprintln!("ocelot kill of a running build returned after {took:?}");
    assert_eq!(killed.code, 0, "{}", killed.both());
    assert!(
        killed.stderr.contains("cancelled: its container is gone"),
        "{}",
        killed.both()
    );
    // the container is gone by the time kill returns
    assert!(
        cluster
            .containers_of_build(build.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(watched.code, 4, "{}", watched.both());
    assert!(!watched.stdout.contains("never runs"), "{}", watched.both());
    let stored = cluster.store.get_build(build.id).await.unwrap();
    assert_eq!(stored.state, BuildState::Cancelled);
    assert!(
        stored
            .reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("cancelled by "),
        "{stored:?}"
    );
    let stages = cluster.store.stages(build.id, build.attempt).await.unwrap();
    assert_eq!(stages[0].state, StageState::Cancelled, "{stages:?}");
    assert_eq!(stages[1].state, StageState::Pending, "{stages:?}");
    assert!(cluster.leftover_workspaces().unwrap().is_empty());

    // a finished build: a clear no-op
    let again = cluster
        .ocelot(&["kill", &build.id.to_string()])
        .await
        .unwrap();
    assert_eq!(again.code, 0, "{}", again.both());
    assert!(
        again
            .stderr
            .contains("already finished (cancelled): nothing to cancel"),
        "{}",
        again.both()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_builds_say_why_they_wait_and_are_cancelled_before_they_start() {
    let cluster = Cluster::start_with(vec![WorkerSpec {
        concurrency: 1,
        ..WorkerSpec::default()
    }])
    .await
    .unwrap();
    // no worker serves `gpu`
    repo_with(
        &cluster,
        "gpu",
        "image: ocelot/busybox\nmachineTag: gpu\nstages:\n  - name: a\n    script: [echo gpu]\n",
        &[],
    )
    .await;
    let queued = cluster
        .ocelot(&["build", "-r", "gpu", "--no-follow"])
        .await
        .unwrap();
    assert_eq!(queued.code, 0, "{}", queued.both());
    let gpu_build: BuildId = queued.stdout.trim().parse().unwrap();
    let status = wait_until(
        "the worker in the registry",
        Duration::from_secs(20),
        || async {
            let status = status_json(&cluster, gpu_build).await;
            status["pending_reason"]
                .as_str()
                .is_some_and(|r| {
                    r.contains("no live worker serves tag `gpu`") && r.contains("1 other")
                })
                .then_some(status)
        },
    )
    .await
    .unwrap();
    assert_eq!(status["state"], "queued");

    // the only `default` worker is busy: the next build waits for it
    repo_with(&cluster, "long", LONG_YML, &[]).await;
    let first = cluster
        .ocelot(&["build", "-r", "long", "--no-follow"])
        .await
        .unwrap();
    let first: BuildId = first.stdout.trim().parse().unwrap();
    wait_until(
        "the first build to run",
        Duration::from_secs(60),
        || async { (status_json(&cluster, first).await["state"] == "running").then_some(()) },
    )
    .await
    .unwrap();
    let second = cluster
        .ocelot(&["build", "-r", "long", "--no-follow"])
        .await
        .unwrap();
    let second: BuildId = second.stdout.trim().parse().unwrap();
    let human = wait_until("the busy reason", Duration::from_secs(20), || async {
        let output = cluster
            .ocelot(&["status", &second.to_string()])
            .await
            .ok()?;
        output
            .stdout
            .contains("all 1 worker(s) with tag `default` are busy (1 of 1 build slots in use)")
            .then_some(output)
    })
    .await
    .unwrap();
    assert!(human.stdout.contains("waiting"), "{}", human.both());

    // cancel the queued ones before they start, then the running one
    for id in [gpu_build, second] {
        let killed = cluster.ocelot(&["kill", &id.to_string()]).await.unwrap();
        assert_eq!(killed.code, 0, "{}", killed.both());
        assert!(
            killed.stderr.contains("cancelled before it started"),
            "{}",
            killed.both()
        );
        let build = cluster.store.get_build(id).await.unwrap();
        assert_eq!(
            (build.state, build.attempt),
            (BuildState::Cancelled, Attempt::NONE)
        );
    }
    let killed = cluster
        .ocelot(&["kill", &first.to_string(), "--json"])
        .await
        .unwrap();
    assert_eq!(killed.code, 0, "{}", killed.both());
    let answer: serde_json::Value = serde_json::from_str(&killed.stdout).unwrap();
    assert_eq!(answer["outcome"], "cancelled");
    assert_eq!(answer["state"], "cancelled");
    // a watcher of a build cancelled while queued gets its result
    let watched = cluster
        .ocelot(&["watch", &second.to_string()])
        .await
        .unwrap();
    assert_eq!(watched.code, 4, "{}", watched.both());
    // the cancelled queued build's job is dropped, never run: the worker is free again
    wait_until("the worker to be idle", Duration::from_secs(30), || async {
        let workers = cluster.ocelot(&["workers", "--json"]).await.ok()?;
        let workers: serde_json::Value = serde_json::from_str(&workers.stdout).ok()?;
        (workers[0]["running"] == 0).then_some(())
    })
    .await
    .unwrap();
    let second_build = cluster.store.get_build(second).await.unwrap();
    assert_eq!(
        second_build.attempt,
        Attempt::NONE,
        "a cancelled queued build ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_builds_the_same_commit_again() {
    let cluster = Cluster::start().await.unwrap();
    let repo = repo_with(
        &cluster,
        "again",
        "image: ocelot/busybox\nstages:\n  - name: a\n    script: [echo \"commit $GIT_HASH\"]\n",
        &[],
    )
    .await;
    let first = cluster.ocelot(&["build", "-r", "again"]).await.unwrap();
    assert_eq!(first.code, 0, "{}", first.both());
    let first_id = queued_build_id(&first);
    let first_commit = repo.head().unwrap();
    // the branch moves on; the rerun still builds the first build's commit
    repo.commit(&[("later.txt", "later")], "later").unwrap();
    repo.push().unwrap();
    let rerun = cluster
        .ocelot(&["rerun", &first_id.to_string()])
        .await
        .unwrap();
    assert_eq!(rerun.code, 0, "{}", rerun.both());
    assert!(
        rerun
            .stderr
            .contains(&format!("a rerun of build {first_id}")),
        "{}",
        rerun.both()
    );
    assert!(
        rerun.stdout.contains(&format!("commit {first_commit}")),
        "{}",
        rerun.both()
    );
    let rerun_id = queued_build_id(&rerun);
    assert_ne!(rerun_id, first_id);
    let build = cluster.store.get_build(rerun_id).await.unwrap();
    assert_eq!(build.commit, first_commit);
    assert_eq!(build.number, 2);
    let missing = cluster.ocelot(&["rerun", "999999"]).await.unwrap();
    assert_eq!(missing.code, 6, "{}", missing.both());
}

/// Creates (not starts) a container named and labelled as a worker names and labels the
/// container of `build_id`'s first attempt in `instance` (the worker's own functions).
async fn labelled_container(docker: &bollard::Docker, instance: &str, build_id: BuildId) -> String {
    let labels =
        ocelot_worker::container_labels(build_id, Attempt::FIRST, "a-worker-that-died", instance);
    let name = ocelot_worker::container_name(build_id, Attempt::FIRST);
    docker
        .create_container(
            Some(
                bollard::query_parameters::CreateContainerOptionsBuilder::new()
                    .name(&name)
                    .build(),
            ),
            bollard::models::ContainerCreateBody {
                image: Some("ocelot/busybox".into()),
                cmd: Some(vec!["sleep".into(), "300".into()]),
                labels: Some(labels),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id
}

/// Creates (not starts) a container labelled as a worker labels its warm containers, to be
/// removed from `until` (unix seconds) on.
async fn warm_container(docker: &bollard::Docker, instance: &str, until: u64) -> String {
    let labels = std::collections::HashMap::from([
        ("io.ocelot.instance".to_string(), instance.to_string()),
        (
            "io.ocelot.worker-id".to_string(),
            "a-worker-that-died".to_string(),
        ),
        ("io.ocelot.warm-until".to_string(), until.to_string()),
    ]);
    let name = format!(
        "ocelot-warm-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    docker
        .create_container(
            Some(
                bollard::query_parameters::CreateContainerOptionsBuilder::new()
                    .name(&name)
                    .build(),
            ),
            bollard::models::ContainerCreateBody {
                image: Some("ocelot/busybox".into()),
                cmd: Some(vec!["sleep".into(), "300".into()]),
                labels: Some(labels),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_no_attempt_owns_are_swept_and_other_installations_are_not() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(
        &cluster,
        "done",
        "image: ocelot/busybox\nstages:\n  - name: a\n    script: [echo done]\n",
        &[],
    )
    .await;
    let built = cluster.ocelot(&["build", "-r", "done"]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    let finished = queued_build_id(&built);
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let instance = cluster.store.instance_id().await.unwrap();
    // left by a worker that died: a finished build's container, and one of a build that
    // does not exist
    let left = labelled_container(&docker, &instance, finished).await;
    let orphan = labelled_container(&docker, &instance, BuildId::from(999_999)).await;
    // another installation's container on the same Docker host
    let foreign = labelled_container(&docker, "another-installation", finished).await;
    // warm containers of a worker that died: one past the time its worker would have removed
    // it, one not yet (its worker may be alive: kept)
    let expired_warm = warm_container(&docker, &instance, 1).await;
    let kept_warm = warm_container(&docker, &instance, u64::MAX / 2).await;
    wait_until(
        "the leftovers to be swept",
        Duration::from_secs(30),
        || async {
            let exists = |id: &str| {
                let docker = docker.clone();
                let id = id.to_string();
                async move { docker.inspect_container(&id, None).await.is_ok() }
            };
            (!exists(&left).await && !exists(&orphan).await && !exists(&expired_warm).await)
                .then_some(())
        },
    )
    .await
    .unwrap();
    assert!(
        docker.inspect_container(&foreign, None).await.is_ok(),
        "another installation's container was removed"
    );
    assert!(
        docker.inspect_container(&kept_warm, None).await.is_ok(),
        "a warm container was removed before its time"
    );
    let _ = docker
        .remove_container(
            &foreign,
            Some(
                bollard::query_parameters::RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .build(),
            ),
        )
        .await;
}
