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
    // a payload naming no repository names no registered one: refused like a forgery
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert_eq!(missing.body, wrong.body);
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
    // an unknown repo: the answer of a bad signature (401); an unknown provider: 404
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
    assert_eq!(unknown.status, 401, "{}", unknown.body);
    assert_eq!(unknown.body, wrong.body);
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
    repo.git(&["tag", "v1.0", &second]).unwrap();
    repo.git(&["push", "-q", "origin", "v1.0"]).unwrap();
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
        tag_log.contains("trigger=tag branch=tags/v1.0 pr= base= tag=v1.0"),
        "{tag_log}"
    );
    let gitea = prs
        .iter()
        .find(|b| b.pull_request.as_ref().map(|p| p.number) == Some(5))
        .unwrap();
    let log = log_of(&cluster, gitea).await;
    assert!(
        log.contains("trigger=pull_request branch=pull/5 pr=5 base=main"),
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

/// Status and body of a refused delivery: what a sender learns.
fn answer_of(response: &HttpResponse) -> (u16, String) {
    (response.status, response.body.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_repo_and_a_forged_signature_are_answered_alike_and_valid_deliveries_build() {
    let cluster = cluster_with_hooks(HookSpec::default()).await;
    let repo = cluster
        .git
        .create_repo("team/sealed", &[("ocelot.yml", ECHO_YML)])
        .unwrap();
    let secret = cluster.add_repo("sealed", &repo.url).await.unwrap();

    // at rest the secret is sealed: no plain text in the table
    let (client, connection) =
        tokio_postgres::connect(&cluster.database.url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT webhook_secret, webhook_ciphertext FROM repos WHERE name = 'sealed'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    let ciphertext: Vec<u8> = row.get(1);
    assert!(
        !ciphertext
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
        "the webhook secret is stored in plain text"
    );

    let mut body = fixture("github", "push_branch");
    set(&mut body, "ref", json!("refs/heads/main"));
    set(&mut body, "before", Value::Null);
    set(&mut body, "after", json!(repo.head().unwrap()));
    set(&mut body, "repository.full_name", json!("team/sealed"));
    let mut stranger = body.clone();
    set(
        &mut stranger,
        "repository.full_name",
        json!("nobody/secret-project"),
    );
    let headers = github("push", "probe");
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (known, unknown) = (body.to_string(), stranger.to_string());

    // the attack: probing names with a made-up secret; a registered name must not answer
    // differently from an unregistered one
    for secret_tried in [Some("made-up-secret-0123456789"), None] {
        let forged = deliver(
            &cluster,
            Provider::GitHub,
            &headers,
            known.as_bytes(),
            secret_tried,
        )
        .await;
        let probed = deliver(
            &cluster,
            Provider::GitHub,
            &headers,
            unknown.as_bytes(),
            secret_tried,
        )
        .await;
        assert_eq!(forged.status, 401, "{}", forged.body);
        assert_eq!(answer_of(&forged), answer_of(&probed));
    }
    // even signed with a real secret, an unknown repo is a bad signature
    let probed = deliver(
        &cluster,
        Provider::GitHub,
        &headers,
        unknown.as_bytes(),
        Some(&secret),
    )
    .await;
    let forged = deliver(
        &cluster,
        Provider::GitHub,
        &headers,
        known.as_bytes(),
        Some("made-up-secret-0123456789"),
    )
    .await;
    assert_eq!(answer_of(&forged), answer_of(&probed));
    // GitLab's token header, the same
    let mut gitlab = fixture("gitlab", "push_branch");
    set(
        &mut gitlab,
        "project.path_with_namespace",
        json!("team/sealed"),
    );
    let mut gitlab_stranger = gitlab.clone();
    set(
        &mut gitlab_stranger,
        "project.path_with_namespace",
        json!("nobody/else"),
    );
    let gitlab_headers = [
        ("X-Gitlab-Event", "Push Hook"),
        ("X-Gitlab-Event-UUID", "gl-probe"),
    ];
    let forged = deliver(
        &cluster,
        Provider::GitLab,
        &gitlab_headers,
        gitlab.to_string().as_bytes(),
        Some("made-up-secret-0123456789"),
    )
    .await;
    let probed = deliver(
        &cluster,
        Provider::GitLab,
        &gitlab_headers,
        gitlab_stranger.to_string().as_bytes(),
        Some("made-up-secret-0123456789"),
    )
    .await;
    assert_eq!(forged.status, 401, "{}", forged.body);
    assert_eq!(answer_of(&forged), answer_of(&probed));
    assert_eq!(
        count_deliveries(&cluster).await,
        0,
        "a refused request was recorded"
    );

    // the rest still works: a valid delivery is verified, recorded and built
    let valid = deliver_github(&cluster, "push", "valid-1", &body, &secret).await;
    assert_eq!(valid.status, 202, "{}", valid.body);
    let builds = final_build(&cluster, 1).await;
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert_eq!(builds[0].state, ocelot_core::BuildState::Passed);
    assert_eq!(count_deliveries(&cluster).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_webhook_secrets_of_an_earlier_release_keep_working_and_get_sealed() {
    use ocelot_core::secrets::cipher::MasterKey;
    use ocelot_core::secrets::{SecretError, webhook};
    use ocelot_core::store::{Store, StoredWebhookSecret};
    use ocelot_tests::nats::{NatsServer, NatsUser};
    use ocelot_tests::postgres::TestDatabase;

    const LEGACY: &str = "legacy-secret-0123456789";
    // the schema as migration 10 left it, with a repo whose secret is plain text
    let (database, client) = TestDatabase::at_migration(11).await.unwrap();
    client
        .execute(
            "INSERT INTO repos (name, url, webhook_secret) VALUES ('legacy', 'git://127.0.0.1:1/team/legacy.git', $1)",
            &[&LEGACY],
        )
        .await
        .unwrap();
    // a release with sealing reads it as it is until it is sealed
    let store = Store::connect(&database.url).await.unwrap();
    let (_, stored) = store
        .find_repo_for_hook(Some("team/legacy"), &[])
        .await
        .unwrap();
    assert_eq!(stored, Some(StoredWebhookSecret::Plain(LEGACY.to_string())));

    // a hookhandler holding the master key starts: it seals the secret
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_file)
            .unwrap()
            .write_all(MasterKey::generate_hex().unwrap().as_bytes())
            .unwrap();
    }
    let key = MasterKey::from_file(&key_file).unwrap();
    let nats = NatsServer::start().await.unwrap();
    let _streams = ocelot_core::queue::Bus::connect(
        &nats.args(NatsUser::Admin),
        ocelot_core::queue::Setup::Streams,
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let settings = ocelot_hookhandler::Settings {
        database: ocelot_core::settings::DatabaseArgs::new(database.url.clone()),
        nats: nats.args(NatsUser::Hookhandler),
        log: ocelot_core::settings::LogArgs {
            log_format: ocelot_core::telemetry::LogFormat::Plain,
        },
        secrets: ocelot_core::settings::SecretsArgs {
            master_key_file: Some(key_file.clone()),
        },
        secret_store: Default::default(),
        consul: Default::default(),
        listen: address,
        cache_dir: Some(dir.path().join("cache")),
        max_body_bytes: 1024 * 1024,
        rate_limit: std::num::NonZeroU32::new(1000).unwrap(),
        rate_burst: std::num::NonZeroU32::new(1000).unwrap(),
        processors: 0,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let hookhandler = tokio::spawn(ocelot_hookhandler::run(settings, listener, async move {
        let _ = stopped.await;
    }));
    // the listener accepts before the service starts: wait for the sealing itself
    let sealed_under = wait_until(
        "the legacy secret sealed",
        Duration::from_secs(30),
        || async {
            let row = client
                .query_one(
                    "SELECT webhook_secret, webhook_key_id FROM repos WHERE name = 'legacy'",
                    &[],
                )
                .await
                .ok()?;
            row.get::<_, Option<String>>(1)
                .map(|key_id| (row.get::<_, Option<String>>(0), key_id))
        },
    )
    .await
    .unwrap();
    assert_eq!(sealed_under, (None, key.id()), "sealed, no plain text left");
    ocelot_tests::wait_for_port(address.port(), Duration::from_secs(30))
        .await
        .unwrap();

    // deliveries signed with the secret the forge still has are accepted; others are not
    let mut body = fixture("github", "push_branch");
    set(&mut body, "ref", json!("refs/heads/main"));
    set(&mut body, "repository.full_name", json!("team/legacy"));
    let text = body.to_string();
    let url = format!("http://{address}/hooks/github");
    let signed = |secret: &str, delivery: &'static str| {
        let (name, value) = providers::sign(Provider::GitHub, text.as_bytes(), secret);
        vec![
            ("X-GitHub-Event", "push".to_string()),
            ("X-GitHub-Delivery", delivery.to_string()),
            (name, value),
        ]
    };
    let send = |headers: Vec<(&'static str, String)>| {
        let url = url.clone();
        let text = text.clone();
        async move {
            let borrowed: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            post(&url, &borrowed, text.as_bytes()).await.unwrap()
        }
    };
    let accepted = send(signed(LEGACY, "legacy-1")).await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let refused = send(signed("not-the-legacy-secret", "legacy-2")).await;
    assert_eq!(refused.status, 401, "{}", refused.body);

    // sealing again changes nothing; a service with another master key refuses to start
    assert_eq!(webhook::seal_plain_secrets(&store, &key).await.unwrap(), 0);
    let other = MasterKey::from_hex(&MasterKey::generate_hex().unwrap()).unwrap();
    assert!(matches!(
        webhook::seal_plain_secrets(&store, &other).await,
        Err(SecretError::WrongMasterKey { .. })
    ));
    // `rotate-key` re-seals it under the new key, and running it again changes nothing
    assert_eq!(webhook::reseal(&store, &key, &other).await.unwrap(), 1);
    assert_eq!(webhook::reseal(&store, &key, &other).await.unwrap(), 0);
    let (repo, stored) = store
        .find_repo_for_hook(Some("team/legacy"), &[])
        .await
        .unwrap();
    let stored = stored.unwrap();
    assert_eq!(
        webhook::open(Some(&other), &repo.name, &stored).unwrap(),
        LEGACY
    );
    assert!(webhook::open(Some(&key), &repo.name, &stored).is_err());
    let _ = stop.send(());
    hookhandler.await.unwrap().unwrap();
}
