//! A Postgres outage that outlasts the worker's write budget loses nothing of the log: the
//! build goes on while its events wait in memory, and once Postgres is back the whole log
//! and the result are stored together, so a replay of the finished build matches its digest.

use crate::repo_with;
use ocelot_core::BuildState;
use ocelot_core::ids::{Attempt, BuildId};
use ocelot_tests::cluster::{Cluster, ClusterSpec, WorkerSpec};
use ocelot_tests::wait_until;
use std::time::Duration;

const COUNTING_YML: &str = r#"image: ocelot/busybox
stages:
  - name: count
    script:
      - for i in $(seq 1 80); do echo "line $i"; sleep 0.1; done
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_past_the_write_budget_keeps_the_whole_log() {
    let cluster = Cluster::start_spec(ClusterSpec {
        own_postgres: true,
        workers: vec![WorkerSpec {
            store_outage_budget: Duration::from_secs(1),
            ..WorkerSpec::default()
        }],
        ..ClusterSpec::default()
    })
    .await
    .unwrap();
    repo_with(&cluster, "counting", COUNTING_YML, &[]).await;
    let queued = cluster
        .ocelot(&["build", "-r", "counting", "--no-follow"])
        .await
        .unwrap();
    let build_id: BuildId = queued.stdout.trim().parse().unwrap();
    // the script is under way and its first lines are stored
    wait_until(
        "the first lines in Postgres",
        Duration::from_secs(60),
        || {
            let store = cluster.store.clone();
            async move {
                let lines = store.lines(build_id, Attempt::FIRST).await.ok()?;
                lines.iter().any(|l| l.text == "line 3").then_some(())
            }
        },
    )
    .await
    .unwrap();
    let Some(postgres) = &cluster.postgres else {
        panic!("the cluster has its own Postgres");
    };
    postgres.stop("fast").unwrap();
    // four times the worker's budget, while the script prints a line every 100 ms
    tokio::time::sleep(Duration::from_secs(4)).await;
    postgres.start_again().unwrap();

    let build = wait_until("the build to finish", Duration::from_secs(90), || {
        let store = cluster.store.clone();
        async move {
            let build = store.get_build(build_id).await.ok()?;
            build.state.is_final().then_some(build)
        }
    })
    .await
    .unwrap();
    assert_eq!(build.state, BuildState::Passed, "{build:?}");
    let lines = cluster.store.lines(build_id, build.attempt).await.unwrap();
    let counted: Vec<&str> = lines
        .iter()
        .map(|l| l.text.as_str())
        .filter(|t| t.starts_with("line "))
        .collect();
    let expected: Vec<String> = (1..=80).map(|i| format!("line {i}")).collect();
    assert_eq!(counted, expected, "every line once, in order");
    assert_eq!(
        build.line_count,
        Some(i64::try_from(lines.len()).unwrap()),
        "the result's line count is the stored log's"
    );
    // the replay of the finished build checks out against the result's digest
    let watched = cluster
        .ocelot(&["watch", &build_id.to_string()])
        .await
        .unwrap();
    assert_eq!(watched.code, 0, "{}", watched.both());
    assert!(!watched.both().contains("differs"), "{}", watched.both());
    for line in &expected {
        assert!(
            watched.stdout.lines().any(|l| l == line),
            "{line} not replayed"
        );
    }
}
