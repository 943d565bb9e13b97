//! The poller against repos served by `git daemon`: new commits and new matching branches
//! build once (also with two pollers, and with a webhook for the same push); an unreachable
//! repo shows its error and never holds up the others. Where a test asserts that a poll
//! queued nothing, it first waits until polls demonstrably ran (their `last_polled_at` in
//! Postgres moved), never for a guessed while.

use ocelot_tests::cluster::{Cluster, ClusterSpec, HookSpec};
use ocelot_tests::wait_until;
use serde_json::Value;
use std::time::{Duration, SystemTime};

const YML: &str =
    "image: ocelot/busybox\nstages:\n  - name: s\n    script: ['echo polled $GIT_BRANCH']\n";

async fn polls(cluster: &Cluster) -> Vec<Value> {
    let output = cluster.ocelot(&["poll", "list", "--json"]).await.unwrap();
    assert_eq!(output.code, 0, "{}", output.both());
    serde_json::from_str::<Value>(&output.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

async fn wait_polled(cluster: &Cluster, repo: &str) {
    wait_until(
        &format!("{repo} to be polled"),
        Duration::from_secs(30),
        || async {
            polls(cluster)
                .await
                .into_iter()
                .find(|p| p["repo"] == repo && p["last_polled_at_ms"].as_i64().unwrap_or(0) > 0)
        },
    )
    .await
    .unwrap();
}

/// The poll of `repo` as recorded in Postgres.
async fn poll_of(cluster: &Cluster, repo: &str) -> Option<ocelot_core::model::Poll> {
    cluster
        .store
        .list_polls()
        .await
        .ok()?
        .into_iter()
        .find(|p| p.repo_name == repo)
}

/// Waits until `count` more polls of `repo` were recorded (its `last_polled_at` moved
/// `count` times). A poll queues its builds before it is recorded, so whatever those polls
/// queued is in Postgres when this returns.
async fn wait_for_polls(cluster: &Cluster, repo: &str, count: usize) {
    let mut seen: Option<SystemTime> = poll_of(cluster, repo).await.and_then(|p| p.last_polled_at);
    for done in 0..count {
        let now = wait_until(
            &format!("{} more poll(s) of {repo} to be recorded", count - done),
            Duration::from_secs(30),
            || async {
                let polled = poll_of(cluster, repo).await?.last_polled_at?;
                (Some(polled) > seen).then_some(polled)
            },
        )
        .await
        .unwrap();
        seen = Some(now);
    }
}

async fn builds_of(cluster: &Cluster, branch: &str) -> Vec<ocelot_core::model::Build> {
    cluster
        .builds()
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.branch == branch)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_commits_and_matching_branches_build_once_with_two_pollers() {
    let cluster = Cluster::start_spec(ClusterSpec {
        pollers: 2,
        ..ClusterSpec::default()
    })
    .await
    .unwrap();
    let repo = cluster
        .git
        .create_repo("polled", &[("ocelot.yml", YML)])
        .unwrap();
    cluster.add_repo("polled", &repo.url).await.unwrap();
    let added = cluster
        .ocelot(&[
            "poll",
            "add",
            "-r",
            "polled",
            "-b",
            "main,release/*",
            "--every",
            "1s",
        ])
        .await
        .unwrap();
    assert_eq!(added.code, 0, "{}", added.both());
    wait_polled(&cluster, "polled").await;
    // polls after the first one, which saw the heads it recorded
    wait_for_polls(&cluster, "polled", 2).await;
    assert!(
        cluster.builds().await.unwrap().is_empty(),
        "the first poll must only record the heads"
    );

    let old_head = repo.head().unwrap();
    let new_head = repo.commit(&[("x", "1")], "new work").unwrap();
    repo.push().unwrap();
    repo.git(&["checkout", "-q", "-b", "release/1.0"]).unwrap();
    let release = repo.commit(&[("y", "1")], "release").unwrap();
    repo.git(&["push", "-q", "origin", "release/1.0"]).unwrap();
    repo.git(&["checkout", "-q", "-b", "feature/x"]).unwrap();
    repo.commit(&[("z", "1")], "feature").unwrap();
    repo.git(&["push", "-q", "origin", "feature/x"]).unwrap();

    let built = wait_until("both builds to finish", Duration::from_secs(90), || async {
        let builds = cluster.builds().await.ok()?;
        (builds.len() >= 2 && builds.iter().all(|b| b.state.is_final())).then_some(builds)
    })
    .await
    .unwrap();
    // several more polls (by either poller): still one build per head
    wait_for_polls(&cluster, "polled", 3).await;
    let main = builds_of(&cluster, "main").await;
    assert_eq!(main.len(), 1, "{built:?}");
    assert_eq!(main[0].commit, new_head);
    assert_eq!(main[0].trigger, "poll");
    assert_eq!(main[0].previous_commit.as_deref(), Some(old_head.as_str()));
    assert_eq!(main[0].state, ocelot_core::BuildState::Passed);
    let release_builds = builds_of(&cluster, "release/1.0").await;
    assert_eq!(release_builds.len(), 1);
    assert_eq!(release_builds[0].commit, release);
    assert_eq!(
        release_builds[0].previous_commit, None,
        "a new branch has no previous head"
    );
    assert!(
        builds_of(&cluster, "feature/x").await.is_empty(),
        "an untracked branch was built"
    );
    assert_eq!(cluster.builds().await.unwrap().len(), 2);

    let listed = polls(&cluster).await;
    let heads = &listed[0]["heads"];
    assert_eq!(heads["main"], new_head.as_str());
    assert_eq!(heads["release/1.0"], release.as_str());
    assert!(heads.get("feature/x").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_repo_reports_its_error_and_the_others_keep_polling() {
    let cluster = Cluster::start_spec(ClusterSpec {
        pollers: 1,
        ..ClusterSpec::default()
    })
    .await
    .unwrap();
    let port = ocelot_tests::free_port().unwrap();
    cluster
        .add_repo("gone", &format!("git://127.0.0.1:{port}/gone.git"))
        .await
        .unwrap();
    let repo = cluster
        .git
        .create_repo("alive", &[("ocelot.yml", YML)])
        .unwrap();
    cluster.add_repo("alive", &repo.url).await.unwrap();
    for name in ["gone", "alive"] {
        let added = cluster
            .ocelot(&["poll", "add", "-r", name, "--every", "1s", "--build-now"])
            .await
            .unwrap();
        assert_eq!(added.code, 0, "{}", added.both());
    }
    let broken = wait_until(
        "the unreachable repo's error",
        Duration::from_secs(30),
        || async {
            polls(&cluster)
                .await
                .into_iter()
                .find(|p| p["repo"] == "gone" && p["failures"].as_i64().unwrap_or(0) >= 1)
        },
    )
    .await
    .unwrap();
    assert!(
        broken["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot reach repository"),
        "{broken}"
    );
    let human = cluster.ocelot(&["poll", "list"]).await.unwrap();
    assert!(human.stdout.contains("last error"), "{}", human.both());

    // --build-now built the live repo's head; a new commit builds too
    let first = wait_until("the --build-now build", Duration::from_secs(60), || async {
        let builds = cluster.builds().await.ok()?;
        builds.into_iter().find(|b| b.state.is_final())
    })
    .await
    .unwrap();
    assert_eq!(first.commit, repo.head().unwrap());
    let next = repo.commit(&[("more", "1")], "more").unwrap();
    repo.push().unwrap();
    wait_until(
        "the new commit's build",
        Duration::from_secs(60),
        || async {
            let builds = cluster.builds().await.ok()?;
            builds
                .into_iter()
                .find(|b| b.commit == next && b.state.is_final())
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_seen_by_a_webhook_and_by_the_poller_is_one_build() {
    let cluster = Cluster::start_spec(ClusterSpec {
        pollers: 1,
        hookhandler: Some(HookSpec::default()),
        ..ClusterSpec::default()
    })
    .await
    .unwrap();
    let repo = cluster
        .git
        .create_repo("team/both", &[("ocelot.yml", YML)])
        .unwrap();
    let secret = cluster.add_repo("both", &repo.url).await.unwrap();
    let added = cluster
        .ocelot(&["poll", "add", "-r", "both", "--every", "1s"])
        .await
        .unwrap();
    assert_eq!(added.code, 0, "{}", added.both());
    wait_polled(&cluster, "both").await;
    let before = repo.head().unwrap();
    let after = repo.commit(&[("w", "1")], "seen twice").unwrap();
    repo.push().unwrap();
    let body = serde_json::json!({
        "ref": "refs/heads/main", "before": before, "after": after, "deleted": false,
        "repository": {"full_name": "team/both", "clone_url": repo.url},
        "head_commit": {"id": after, "message": "seen twice"}, "commits": []
    });
    let text = body.to_string();
    let (name, signature) = ocelot_hookhandler::providers::sign(
        ocelot_hookhandler::Provider::GitHub,
        text.as_bytes(),
        &secret,
    );
    let response = ocelot_tests::http::post(
        &format!("{}/hooks/github", cluster.hooks_url.as_ref().unwrap()),
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "both-1"),
            (name, &signature),
        ],
        text.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 202, "{}", response.body);
    wait_until("the build", Duration::from_secs(60), || async {
        let builds = cluster.builds().await.ok()?;
        builds
            .into_iter()
            .find(|b| b.commit == after && b.state.is_final())
    })
    .await
    .unwrap();
    // polls after the build: the poller saw the pushed head, and queued nothing more
    wait_for_polls(&cluster, "both", 2).await;
    let heads = poll_of(&cluster, "both").await.unwrap().heads.unwrap();
    assert_eq!(
        heads.get("main"),
        Some(&after),
        "the poller never saw the push"
    );
    let builds = cluster.builds().await.unwrap();
    assert_eq!(builds.len(), 1, "{builds:?}");
}
