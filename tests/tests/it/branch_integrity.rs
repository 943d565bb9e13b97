//! A commit is built "on a branch" only when it is on that branch, and a pull request is
//! built as `pull/N`: a `trigger` token cannot label another branch's (or a fork's) commit
//! as `main`, and a fork's branch named `main` runs no `main`-only stage and never becomes
//! the previous success of a real `main` build.

use crate::{queued_build_id, repo_with};
use ocelot_core::BuildState;
use ocelot_core::model::Build;
use ocelot_hookhandler::providers::{self, Provider};
use ocelot_tests::cluster::{Cluster, ClusterSpec, HookSpec};
use ocelot_tests::http::post;
use ocelot_tests::wait_until;
use std::time::Duration;

const DEPLOYING_YML: &str = r#"image: ocelot/busybox
stages:
  - name: info
    script:
      - echo "branch=[$GIT_BRANCH] previous=[$GIT_PREVIOUS_SUCCESSFUL_COMMIT]"
  - name: deploy
    triggers:
      - \branch main
    script: [echo "DEPLOYING $GIT_HASH"]
"#;

async fn log_of(cluster: &Cluster, build: &Build) -> String {
    let lines = cluster.store.lines(build.id, build.attempt).await.unwrap();
    lines.iter().map(|l| format!("{}\n", l.text)).collect()
}

