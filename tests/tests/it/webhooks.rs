//! Webhooks: real HTTP requests to a running hookhandler, with bodies shaped as each provider
//! documents them (the provider fixtures, pointed at a repo served by `git daemon`), signed
//! with the repo's secret; the right build is queued and runs. Forged, malformed, oversized,
//! repeated and unknown requests get their status code and queue nothing.

use ocelot_core::ids::Attempt;
use ocelot_hookhandler::providers::{self, Provider};
use ocelot_tests::cluster::{Cluster, ClusterSpec, HookSpec};
use ocelot_tests::http::{HttpResponse, post};
use ocelot_tests::wait_until;
use serde_json::{Value, json};
use std::time::Duration;

const ECHO_YML: &str = r#"image: ocelot/busybox
branches: [main]
stages:
  - name: info
    script:
      - echo "trigger=$OCELOT_TRIGGER branch=$GIT_BRANCH pr=$OCELOT_PR_NUMBER base=$OCELOT_PR_BASE_BRANCH tag=$GIT_TAG"
  - name: docs
    triggers:
      - \filepath docs/
    script: [echo "docs changed in this push"]
"#;

fn fixture(provider: &str, name: &str) -> Value {
    let path = format!(
        "{}/../hookhandler/tests/fixtures/webhooks/{provider}/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn set(value: &mut Value, path: &str, new: Value) {
    let mut target = value;
    for key in path.split('.') {
        target = match key.parse::<usize>() {
            Ok(index) => &mut target[index],
            Err(_) => &mut target[key],
        };
    }
    *target = new;
}

async fn cluster_with_hooks(spec: HookSpec) -> Cluster {
    Cluster::start_spec(ClusterSpec {
        hookhandler: Some(spec),
        ..ClusterSpec::default()
    })
    .await
    .unwrap()
}

/// POSTs `body` as `provider` would, with `event` headers, signed with `secret` (if any).
async fn deliver(
    cluster: &Cluster,
    provider: Provider,
    headers: &[(&str, &str)],
    body: &[u8],
    secret: Option<&str>,
) -> HttpResponse {
    let url = format!(
        "{}/hooks/{}",
        cluster.hooks_url.as_ref().unwrap(),
        provider.name()
    );
    let mut all: Vec<(&str, String)> = headers.iter().map(|(n, v)| (*n, v.to_string())).collect();
    if let Some(secret) = secret {
        let (name, value) = providers::sign(provider, body, secret);
        all.push((name, value));
    }
    let borrowed: Vec<(&str, &str)> = all.iter().map(|(n, v)| (*n, v.as_str())).collect();
    post(&url, &borrowed, body).await.unwrap()
}

fn github(event: &str, delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-GitHub-Event", event.to_string()),
        ("X-GitHub-Delivery", delivery.to_string()),
    ]
}

async fn deliver_github(
    cluster: &Cluster,
    event: &str,
    delivery: &str,
    body: &Value,
    secret: &str,
) -> HttpResponse {
    let headers = github(event, delivery);
    let borrowed: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    deliver(
        cluster,
        Provider::GitHub,
        &borrowed,
        body.to_string().as_bytes(),
        Some(secret),
    )
    .await
}

async fn final_build(cluster: &Cluster, count: usize) -> Vec<ocelot_core::model::Build> {
    wait_until(
        &format!("{count} final build(s)"),
        Duration::from_secs(90),
        || async {
            let builds = cluster.builds().await.ok()?;
            (builds.len() >= count && builds.iter().all(|b| b.state.is_final())).then_some(builds)
        },
    )
    .await
    .unwrap()
}

async fn log_of(cluster: &Cluster, build: &ocelot_core::model::Build) -> String {
    let lines = cluster.store.lines(build.id, build.attempt).await.unwrap();
    lines.iter().map(|l| format!("{}\n", l.text)).collect()
}

