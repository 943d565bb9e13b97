//! `matrix:`: a 2×2 matrix runs four jobs, each in its own container (four host names, none
//! the build container's) with its axis values as variables and the workspace as the stage
//! before left it; a later stage waits for every job; one failing job fails the build
//! (unless its combination may fail); the job containers are gone afterwards; a matrix past
//! the worker's `--max-matrix-jobs` ends the build errored, naming the count, before anything
//! runs.

use crate::{queued_build_id, repo_with};
use ocelot_core::BuildState;
use ocelot_core::build_state::StageState;
use ocelot_tests::cluster::{Cluster, WorkerSpec};
use std::collections::BTreeSet;

fn matrix_yml(allow_failure: &str) -> String {
    format!(
        r#"image: ocelot/busybox
stages:
  - name: prepare
    script:
      - echo prepared > prepared.txt
      - echo "main host=$(hostname)"
  - name: test
    matrix:
      RUST: ["1.80", "1.85"]
      DB: [pg15, pg16]
      {allow_failure}
    script:
      - echo "job RUST=$RUST DB=$DB host=$(hostname) saw=$(cat prepared.txt)"
      - if [ "$RUST" = 1.85 ] && [ "$DB" = pg16 ] && [ -n "$FAIL_ONE" ]; then echo failing; exit 7; fi
  - name: package
    script: [echo packaged]
"#
    )
}

/// `job RUST=.. DB=.. host=.. saw=..` lines of the log, and the main container's host name.
fn jobs_of(log: &str) -> (Vec<(String, String, String, String)>, String) {
    let mut jobs = Vec::new();
    let mut main = String::new();
    for line in log.lines() {
        let text = line.rsplit("] ").next().unwrap_or(line);
        if let Some(host) = text.strip_prefix("main host=") {
            main = host.to_string();
        }
        let Some(rest) = text.strip_prefix("job ") else {
            continue;
        };
        let fields: Vec<&str> = rest
            .split(' ')
            .map(|pair| pair.split_once('=').map_or("", |(_, v)| v))
            .collect();
        if let [rust, db, host, saw] = fields[..] {
            jobs.push((rust.into(), db.into(), host.into(), saw.into()));
        }
    }
    jobs.sort();
    (jobs, main)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_by_two_matrix_runs_four_containers_and_fails_when_one_job_fails() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(&cluster, "matrix", &matrix_yml(""), &[]).await;

    let built = cluster.ocelot(&["build", "-r", "matrix"]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    let id = queued_build_id(&built);
    let (jobs, main) = jobs_of(&built.stdout);
    let combinations: Vec<(&str, &str, &str)> = jobs
        .iter()
        .map(|(r, d, _, s)| (r.as_str(), d.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        combinations,
        [
            ("1.80", "pg15", "prepared"),
            ("1.80", "pg16", "prepared"),
            ("1.85", "pg15", "prepared"),
            ("1.85", "pg16", "prepared")
        ],
        "{}",
        built.both()
    );
    // four containers: four host names, none the build container's
    let hosts: BTreeSet<&str> = jobs.iter().map(|j| j.2.as_str()).collect();
    assert_eq!(hosts.len(), 4, "{}", built.both());
    assert!(
        !main.is_empty() && !hosts.contains(main.as_str()),
        "{}",
        built.both()
    );
    let build = cluster.store.get_build(id).await.unwrap();
    let stages = cluster.store.stages(id, build.attempt).await.unwrap();
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "prepare",
            "test (RUST=1.80, DB=pg15)",
            "test (RUST=1.80, DB=pg16)",
            "test (RUST=1.85, DB=pg15)",
            "test (RUST=1.85, DB=pg16)",
            "package"
        ]
    );
    assert!(
        stages.iter().all(|s| s.state == StageState::Passed),
        "{stages:?}"
    );
    // package started after every job finished
    let package = stages.last().unwrap();
    for job in &stages[1..5] {
        assert!(job.finished_at <= package.started_at, "{stages:?}");
    }
    cluster.wait_containers_gone(id).await;

    // one failing job fails the build; the others finish, package is skipped
    let failed = cluster
        .ocelot(&["build", "-r", "matrix", "--env", "FAIL_ONE=1"])
        .await
        .unwrap();
    assert_eq!(failed.code, 1, "{}", failed.both());
    let id = queued_build_id(&failed);
    let build = cluster.store.get_build(id).await.unwrap();
    assert_eq!(build.state, BuildState::Failed);
    let stages = cluster.store.stages(id, build.attempt).await.unwrap();
    let states: Vec<(&str, StageState)> =
        stages.iter().map(|s| (s.name.as_str(), s.state)).collect();
    assert_eq!(
        states,
        [
            ("prepare", StageState::Passed),
            ("test (RUST=1.80, DB=pg15)", StageState::Passed),
            ("test (RUST=1.80, DB=pg16)", StageState::Passed),
            ("test (RUST=1.85, DB=pg15)", StageState::Passed),
            ("test (RUST=1.85, DB=pg16)", StageState::Failed),
            ("package", StageState::Skipped)
        ]
    );
    cluster.wait_containers_gone(id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_combination_that_may_fail_does_not_fail_the_build() {
    let cluster = Cluster::start().await.unwrap();
    let yml = matrix_yml(r#"allow_failure: [{RUST: "1.85", DB: pg16}]"#);
    repo_with(&cluster, "allowed", &yml, &[]).await;
    let built = cluster
        .ocelot(&["build", "-r", "allowed", "--env", "FAIL_ONE=1"])
        .await
        .unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    assert!(built.stdout.contains("failing"), "{}", built.both());
    assert!(built.stdout.contains("allow_failure"), "{}", built.both());
    assert!(built.stdout.contains("packaged"), "{}", built.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_past_the_workers_limit_errors_before_anything_runs() {
    let cluster = Cluster::start_with(vec![WorkerSpec {
        stages: ocelot_worker::StageSettings {
            max_matrix_jobs: 3,
            ..ocelot_worker::StageSettings::default()
        },
        ..WorkerSpec::default()
    }])
    .await
    .unwrap();
    repo_with(&cluster, "big", &matrix_yml(""), &[]).await;
    let built = cluster.ocelot(&["build", "-r", "big"]).await.unwrap();
    assert_eq!(built.code, 3, "{}", built.both());
    assert!(
        built.both().contains("matrix makes 4 jobs") && built.both().contains("--max-matrix-jobs"),
        "{}",
        built.both()
    );
    assert!(!built.stdout.contains("prepared"), "{}", built.both());
}
