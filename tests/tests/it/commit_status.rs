//! Commit statuses (issue 15): a build started by a signed GitHub webhook sets its commit's
//! status on a forge stand-in (the test's own HTTP receiver, the repo's `--api-url`):
//! queued, running, then the result, in that order, with the `ocelot/<repo>` context, the
//! build page and the repo's vcs token; a forge that answers 5xx first still ends with the
//! final state.

use ocelot_admin::notifier::NotifierArgs;
use ocelot_hookhandler::providers::{self, Provider};
use ocelot_tests::cluster::{Cluster, ClusterSpec, HookSpec, WorkerSpec};
use ocelot_tests::http::post;
use ocelot_tests::receiver::{Received, Receiver};
use serde_json::json;
use std::time::Duration;

const TOKEN: &str = "forge-Token-3f9a61c2";

fn notifier() -> NotifierArgs {
    NotifierArgs {
        build_url: Some("https://ci.example/builds/{id}".into()),
        notify_max_attempts: 12,
        notify_retry_base: Duration::from_millis(300),
    }
}

/// A cluster with a hookhandler and one worker that runs one build at a time.
async fn cluster() -> Cluster {
    Cluster::start_spec(ClusterSpec {
        workers: vec![WorkerSpec {
            concurrency: 1,
            ..WorkerSpec::default()
        }],
        hookhandler: Some(HookSpec::default()),
        notify: notifier(),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Registers `name` with `ocelot.yml`, its vcs token, and the receiver as its GitHub API;
/// returns the repo and its webhook secret.
async fn forge_repo(
    cluster: &Cluster,
    name: &str,
    ocelot_yml: &str,
    forge: &Receiver,
) -> (ocelot_tests::git::TestRepo, String) {
    let repo = cluster
        .git
        .create_repo(name, &[("ocelot.yml", ocelot_yml)])
        .unwrap();
    let secret = cluster.add_repo(name, &repo.url).await.unwrap();
    let added = cluster
        .ocelot_with_input(
            &["creds", "add", "vcs", "forge", "-r", name],
            TOKEN.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(added.code, 0, "{}", added.both());
    let set = cluster
        .ocelot(&[
            "repos",
            "set",
            name,
            "--forge",
            "github",
            "--api-url",
            &forge.url,
        ])
        .await
        .unwrap();
    assert_eq!(set.code, 0, "{}", set.both());
    assert!(
        set.stderr
            .contains(&format!("commit statuses go to github at {}", forge.url)),
        "{}",
        set.both()
    );
    (repo, secret)
}

/// A signed GitHub push of `after` to main.
async fn push(cluster: &Cluster, repo_name: &str, after: &str, secret: &str, delivery: &str) {
    let path = format!(
        "{}/../hookhandler/tests/fixtures/webhooks/github/push_branch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut body: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    body["ref"] = json!("refs/heads/main");
    body["after"] = json!(after);
    body["repository"]["full_name"] = json!(repo_name);
    let text = body.to_string();
    let (name, signature) = providers::sign(Provider::GitHub, text.as_bytes(), secret);
    let url = format!("{}/hooks/github", cluster.hooks_url.as_ref().unwrap());
    let response = post(
        &url,
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", delivery),
            (name, &signature),
        ],
        text.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 202, "{}", response.body);
}

/// The statuses of build number `number` the forge got, in order.
fn statuses_of(received: &[Received], number: i64) -> Vec<Received> {
    let marker = format!("Ocelot build #{number}: ");
    received
        .iter()
        .filter(|r| {
            r.json()["description"]
                .as_str()
                .is_some_and(|d| d.starts_with(&marker))
        })
        .cloned()
        .collect()
}

fn describe(statuses: &[Received]) -> Vec<String> {
    statuses
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.json()["state"].as_str().unwrap_or("?"),
                r.json()["description"].as_str().unwrap_or("?"),
                r.status
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_build_sets_queued_running_and_its_result_in_order() {
    let forge = Receiver::start(0).await.unwrap();
    let cluster = cluster().await;
    let yml = "image: ocelot/busybox\nstages:\n  - name: test\n    script:\n      - sleep 4\n";
    let (repo, secret) = forge_repo(&cluster, "team/app", yml, &forge).await;
    let head = repo.head().unwrap();
    // build #1 holds the only slot, so build #2 stays queued long enough to be told
    push(&cluster, "team/app", &head, &secret, "d-1").await;
    crate::wait_until_value("build #1 running", || async {
        let builds = cluster.builds().await.ok()?;
        builds
            .iter()
            .any(|b| b.number == 1 && b.state == ocelot_core::BuildState::Running)
            .then_some(())
    })
    .await;
    let rerun = cluster.ocelot(&["build", "-r", "team/app"]).await.unwrap();
    assert_eq!(rerun.code, 0, "{}", rerun.both());
    let path = format!("/repos/team/app/statuses/{head}");
    let finals = crate::wait_until_value("both builds' results", || async {
        let received = forge.received();
        let done = |n| {
            statuses_of(&received, n).last().is_some_and(|r| {
                r.json()["description"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with("passed")
            })
        };
        (done(1) && done(2)).then_some(received)
    })
    .await;
    for request in &finals {
        assert_eq!(request.path, path);
        assert_eq!(request.headers["authorization"], format!("Bearer {TOKEN}"));
        assert_eq!(request.json()["context"], "ocelot/team/app");
    }
    let second = statuses_of(&finals, 2);
    assert_eq!(
        describe(&second),
        [
            "pending Ocelot build #2: queued 200",
            "pending Ocelot build #2: running 200",
            "success Ocelot build #2: passed 200",
        ],
        "{:#?}",
        describe(&finals)
    );
    let id = second[0].json()["target_url"].as_str().unwrap().to_string();
    assert!(id.starts_with("https://ci.example/builds/"), "{id}");
    // build #1, started by the webhook: running and passed at least, in that order (its
    // queued status may be overtaken by `running` before it leaves: the last state wins)
    let first = describe(&statuses_of(&finals, 1));
    assert!(first.len() >= 2, "{first:#?}");
    assert_eq!(
        first[first.len() - 2],
        "pending Ocelot build #1: running 200"
    );
    assert_eq!(
        first[first.len() - 1],
        "success Ocelot build #1: passed 200"
    );
    // `ocelot status` lists them as sent
    let shown = crate::status_json(&cluster, cluster.builds().await.unwrap()[0].id).await;
    let deliveries = shown["deliveries"].as_array().cloned().unwrap_or_default();
    assert!(
        deliveries
            .iter()
            .any(|d| d["kind"] == "status" && d["status"] == "sent"),
        "{shown:#}"
    );
    let all = serde_json::to_string(&shown).unwrap();
    assert!(!all.contains(TOKEN), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forge_that_fails_first_still_ends_with_the_result() {
    // the first request gets a 500
    let forge = Receiver::start(1).await.unwrap();
    let cluster = cluster().await;
    let yml = "image: ocelot/busybox\nstages:\n  - name: test\n    script:\n      - exit 3\n";
    let (repo, secret) = forge_repo(&cluster, "team/broken", yml, &forge).await;
    push(
        &cluster,
        "team/broken",
        &repo.head().unwrap(),
        &secret,
        "d-1",
    )
    .await;
    let received = crate::wait_until_value("the failure status", || async {
        let received = forge.received();
        received
            .last()
            .is_some_and(|r| r.json()["state"] == "failure" && r.status == 200)
            .then_some(received)
    })
    .await;
    assert_eq!(received[0].status, 500, "{:#?}", describe(&received));
    // the build's result is its own: the forge's outage changed nothing
    let build = &cluster.builds().await.unwrap()[0];
    assert_eq!(build.state, ocelot_core::BuildState::Failed);
    // nothing more comes: the final state is the last word
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        forge.received().len(),
        received.len(),
        "{:#?}",
        describe(&forge.received())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repos_hook_creates_the_forge_webhook_with_the_repos_secret() {
    let forge = Receiver::start(0).await.unwrap();
    let cluster = Cluster::start_spec(ClusterSpec {
        workers: vec![],
        ..Default::default()
    })
    .await
    .unwrap();
    let yml = "image: ocelot/busybox\nstages:\n  - name: test\n    script: [true]\n";
    let (_repo, secret) = forge_repo(&cluster, "team/hooked", yml, &forge).await;
    let hooked = cluster
        .ocelot(&[
            "repos",
            "hook",
            "team/hooked",
            "--hooks-url",
            "https://hooks.ci.example/",
        ])
        .await
        .unwrap();
    assert_eq!(hooked.code, 0, "{}", hooked.both());
    assert!(
        hooked
            .stderr
            .contains("created the github webhook to https://hooks.ci.example/hooks/github"),
        "{}",
        hooked.both()
    );
    let created = forge
        .wait_for("/repos/team/hooked/hooks", 1, Duration::from_secs(10))
        .await
        .unwrap();
    let body = created[0].json();
    assert_eq!(
        body["config"]["url"],
        "https://hooks.ci.example/hooks/github"
    );
    assert_eq!(body["config"]["secret"], secret.as_str());
    assert_eq!(body["events"], json!(["push", "pull_request"]));
    assert_eq!(
        created[0].headers["authorization"],
        format!("Bearer {TOKEN}")
    );
    // the secret and token are never printed
    assert!(!hooked.both().contains(&secret) && !hooked.both().contains(TOKEN));
    // a repo without a known forge is told how to set one
    let plain = cluster
        .git
        .create_repo("team/plain", &[("ocelot.yml", yml)])
        .unwrap();
    cluster.add_repo("team/plain", &plain.url).await.unwrap();
    let refused = cluster
        .ocelot(&[
            "repos",
            "hook",
            "team/plain",
            "--hooks-url",
            "https://hooks.ci.example",
        ])
        .await
        .unwrap();
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("--forge github|gitlab|bitbucket|gitea"),
        "{}",
        refused.both()
    );
}