async fn count_deliveries(cluster: &Cluster) -> i64 {
    let (client, connection) =
        tokio_postgres::connect(&cluster.database.url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client
        .query_one("SELECT count(*) FROM webhook_deliveries", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_push_builds_its_commit_once_with_the_whole_push_range() {
    let cluster = cluster_with_hooks(HookSpec::default()).await;
    let repo = cluster
        .git
        .create_repo("team/hooked", &[("ocelot.yml", ECHO_YML)])
        .unwrap();
    let secret = cluster.add_repo("hooked", &repo.url).await.unwrap();
    let before = repo.head().unwrap();
    repo.commit(&[("docs/guide.md", "guide")], "document it")
        .unwrap();
    let after = repo.commit(&[("src/lib.rs", "code")], "code it").unwrap();
    repo.push().unwrap();

    let mut body = fixture("github", "push_branch");
    set(&mut body, "ref", json!("refs/heads/main"));
    set(&mut body, "before", json!(before));
    set(&mut body, "after", json!(after));
    set(&mut body, "repository.full_name", json!("team/hooked"));
    let response = deliver_github(&cluster, "push", "delivery-1", &body, &secret).await;
    assert_eq!(response.status, 202, "{}", response.body);
    assert_eq!(response.json()["queued"], true);

    let builds = final_build(&cluster, 1).await;
    let build = &builds[0];
    assert_eq!(build.state, ocelot_core::BuildState::Passed, "{build:?}");
    assert_eq!(
        (build.trigger.as_str(), build.commit.as_str()),
        ("push", after.as_str())
    );
    assert_eq!(build.previous_commit.as_deref(), Some(before.as_str()));
    let log = log_of(&cluster, build).await;
    assert!(log.contains("trigger=push branch=main"), "{log}");
    // the docs/ change was in the push's first commit, not its head: the range counts
    assert!(log.contains("docs changed in this push"), "{log}");

    // the same delivery again: 200, nothing new
    let again = deliver_github(&cluster, "push", "delivery-1", &body, &secret).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["duplicate"], true);
    // another delivery of the same push (a retry by the host): one build per commit
    let retried = deliver_github(&cluster, "push", "delivery-2", &body, &secret).await;
    assert_eq!(retried.status, 202);
    wait_until(
        "the second delivery to be processed",
        Duration::from_secs(30),
        || async {
            let delivery = cluster.store.delivery("github", "delivery-2").await.ok()?;
            (delivery.state == "done").then_some(delivery)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        cluster.builds().await.unwrap().len(),
        1,
        "a push is one build"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_malformed_oversized_and_unknown_requests_queue_nothing() {
    let cluster = cluster_with_hooks(HookSpec {
        max_body_bytes: 64 * 1024,
        ..HookSpec::default()
    })
    .await;
    let repo = cluster
        .git
        .create_repo("team/guarded", &[("ocelot.yml", ECHO_YML)])
        .unwrap();
    let secret = cluster.add_repo("guarded", &repo.url).await.unwrap();
    let mut body = fixture("github", "push_branch");
    set(&mut body, "ref", json!("refs/heads/main"));
    set(&mut body, "after", json!(repo.head().unwrap()));
    set(&mut body, "repository.full_name", json!("team/guarded"));
    let text = body.to_string();
    let headers = github("push", "forged");
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();

    // tampered body: signed, then changed
    let (name, signature) = providers::sign(Provider::GitHub, text.as_bytes(), &secret);
    let tampered = text.replace("refs/heads/main", "refs/heads/evil");
    let mut signed = headers.clone();
    signed.push((name, &signature));
    let url = format!("{}/hooks/github", cluster.hooks_url.as_ref().unwrap());
    assert_eq!(
        post(&url, &signed, tampered.as_bytes())
            .await
            .unwrap()
            .status,
        401
    );
    // wrong secret, missing signature
    let wrong = deliver(
        &cluster,
        Provider::GitHub,
        &headers,
        text.as_bytes(),
        Some("not-the-secret-at-all"),
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let unsigned = deliver(&cluster, Provider::GitHub, &headers, text.as_bytes(), None).await;
    assert_eq!(unsigned.status, 401, "{}", unsigned.body);
    assert!(
        unsigned.body.contains("X-Hub-Signature-256"),
        "{}",
        unsigned.body
    );
    // malformed JSON and a missing field: 400 naming it
    let malformed = deliver(
        &cluster,
        Provider::GitHub,
        &headers,
        b"{not json",
        Some(&secret),
    )
    .await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    let mut missing = body.clone();
    missing.as_object_mut().unwrap().remove("repository");
    let missing = deliver(
        &cluster,
        Provider::GitHub,
        &headers,
        missing.to_string().as_bytes(),
        Some(&secret),
    )
    .await;
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert!(missing.body.contains("repository"), "{}", missing.body);
    // an event that builds nothing: 202 with a reason
    let issues = github("issues", "issue-1");
    let issues: Vec<(&str, &str)> = issues.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut issue_body = fixture("github", "issues");
    set(
        &mut issue_body,
        "repository.full_name",
        json!("team/guarded"),
    );
    let ignored = deliver(
        &cluster,
        Provider::GitHub,
        &issues,
        issue_body.to_string().as_bytes(),
        Some(&secret),
    )
    .await;
    assert_eq!(ignored.status, 202, "{}", ignored.body);
    assert!(ignored.json()["ignored"].is_string(), "{}", ignored.body);
    // ping: 200
    let ping_headers = github("ping", "ping-1");
    let ping_headers: Vec<(&str, &str)> =
        ping_headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut ping = fixture("github", "ping");
    set(&mut ping, "repository.full_name", json!("team/guarded"));
    let pong = deliver(
        &cluster,
        Provider::GitHub,
        &ping_headers,
        ping.to_string().as_bytes(),
        Some(&secret),
    )
    .await;
    assert_eq!(pong.status, 200, "{}", pong.body);
    // an unknown repo: 404; an unknown provider: 404
    let mut stranger = body.clone();
    set(
        &mut stranger,
        "repository.full_name",
        json!("nobody/nothing"),
    );
    let unknown = deliver(
        &cluster,
        Provider::GitHub,
        &headers,
        stranger.to_string().as_bytes(),
        Some(&secret),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let nowhere = post(
        &format!("{}/hooks/svn", cluster.hooks_url.as_ref().unwrap()),
        &headers,
        b"{}",
    )
    .await
    .unwrap();
    assert_eq!(nowhere.status, 404);
    // oversized: 413
    let huge = vec![b' '; 65 * 1024];
    let oversized = deliver(&cluster, Provider::GitHub, &headers, &huge, Some(&secret)).await;
    assert_eq!(oversized.status, 413);

    assert_eq!(
        count_deliveries(&cluster).await,
        0,
        "a refused request recorded a delivery"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        cluster.builds().await.unwrap().is_empty(),
        "a refused request queued a build"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_bitbucket_and_gitea_deliveries_build_pushes_and_pull_requests() {
    let cluster = cluster_with_hooks(HookSpec::default()).await;
    let repo = cluster
        .git
        .create_repo("team/multi", &[("ocelot.yml", ECHO_YML)])
        .unwrap();
    let secret = cluster.add_repo("multi", &repo.url).await.unwrap();
    let first = repo.head().unwrap();
    let second = repo.commit(&[("a.txt", "a")], "second").unwrap();
    let third = repo.commit(&[("b.txt", "b")], "third").unwrap();
    repo.push().unwrap();

    // GitLab push of `first`
    let mut gitlab_push = fixture("gitlab", "push_branch");
    set(&mut gitlab_push, "ref", json!("refs/heads/main"));
    set(
        &mut gitlab_push,
        "before",
        json!("0000000000000000000000000000000000000000"),
    );
    set(&mut gitlab_push, "after", json!(first));
    set(&mut gitlab_push, "checkout_sha", json!(first));
    set(
        &mut gitlab_push,
        "project.path_with_namespace",
        json!("team/multi"),
    );
    let response = deliver(
        &cluster,
        Provider::GitLab,
        &[
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Event-UUID", "gl-1"),
        ],
        gitlab_push.to_string().as_bytes(),
        Some(&secret),
    )
    .await;
    assert_eq!(response.status, 202, "{}", response.body);

    // Bitbucket push of `second`
    let mut bitbucket_push = fixture("bitbucket", "push_branch");
    // one change: the branch this test pushes
    let change = bitbucket_push["push"]["changes"][0].clone();
    set(&mut bitbucket_push, "push.changes", json!([change]));
    set(
        &mut bitbucket_push,
        "push.changes.0.new.name",
        json!("main"),
    );
    set(
        &mut bitbucket_push,
        "push.changes.0.new.target.hash",
        json!(second),
    );
    set(
        &mut bitbucket_push,
        "push.changes.0.old.target.hash",
        json!(first),
    );
    set(
        &mut bitbucket_push,
        "repository.full_name",
        json!("team/multi"),
    );
    let response = deliver(
        &cluster,
        Provider::Bitbucket,
        &[("X-Event-Key", "repo:push"), ("X-Request-UUID", "bb-1")],
        bitbucket_push.to_string().as_bytes(),
        Some(&secret),
    )
    .await;
    assert_eq!(response.status, 202, "{}", response.body);

    // Gitea pull request #5 with head `third` into main
    let mut gitea_pr = fixture("gitea", "pull_request_opened");
    set(&mut gitea_pr, "pull_request.head.sha", json!(third));
    set(&mut gitea_pr, "pull_request.base.ref", json!("main"));
    set(&mut gitea_pr, "repository.full_name", json!("team/multi"));
    let response = deliver(
        &cluster,
        Provider::Gitea,
        &[
            ("X-Gitea-Event", "pull_request"),
            ("X-Gitea-Delivery", "gt-1"),
        ],
        gitea_pr.to_string().as_bytes(),
        Some(&secret),
    )
    .await;
    assert_eq!(response.status, 202, "{}", response.body);

    // GitLab merge request !1 with head `third` too: its own build (per PR number and head)
    let mut gitlab_mr = fixture("gitlab", "merge_request_open");
    set(
        &mut gitlab_mr,
        "object_attributes.last_commit.id",
        json!(third),
    );
    set(
        &mut gitlab_mr,
        "object_attributes.target_branch",
        json!("main"),
    );
    set(
        &mut gitlab_mr,
        "project.path_with_namespace",
        json!("team/multi"),
    );
    let response = deliver(
        &cluster,
        Provider::GitLab,
        &[
            ("X-Gitlab-Event", "Merge Request Hook"),
            ("X-Gitlab-Event-UUID", "gl-2"),
        ],
        gitlab_mr.to_string().as_bytes(),
        Some(&secret),
    )
    .await;
    assert_eq!(response.status, 202, "{}", response.body);

    // GitHub tag push of `second`: `branches` does not filter tags; GIT_TAG is set
    let mut tag_push = fixture("github", "push_tag");
    set(&mut tag_push, "ref", json!("refs/tags/v1.0"));
    set(&mut tag_push, "after", json!(second));
    set(&mut tag_push, "repository.full_name", json!("team/multi"));
    let response = deliver_github(&cluster, "push", "gh-tag-1", &tag_push, &secret).await;
    assert_eq!(response.status, 202, "{}", response.body);

    let builds = final_build(&cluster, 5).await;
    assert_eq!(builds.len(), 5, "{builds:?}");
    for build in &builds {
        assert_eq!(build.state, ocelot_core::BuildState::Passed, "{build:?}");
    }
    let by_commit = |commit: &str, trigger: &str| {
        builds
            .iter()
            .filter(|b| b.commit == commit && b.trigger == trigger)
            .collect::<Vec<_>>()
    };
    assert_eq!(by_commit(&first, "push").len(), 1);
    assert_eq!(by_commit(&second, "push").len(), 1);
    let prs = by_commit(&third, "pull_request");
    assert_eq!(prs.len(), 2, "{builds:?}");
    let tag = by_commit(&second, "tag");
    assert_eq!(tag.len(), 1, "{builds:?}");
    assert_eq!(tag[0].git_tag.as_deref(), Some("v1.0"));
    let tag_log = log_of(&cluster, tag[0]).await;
    assert!(
        tag_log.contains("trigger=tag branch=v1.0 pr= base= tag=v1.0"),
        "{tag_log}"
    );
    let gitea = prs
        .iter()
        .find(|b| b.pull_request.as_ref().map(|p| p.number) == Some(5))
        .unwrap();
    let log = log_of(&cluster, gitea).await;
    assert!(
        log.contains("trigger=pull_request branch=fix-hooks pr=5 base=main"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_markers_and_branch_filters_skip_automatic_builds_only() {
    let cluster = cluster_with_hooks(HookSpec::default()).await;
    let repo = cluster
        .git
        .create_repo("team/skippy", &[("ocelot.yml", ECHO_YML)])
        .unwrap();
    let secret = cluster.add_repo("skippy", &repo.url).await.unwrap();
    let skipped = repo.commit(&[("c.txt", "c")], "tidy up [skip ci]").unwrap();
    repo.push().unwrap();

    let mut push = fixture("github", "push_branch");
    set(&mut push, "ref", json!("refs/heads/main"));
    set(&mut push, "after", json!(skipped));
    set(&mut push, "repository.full_name", json!("team/skippy"));
    assert_eq!(
        deliver_github(&cluster, "push", "s-1", &push, &secret)
            .await
            .status,
        202
    );
    // a pull request into a branch that `branches` does not list
    let mut pr = fixture("github", "pull_request_opened");
    set(&mut pr, "pull_request.head.sha", json!(skipped));
    set(&mut pr, "pull_request.base.ref", json!("legacy"));
    set(&mut pr, "repository.full_name", json!("team/skippy"));
    assert_eq!(
        deliver_github(&cluster, "pull_request", "s-2", &pr, &secret)
            .await
            .status,
        202
    );

    let builds = final_build(&cluster, 2).await;
    assert!(
        builds
            .iter()
            .all(|b| b.state == ocelot_core::BuildState::Skipped),
        "{builds:?}"
    );
    let reasons: Vec<String> = builds.iter().filter_map(|b| b.reason.clone()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("[skip ci]")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("`legacy`")),
        "{reasons:?}"
    );
    assert!(
        builds.iter().all(|b| b.attempt == Attempt::NONE),
        "a skipped build ran"
    );
    // an explicit build ignores the marker
    let manual = cluster
        .ocelot(&["build", "-r", "skippy", "-b", "main"])
        .await
        .unwrap();
    assert_eq!(manual.code, 0, "{}", manual.both());
    assert!(manual.stderr.contains("PASSED"), "{}", manual.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_source_is_rate_limited_with_retry_after() {
    let cluster = cluster_with_hooks(HookSpec {
        rate_limit: 1,
        rate_burst: 3,
        ..HookSpec::default()
    })
    .await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for index in 0..5 {
        let response = deliver(
            &cluster,
            Provider::GitHub,
            &[
                ("X-GitHub-Event", "ping"),
                ("X-GitHub-Delivery", &format!("p-{index}")),
            ],
            b"{}",
            Some("whatever-secret-here"),
        )
        .await;
        statuses.push(response.status);
        if response.status == 429 {
            limited = Some(response);
        }
    }
    let limited = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // a burst of 3, then one token a second: of 5 quick requests 2 are refused (1 if a
    // token came back meanwhile on a very slow machine)
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!((1..=2).contains(&refused), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_requests_from_forks_get_no_secrets_unless_the_repo_opts_in() {
    const FORK_YML: &str = r#"image: ocelot/busybox
stages:
  - name: info
    script:
      - echo "secret=[${DEPLOY_KEY:-none}]"
"#;
    const SECRET: &str = "fork-must-not-see-this-9d2e";
    let cluster = cluster_with_hooks(HookSpec::default()).await;
    let repo = cluster
        .git
        .create_repo("team/forked", &[("ocelot.yml", FORK_YML)])
        .unwrap();
    let secret = cluster.add_repo("forked", &repo.url).await.unwrap();
    let added = cluster
        .ocelot_with_input(
            &["creds", "add", "env", "DEPLOY_KEY", "-r", "forked"],
            SECRET.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(added.code, 0, "{}", added.both());
    let head = repo.head().unwrap();
    let deliver_pr = |number: u64, head_repo: &'static str, delivery: &'static str| {
        let mut pr = fixture("github", "pull_request_opened");
        set(&mut pr, "number", json!(number));
        set(&mut pr, "pull_request.number", json!(number));
        set(&mut pr, "pull_request.head.sha", json!(head));
        set(&mut pr, "pull_request.base.ref", json!("main"));
        set(
            &mut pr,
            "pull_request.head.repo.full_name",
            json!(head_repo),
        );
        set(&mut pr, "repository.full_name", json!("team/forked"));
        let cluster = &cluster;
        let secret = secret.clone();
        async move { deliver_github(cluster, "pull_request", delivery, &pr, &secret).await }
    };

    // from a fork: the build runs without the secret, and says so
    assert_eq!(deliver_pr(1, "stranger/forked", "f-1").await.status, 202);
    // from a branch of the repo itself: the secret is there (masked in the log)
    assert_eq!(deliver_pr(2, "team/forked", "f-2").await.status, 202);
    let builds = final_build(&cluster, 2).await;
    let by_pr = |number: i64| {
        builds
            .iter()
            .find(|b| b.pull_request.as_ref().map(|p| p.number) == Some(number))
            .unwrap()
            .clone()
    };
    let fork_build = by_pr(1);
    assert_eq!(fork_build.state, ocelot_core::BuildState::Passed);
    assert!(fork_build.pull_request.as_ref().unwrap().from_fork);
    let log = log_of(&cluster, &fork_build).await;
    assert!(log.contains("secret=[none]"), "{log}");
    assert!(log.contains("build secrets withheld"), "{log}");
    let own = log_of(&cluster, &by_pr(2)).await;
    assert!(own.contains("secret=[***]"), "{own}");

    // the repo opts in: a fork's build gets the secret
    let set_option = cluster
        .ocelot(&["repos", "set", "forked", "--secrets-for-forks", "true"])
        .await
        .unwrap();
    assert_eq!(set_option.code, 0, "{}", set_option.both());
    assert!(
        set_option.stderr.contains("from forks get"),
        "{}",
        set_option.both()
    );
    assert_eq!(deliver_pr(3, "stranger/forked", "f-3").await.status, 202);
    let builds = final_build(&cluster, 3).await;
    let opted = builds
        .iter()
        .find(|b| b.pull_request.as_ref().map(|p| p.number) == Some(3))
        .unwrap();
    let log = log_of(&cluster, opted).await;
    assert!(log.contains("secret=[***]"), "{log}");
    for build in &builds {
        assert!(!log_of(&cluster, build).await.contains(SECRET));
    }
}
