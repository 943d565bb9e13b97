//! The CLI's output pinned with insta snapshots (`snapshots/it__cli_output__*.snap`): what
//! `ocelot build`, `status`, `watch` and `workers` print, for people and with `--json` for
//! scripts, from a real build. Ids, times, durations, worker ids, hosts and commit hashes
//! differ from run to run: filters replace them with `[placeholders]`. A change to a
//! snapshot is a change of what users and scripts see: review the `.snap` diff.

use crate::{queued_build_id, repo_with};
use ocelot_tests::cluster::{CliOutput, Cluster};
use ocelot_tests::wait_until;
use std::time::Duration;

/// No stage writes to both stdout and stderr: their order between the two pipes is not
/// certain.
const YML: &str = r#"image: ocelot/busybox
stages:
  - name: compile
    script:
      - echo "compiling $OCELOT_REPO on $GIT_BRANCH"
  - name: lint
    script:
      - echo "a warning" >&2
  - name: test
    script:
      - echo "test 1 ok"
      - echo "test 2 ok"
"#;

const BROKEN_YML: &str = r#"image: ocelot/busybox
stages:
  - name: compile
    script:
      - echo "compiling $OCELOT_REPO on $GIT_BRANCH"
      - exit 3
  - name: test
    script:
      - echo "never runs"
"#;

/// What varies between runs, and what it is shown as.
const FILTERS: &[(&str, &str)] = &[
    // times and durations
    (r#""([a-z_]+_at_ms)":\d+"#, r#""$1":"[time]""#),
    (r#""at_ms":\d+"#, r#""at_ms":"[time]""#),
    (r#""duration_ms":\d+"#, r#""duration_ms":"[duration]""#),
    (r"\b\d+\.\d+s\b\+?", "[duration]"),
    // (with its column's padding, which depends on the number of digits)
    (r"\b\d+s ago\b *", "[seen] ago "),
    // ids: builds, workers, hosts, versions
    (r#""(id|build_id)":\d+"#, r#""$1":"[id]""#),
    (r"\bbuild \d+\b", "build [id]"),
    (r"(?m)^\d+(\s+snap\s)", "[id]$1"),
    (r"test-worker-\d+-[0-9a-f]{8}", "[worker-id]"),
    (r#""host":"[^"]*""#, r#""host":"[host]""#),
    (r#""version":"[^"]*""#, r#""version":"[version]""#),
    // the log's digest (its first line names the commit and the worker), commit hashes
    (
        r#""log_sha256":"[0-9a-f]{64}""#,
        r#""log_sha256":"[sha256]""#,
    ),
    (r"\b[0-9a-f]{40}\b", "[commit]"),
    (r"\b[0-9a-f]{7}\b", "[short-commit]"),
];

/// Pins one CLI run (exit code, stdout, stderr) as snapshot `name`.
fn pin(name: &str, output: &CliOutput) {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in FILTERS {
        settings.add_filter(pattern, *replacement);
    }
    settings.bind(|| insta::assert_snapshot!(name, output.both()));
}

/// `ocelot ARGS`, with the exit code it must have.
async fn run(cluster: &Cluster, args: &[&str], code: i32) -> CliOutput {
    let output = cluster.ocelot(args).await.unwrap();
    assert_eq!(output.code, code, "ocelot {args:?}: {}", output.both());
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_status_watch_and_workers_print_what_they_always_printed() {
    let cluster = Cluster::start().await.unwrap();
    let repo = repo_with(&cluster, "snap", YML, &[]).await;
    repo.git(&["checkout", "-q", "-b", "broken"]).unwrap();
    repo.commit(&[("ocelot.yml", BROKEN_YML)], "break the build")
        .unwrap();
    repo.git(&["push", "-q", "origin", "broken"]).unwrap();

    let built = run(&cluster, &["build", "-r", "snap", "-b", "main"], 0).await;
    pin("build_human", &built);
    let passed = queued_build_id(&built);
    let built_json = run(
        &cluster,
        &["build", "-r", "snap", "-b", "main", "--json"],
        0,
    )
    .await;
    pin("build_json", &built_json);
    let failed_run = run(&cluster, &["build", "-r", "snap", "-b", "broken"], 1).await;
    pin("build_failed_human", &failed_run);
    let failed = queued_build_id(&failed_run);
    let failed_json = run(
        &cluster,
        &["build", "-r", "snap", "-b", "broken", "--json"],
        1,
    )
    .await;
    pin("build_failed_json", &failed_json);

    let passed_id = passed.to_string();
    let failed_id = failed.to_string();
    pin(
        "status_human",
        &run(&cluster, &["status", &passed_id], 0).await,
    );
    pin(
        "status_json",
        &run(&cluster, &["status", &passed_id, "--json"], 0).await,
    );
    pin(
        "status_failed_human",
        &run(&cluster, &["status", &failed_id], 1).await,
    );
    pin(
        "status_failed_json",
        &run(&cluster, &["status", &failed_id, "--json"], 1).await,
    );
    pin("status_list_human", &run(&cluster, &["status"], 0).await);
    pin(
        "status_list_json",
        &run(&cluster, &["status", "--json"], 0).await,
    );

    pin(
        "watch_human",
        &run(&cluster, &["watch", &passed_id], 0).await,
    );
    pin(
        "watch_json",
        &run(&cluster, &["watch", &passed_id, "--json"], 0).await,
    );
    pin(
        "watch_failed_human",
        &run(&cluster, &["watch", &failed_id], 1).await,
    );

    // the worker's entry once it has noticed its builds are over
    wait_until(
        "the worker to run nothing",
        Duration::from_secs(20),
        || async {
            let output = cluster.ocelot(&["workers", "--json"]).await.ok()?;
            let workers: serde_json::Value = serde_json::from_str(&output.stdout).ok()?;
            (workers[0]["running"] == 0).then_some(())
        },
    )
    .await
    .unwrap();
    pin("workers_human", &run(&cluster, &["workers"], 0).await);
    pin(
        "workers_json",
        &run(&cluster, &["workers", "--json"], 0).await,
    );
}
