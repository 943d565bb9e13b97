//! Stages as a graph (`needs:`): independent stages run at the same time in the build's
//! container (proved from the stage times Postgres recorded), a stage starts once what it
//! needs has passed, a failure skips only what depends on it, a cycle is a validation
//! error at its line, and a file without `needs` still stops at its first failure.

use crate::{queued_build_id, repo_with, status_json};
use ocelot_core::build_state::StageState;
use ocelot_core::ids::BuildId;
use ocelot_core::model::StageRecord;
use ocelot_tests::cluster::{CliOutput, Cluster};
use std::time::SystemTime;

/// build → test-a, test-b → package; test-a runs `$TEST_A` (both tests take 2 s, so that
/// run one after the other they could not overlap).
fn diamond(test_a: &str) -> String {
    format!(
        r#"image: ocelot/busybox
stages:
  - name: build
    script:
      - echo built > built.txt
  - name: test-a
    needs: [build]
    script:
      - cat built.txt
      - sleep 2
      - echo a-one
      - {test_a}
      - echo a-two
  - name: test-b
    needs: [build]
    script:
      - cat built.txt
      - sleep 2
      - echo b-one
      - echo b-two
  - name: package
    needs: [test-a, test-b]
    script:
      - echo packaged
"#
    )
}

async fn stages(cluster: &Cluster, build_id: BuildId) -> Vec<StageRecord> {
    let build = cluster.store.get_build(build_id).await.unwrap();
    cluster.store.stages(build_id, build.attempt).await.unwrap()
}

fn stage<'a>(stages: &'a [StageRecord], name: &str) -> &'a StageRecord {
    stages
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no stage {name} in {stages:?}"))
}

fn times(stage: &StageRecord) -> (SystemTime, SystemTime) {
    (
        stage
            .started_at
            .unwrap_or_else(|| panic!("{} never started", stage.name)),
        stage
            .finished_at
            .unwrap_or_else(|| panic!("{} never finished", stage.name)),
    )
}