async fn final_build_where(
    cluster: &Cluster,
    what: &str,
    wanted: impl Fn(&Build) -> bool,
) -> Build {
    wait_until(what, Duration::from_secs(90), || async {
        cluster
            .builds()
            .await
            .ok()?
            .into_iter()
            .find(|b| wanted(b) && b.state.is_final())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_is_not_on_the_branch_is_refused_and_one_that_is_builds() {
    let cluster = Cluster::start().await.unwrap();
    let repo = repo_with(&cluster, "team/app", DEPLOYING_YML, &[]).await;
    let on_main = repo.head().unwrap();
    // a branch with a commit main does not have (a fork's pull request would be the same)
    repo.git(&["checkout", "-q", "-b", "feature"]).unwrap();
    let elsewhere = repo
        .commit(&[("evil.sh", "exfiltrate")], "not on main")
        .unwrap();
    repo.git(&["push", "-q", "origin", "feature"]).unwrap();
    repo.git(&["checkout", "-q", "main"]).unwrap();
    let newer = repo.commit(&[("src.txt", "2")], "main moves on").unwrap();
    repo.push().unwrap();

    // the attack: the feature commit labelled as main
    let refused = cluster
        .ocelot(&["build", "-r", "team/app", "-b", "main", "-c", &elsewhere])
        .await
        .unwrap();
    assert_eq!(refused.code, 6, "{}", refused.both());
    assert!(
        refused
            .stderr
            .contains(&format!("commit {elsewhere} is not on branch `main`")),
        "{}",
        refused.both()
    );
    // an abbreviated id is resolved first, then refused all the same
    let short = cluster
        .ocelot(&[
            "build",
            "-r",
            "team/app",
            "-b",
            "main",
            "-c",
            &elsewhere[..10],
        ])
        .await
        .unwrap();
    assert_eq!(short.code, 6, "{}", short.both());
    assert!(
        cluster.builds().await.unwrap().is_empty(),
        "a refused trigger queued a build"
    );

    // an older commit of main builds as main (deploy included), and so does the head
    let older = cluster
        .ocelot(&["build", "-r", "team/app", "-b", "main", "-c", &on_main])
        .await
        .unwrap();
    assert_eq!(older.code, 0, "{}", older.both());
    assert!(older.stdout.contains("branch=[main]"), "{}", older.both());
    assert!(
        older.stdout.contains(&format!("DEPLOYING {on_main}")),
        "{}",
        older.both()
    );
    // the feature commit builds as what it is: feature, without the main-only stage
    let feature = cluster
        .ocelot(&["build", "-r", "team/app", "-b", "feature", "-c", &elsewhere])
        .await
        .unwrap();
    assert_eq!(feature.code, 0, "{}", feature.both());
    assert!(
        feature.stdout.contains("branch=[feature]"),
        "{}",
        feature.both()
    );
    assert!(!feature.stdout.contains("DEPLOYING"), "{}", feature.both());
    let head = cluster
        .ocelot(&["build", "-r", "team/app", "-b", "main"])
        .await
        .unwrap();
    assert_eq!(head.code, 0, "{}", head.both());
    let build_id = queued_build_id(&head);
    let build = cluster.store.get_build(build_id).await.unwrap();
    assert_eq!(build.commit, newer);
    assert_eq!(build.state, BuildState::Passed);
    assert_eq!(cluster.builds().await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_pull_request_from_a_branch_named_main_builds_as_pull_n() {
    let cluster = Cluster::start_spec(ClusterSpec {
        hookhandler: Some(HookSpec::default()),
        ..ClusterSpec::default()
    })
    .await
    .unwrap();
    let repo = cluster
        .git
        .create_repo("team/app", &[("ocelot.yml", DEPLOYING_YML)])
        .unwrap();
    let secret = cluster.add_repo("app", &repo.url).await.unwrap();
    // a real main build: the previous success of the next one
    let first = cluster
        .ocelot(&["build", "-r", "app", "-b", "main"])
        .await
        .unwrap();
    assert_eq!(first.code, 0, "{}", first.both());
    let main_commit = repo.head().unwrap();

    // the fork's commit, where GitHub puts it: refs/pull/7/head of the base repo
    repo.git(&["checkout", "-q", "-b", "fork-main"]).unwrap();
    let fork_commit = repo
        .commit(&[("evil.sh", "deploy my code")], "fork's main")
        .unwrap();
    repo.git(&["push", "-q", "origin", "HEAD:refs/pull/7/head"])
        .unwrap();
    repo.git(&["checkout", "-q", "main"]).unwrap();

    let body = crate::github_fork_pull_request(7, &fork_commit).to_string();
    let (header, signature) = providers::sign(Provider::GitHub, body.as_bytes(), &secret);
    let url = format!("{}/hooks/github", cluster.hooks_url.as_ref().unwrap());
    let headers = [
        ("X-GitHub-Event", "pull_request"),
        ("X-GitHub-Delivery", "pr-7"),
        (header, signature.as_str()),
    ];
    let response = post(&url, &headers, body.as_bytes()).await.unwrap();
    assert_eq!(response.status, 202, "{}", response.body);
    let pr_build = final_build_where(&cluster, "the pull request's build", |b| {
        b.pull_request.is_some()
    })
    .await;
    assert_eq!(pr_build.state, BuildState::Passed, "{pr_build:?}");
    assert_eq!(pr_build.branch, "pull/7");
    assert_eq!(pr_build.commit, fork_commit);
    let log = log_of(&cluster, &pr_build).await;
    assert!(log.contains("branch=[pull/7]"), "{log}");
    assert!(
        !log.contains("DEPLOYING"),
        "the fork ran a main-only stage:\n{log}"
    );
    assert!(
        log.contains("stage deploy skipped: its triggers are not met"),
        "{log}"
    );

    // the next real main build: its previous success is main's, not the pull request's
    let next = repo.commit(&[("src.txt", "2")], "main moves on").unwrap();
    repo.push().unwrap();
    let second = cluster
        .ocelot(&["build", "-r", "app", "-b", "main"])
        .await
        .unwrap();
    assert_eq!(second.code, 0, "{}", second.both());
    assert!(
        second
            .stdout
            .contains(&format!("branch=[main] previous=[{main_commit}]")),
        "{}",
        second.both()
    );
    assert!(!second.stdout.contains(&fork_commit), "{}", second.both());
    assert!(
        second.stdout.contains(&format!("DEPLOYING {next}")),
        "{}",
        second.both()
    );
    // the same pull request again: its own previous success is its own earlier build
    let again = cluster
        .ocelot(&["rerun", &pr_build.id.to_string()])
        .await
        .unwrap();
    assert_eq!(again.code, 0, "{}", again.both());
    assert!(
        again
            .stdout
            .contains(&format!("branch=[pull/7] previous=[{fork_commit}]")),
        "{}",
        again.both()
    );
    assert!(!again.stdout.contains("DEPLOYING"), "{}", again.both());
}
