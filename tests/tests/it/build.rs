//! Builds that run: passing, failing, from a checkout, on a host worker, with a timeout.

use crate::{queued_build_id, repo_with, status_json};
use ocelot_tests::cluster::{Cluster, WorkerSpec};
use ocelot_worker::ExecutorKind;
use std::time::Duration;

const PASSING: &str = r#"image: ocelot/busybox
env: ["GREETING=hello"]
stages:
  - name: compile
    script:
      - echo "compile line 1 $GREETING"
      - echo "compile line 2 on $GIT_BRANCH at $GIT_HASH_SHORT"
      - echo "to stderr" >&2
      - test -f "$WORKSPACE/src/lib.txt"
      - echo "previous=[$GIT_PREVIOUS_SUCCESSFUL_COMMIT] repo=$OCELOT_REPO"
      - sleep 600 &
  - name: test
    env: ["SUITE=unit"]
    script:
      - echo "test $SUITE 1"
      - echo "test $SUITE 2"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_build_streams_every_stage_in_order_and_leaves_nothing() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(&cluster, "pass", PASSING, &[("src/lib.txt", "x")]).await;
    let output = cluster
        .ocelot(&["build", "-r", "pass", "-b", "main"])
        .await
        .unwrap();
    assert_eq!(output.code, 0, "{}", output.both());
    let expected = [
        "compile line 1 hello",
        "compile line 2 on main at ",
        "previous=[] repo=pass",
        "test unit 1",
        "test unit 2",
    ];
    let mut position = 0;
    for wanted in expected {
        let found = output.stdout[position..]
            .find(wanted)
            .unwrap_or_else(|| panic!("`{wanted}` missing or out of order:\n{}", output.both()));
        position += found + wanted.len();
    }
    // stdout and stderr are separate pipes: only their presence is certain, not their order
    assert!(output.stdout.contains("to stderr\n"), "{}", output.both());
    assert!(
        output.stderr.contains("✔ compile passed"),
        "{}",
        output.both()
    );
    assert!(output.stderr.contains("PASSED"), "{}", output.both());

    let build_id = queued_build_id(&output);
    let status = status_json(&cluster, build_id).await;
    assert_eq!(status["state"], "passed");
    let stages = status["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    for stage in stages {
        assert_eq!(stage["state"], "passed", "{status}");
        assert_eq!(stage["exit_code"], 0);
    }
    cluster.wait_containers_gone(build_id).await;
    assert!(
        cluster.leftover_workspaces().unwrap().is_empty(),
        "workspace left behind"
    );

    // the next build of the branch sees this one as the previous successful commit
    let second = cluster
        .ocelot(&["build", "-r", "pass", "-b", "main"])
        .await
        .unwrap();
    assert_eq!(second.code, 0, "{}", second.both());
    let commit = status["commit"].as_str().unwrap();
    assert!(
        second.stdout.contains(&format!("previous=[{commit}]")),
        "{}",
        second.both()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stage_stops_the_build_with_exit_code_1() {
    let cluster = Cluster::start().await.unwrap();
    let yml = r#"image: ocelot/busybox
stages:
  - name: first
    script: [echo first ran]
  - name: broken
    script:
      - echo before the failure
      - exit 3
      - echo never printed
  - name: last
    script: [echo last ran]
"#;
    repo_with(&cluster, "fail", yml, &[]).await;
    let output = cluster.ocelot(&["build", "-r", "fail"]).await.unwrap();
    assert_eq!(output.code, 1, "{}", output.both());
    assert!(output.stdout.contains("first ran"));
    assert!(output.stdout.contains("before the failure"));
    assert!(
        !output.stdout.contains("never printed"),
        "{}",
        output.both()
    );
    assert!(
        !output.stdout.contains("last ran"),
        "later stage ran:\n{}",
        output.both()
    );
    assert!(
        output.stderr.contains("broken failed: exit code 3"),
        "{}",
        output.both()
    );
    assert!(output.stderr.contains("FAILED"), "{}", output.both());

    let build_id = queued_build_id(&output);
    let status = status_json(&cluster, build_id).await;
    assert_eq!(status["state"], "failed");
    assert!(
        status["reason"].as_str().unwrap().contains("exit code 3"),
        "{status}"
    );
    let stages = status["stages"].as_array().unwrap();
    assert_eq!(stages[1]["state"], "failed");
    assert_eq!(stages[1]["exit_code"], 3);
    assert_eq!(stages[2]["state"], "pending", "{status}");
    cluster.wait_containers_gone(build_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocelot_build_in_a_checkout_finds_the_repo_branch_and_commit() {
    let cluster = Cluster::start().await.unwrap();
    let repo = repo_with(
        &cluster,
        "checkout",
        "image: ocelot/busybox\nstages:\n  - name: s\n    script: ['echo at $GIT_HASH']\n",
        &[],
    )
    .await;
    let pushed = repo
        .commit(&[("README", "second")], "second commit")
        .unwrap();
    repo.push().unwrap();
    let checkout = cluster.dir.path().join("my-checkout");
    repo.clone_to(&checkout).unwrap();
    let output = cluster.ocelot_in(&checkout, &["build"]).await.unwrap();
    assert_eq!(output.code, 0, "{}", output.both());
    assert!(
        output.stdout.contains(&format!("at {pushed}")),
        "{}",
        output.both()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_past_its_timeout_is_stopped_and_the_build_fails_timed_out() {
    let cluster = Cluster::start().await.unwrap();
    let yml = r#"image: ocelot/busybox
stages:
  - name: slow
    timeout: 2s
    script:
      - echo going to sleep
      - sleep 60
      - echo woke up
  - name: after
    script: [echo after]
"#;
    repo_with(&cluster, "slow", yml, &[]).await;
    let started = std::time::Instant::now();
    let output = cluster.ocelot(&["build", "-r", "slow"]).await.unwrap();
    assert_eq!(output.code, 1, "{}", output.both());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "the sleep was not stopped"
    );
    assert!(output.stdout.contains("going to sleep"));
    assert!(!output.stdout.contains("woke up"));
    assert!(!output.stdout.contains("after"), "{}", output.both());
    assert!(
        output.stderr.contains("FAILED (timed out)"),
        "{}",
        output.both()
    );
    let build_id = queued_build_id(&output);
    let status = status_json(&cluster, build_id).await;
    assert_eq!(status["state"], "timed_out");
    assert!(
        status["reason"].as_str().unwrap().contains("timed out"),
        "{status}"
    );
    assert_eq!(status["stages"][0]["state"], "timed_out");
    cluster.wait_containers_gone(build_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_without_an_image_run_on_a_host_worker_of_their_tag() {
    let cluster = Cluster::start_with(vec![
        WorkerSpec::default(),
        WorkerSpec {
            tags: vec!["bare-metal".into()],
            executor: ExecutorKind::Host,
            concurrency: 1,
            ..WorkerSpec::default()
        },
    ])
    .await
    .unwrap();
    let yml = "machineTag: bare-metal\nstages:\n  - name: native\n    script:\n      - echo \"host workspace $WORKSPACE\"\n      - test -f ocelot.yml\n      - test -z \"$OCELOT_DATABASE_URL\"\n      - sleep 600 & echo \"background $!\"\n";
    repo_with(&cluster, "native", yml, &[]).await;
    let allowed = cluster
        .ocelot(&["repos", "set", "native", "--allow-host", "true"])
        .await
        .unwrap();
    assert_eq!(allowed.code, 0, "{}", allowed.both());
    // a process of nobody's build: ending the stage's process group must not touch it
    let mut bystander = tokio::process::Command::new("sleep")
        .arg("300")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = cluster.ocelot(&["build", "-r", "native"]).await.unwrap();
    assert_eq!(output.code, 0, "{}", output.both());
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "a process outside the build was killed"
    );
    // the stage's background process ended with its stage
    let background: u32 = output
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("background "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ocelot_tests::wait_until(
        "the stage's background sleep to end",
        Duration::from_secs(10),
        || async {
            let stat =
                std::fs::read_to_string(format!("/proc/{background}/stat")).unwrap_or_default();
            // gone, or a zombie waiting to be reaped
            (stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z")).then_some(())
        },
    )
    .await
    .unwrap();
    let build_id = queued_build_id(&output);
    let status = status_json(&cluster, build_id).await;
    assert_eq!(status["tag"], "bare-metal");
    assert_eq!(status["worker"], cluster.worker_ids[1].as_str(), "{status}");
    let workspace_line = output
        .stdout
        .lines()
        .find(|l| l.starts_with("host workspace "))
        .unwrap();
    assert!(
        workspace_line.contains(cluster.dir.path().to_str().unwrap()),
        "{workspace_line}"
    );
    assert!(
        cluster.leftover_workspaces().unwrap().is_empty(),
        "workspace left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_worker_never_runs_a_build_without_an_image() {
    let cluster = Cluster::start().await.unwrap();
    // no machineTag: routed to `default`, served only by a docker worker
    let yml = "buildTool: none\nmachineTag: default\nstages:\n  - name: s\n    script: [echo must not run]\n";
    repo_with(&cluster, "noimage", yml, &[]).await;
    let output = cluster.ocelot(&["build", "-r", "noimage"]).await.unwrap();
    assert_eq!(output.code, 3, "{}", output.both());
    assert!(!output.stdout.contains("must not run"));
    assert!(
        output.stderr.contains("--executor host"),
        "{}",
        output.both()
    );
}