/// The lines of `output`'s log (stdout) of one stage, in order, without the prefix.
fn lines_of<'a>(output: &'a CliOutput, stage: &str) -> Vec<&'a str> {
    let prefix = format!("[{stage}] ");
    output
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_runs_its_independent_stages_at_once_and_the_last_after_both() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(&cluster, "diamond", &diamond("true"), &[]).await;
    let built = cluster.ocelot(&["build", "-r", "diamond"]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    let build_id = queued_build_id(&built);

    let recorded = stages(&cluster, build_id).await;
    for record in &recorded {
        assert_eq!(record.state, StageState::Passed, "{recorded:?}");
    }
    let (build_start, build_end) = times(stage(&recorded, "build"));
    let (a_start, a_end) = times(stage(&recorded, "test-a"));
    let (b_start, b_end) = times(stage(&recorded, "test-b"));
    let (package_start, _) = times(stage(&recorded, "package"));
    assert!(build_start <= build_end);
    assert!(a_start >= build_end && b_start >= build_end, "{recorded:?}");
    // each took 2 s: one after the other, they could not overlap
    assert!(
        a_start < b_end && b_start < a_end,
        "no overlap: {recorded:?}"
    );
    assert!(
        package_start >= a_end && package_start >= b_end,
        "{recorded:?}"
    );

    // the live log: every line of a graph's stage carries its stage, in order within it
    assert_eq!(
        lines_of(&built, "test-a"),
        ["built", "a-one", "a-two"],
        "{}",
        built.both()
    );
    assert_eq!(
        lines_of(&built, "test-b"),
        ["built", "b-one", "b-two"],
        "{}",
        built.both()
    );
    assert_eq!(
        lines_of(&built, "package"),
        ["packaged"],
        "{}",
        built.both()
    );

    // one stage's lines only
    let watched = cluster
        .ocelot(&["watch", &build_id.to_string(), "--stage", "test-b"])
        .await
        .unwrap();
    assert_eq!(watched.code, 0, "{}", watched.both());
    assert_eq!(
        watched.stdout.lines().collect::<Vec<_>>(),
        ["built", "b-one", "b-two"],
        "{}",
        watched.both()
    );

    // the JSON events carry their stage
    let json = cluster
        .ocelot(&["watch", &build_id.to_string(), "--json"])
        .await
        .unwrap();
    assert!(
        json.stdout
            .lines()
            .any(|line| line.contains(r#""stage":"test-b""#) && line.contains("b-one")),
        "{}",
        json.both()
    );

    // status: the stages with their states, durations and what each needs
    let status = cluster
        .ocelot(&["status", &build_id.to_string()])
        .await
        .unwrap();
    assert!(
        status.stdout.lines().any(|l| l.contains("package")
            && l.contains("passed")
            && l.contains("needs test-a, test-b")),
        "{}",
        status.both()
    );
    let status = status_json(&cluster, build_id).await;
    assert_eq!(
        status["stages"][3]["needs"],
        serde_json::json!(["test-a", "test-b"]),
        "{status}"
    );
    assert_eq!(
        status["stages"][0]["needs"],
        serde_json::json!([]),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_skips_what_needs_it_and_lets_the_rest_finish() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(&cluster, "broken", &diamond("exit 3"), &[]).await;
    let built = cluster.ocelot(&["build", "-r", "broken"]).await.unwrap();
    assert_eq!(built.code, 1, "{}", built.both());
    let build_id = queued_build_id(&built);

    let recorded = stages(&cluster, build_id).await;
    let state = |name| stage(&recorded, name).state;
    assert_eq!(state("build"), StageState::Passed, "{recorded:?}");
    assert_eq!(state("test-a"), StageState::Failed, "{recorded:?}");
    assert_eq!(stage(&recorded, "test-a").exit_code, Some(3));
    // test-b was not stopped by test-a's failure
    assert_eq!(state("test-b"), StageState::Passed, "{recorded:?}");
    assert_eq!(lines_of(&built, "test-b"), ["built", "b-one", "b-two"]);
    assert_eq!(state("package"), StageState::Skipped, "{recorded:?}");
    assert!(
        built
            .stdout
            .contains("stage package skipped: needs test-a, which failed"),
        "{}",
        built.both()
    );
    assert!(!built.stdout.contains("packaged"), "{}", built.both());
    let status = status_json(&cluster, build_id).await;
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(
        status["reason"], "stage `test-a` failed with exit code 3",
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_is_a_validation_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ocelot.yml");
    std::fs::write(
        &file,
        "image: x\nstages:\n  - name: a\n    script: [a]\n  - name: b\n    needs: [a, c]\n    script: [b]\n  - name: c\n    needs: [b]\n    script: [c]\n  - name: d\n    needs: [e]\n    script: [d]\n",
    )
    .unwrap();
    let bin = ocelot_tests::cluster::bin_dir().unwrap().join("ocelot");
    let output = tokio::process::Command::new(&bin)
        .arg("validate")
        .arg(&file)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "line 6, column 16: stages[1].needs[1]: the stages need each other in a cycle: b → c → b"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 12, column 13: stages[3].needs[0]: no stage is named `e`"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_needs_still_stops_at_its_first_failure() {
    let cluster = Cluster::start().await.unwrap();
    let yml = "image: ocelot/busybox\nstages:\n  - name: one\n    script: [echo one]\n  - name: two\n    script: [echo two, exit 4]\n  - name: three\n    script: [echo must not run]\n";
    repo_with(&cluster, "linear", yml, &[]).await;
    let built = cluster.ocelot(&["build", "-r", "linear"]).await.unwrap();
    assert_eq!(built.code, 1, "{}", built.both());
    assert!(!built.stdout.contains("must not run"), "{}", built.both());
    // no stage prefix on the lines of stages in order
    assert!(
        built.stdout.lines().any(|line| line == "two"),
        "{}",
        built.both()
    );
    let recorded = stages(&cluster, queued_build_id(&built)).await;
    let states: Vec<StageState> = recorded.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [StageState::Passed, StageState::Failed, StageState::Pending],
        "{recorded:?}"
    );
    assert_eq!(stage(&recorded, "three").started_at, None);
}
