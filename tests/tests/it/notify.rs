//! Notifications (issue 15): a build's Slack message and signed webhook document reach a
//! real HTTP receiver started by the test, exactly once even when the receiver fails twice
//! first; an e-mail reaches a real SMTP server (aiosmtpd); no secret is in any message;
//! a receiver that is down changes neither the build's result nor its duration; the badge
//! follows the branch's latest result.

use crate::queued_build_id;
use hmac::{Hmac, KeyInit, Mac};
use ocelot_admin::notifier::NotifierArgs;
use ocelot_tests::cluster::{Cluster, ClusterSpec, HookSpec};
use ocelot_tests::receiver::{Received, Receiver};
use ocelot_tests::smtp::SmtpServer;
use std::time::Duration;

const ENV_SECRET: &str = "env-Secret-8c1f42d7";
const SIGNING_SECRET: &str = "signing-Secret-5be0a9";
const SLACK_PATH: &str = "/services/T000/B000/slackSecretPath";

fn pipeline(script: &str, notify: &str) -> String {
    format!(
        "image: ocelot/busybox\nnotify:\n{notify}stages:\n  - name: test\n    script:\n{script}"
    )
}

const FAILING: &str = "      - for i in $(seq 1 30); do echo \"line $i\"; done\n      - echo \"token $API_TOKEN\"\n      - exit 3\n";
const PASSING: &str = "      - echo fixed\n";

fn fast_notifier(max_attempts: i32) -> NotifierArgs {
    NotifierArgs {
        build_url: Some("https://ci.example/builds/{id}?repo={repo}&n={number}".into()),
        notify_max_attempts: max_attempts,
        notify_retry_base: Duration::from_millis(300),
    }
}

fn verify_signature(request: &Received) {
    let header = &request.headers["x-ocelot-signature-256"];
    let mut mac =
        <Hmac<sha2_11::Sha256> as KeyInit>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(header, &expected, "the signature does not verify");
}

fn assert_no_secret(text: &str) {
    for secret in [ENV_SECRET, SIGNING_SECRET, "slackSecretPath"] {
        assert!(
            !text.contains(secret),
            "`{secret}` leaked into a message:\n{text}"
        );
    }
}

async fn add_creds(cluster: &Cluster, repo: &str, creds: &[(&[&str], String)]) {
    for (args, value) in creds {
        let mut all = vec!["creds", "add"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-r", repo]);
        let added = cluster
            .ocelot_with_input(&all, value.as_bytes())
            .await
            .unwrap();
        assert_eq!(added.code, 0, "{}", added.both());
    }
}

async fn deliveries(cluster: &Cluster, build: &str) -> serde_json::Value {
    let output = cluster.ocelot(&["status", build, "--json"]).await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&output.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}\n{}", output.both()));
    value["deliveries"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_a_signed_webhook_arrive_once_and_the_badge_follows_the_branch() {
    let slack = Receiver::start(0).await.unwrap();
    // fails twice (500), then takes the document
    let hook = Receiver::start(2).await.unwrap();
    let cluster = Cluster::start_spec(ClusterSpec {
        hookhandler: Some(HookSpec::default()),
        notify: fast_notifier(12),
        ..Default::default()
    })
    .await
    .unwrap();
    let notify = "  slack:\n    identifier: chat\n    channel: \"#ci\"\n    on: [PASS, FAIL]\n  webhook:\n    identifier: hook\n    on: [FAIL, change]\n";
    let repo = crate::repo_with(&cluster, "team/app", &pipeline(FAILING, notify), &[]).await;
    add_creds(
        &cluster,
        "team/app",
        &[
            (&["env", "API_TOKEN"], ENV_SECRET.to_string()),
            (&["notify", "chat"], format!("{}{SLACK_PATH}", slack.url)),
            (
                &["notify", "hook", "--url", &format!("{}/hook", hook.url)],
                SIGNING_SECRET.to_string(),
            ),
        ],
    )
    .await;
    let listed = cluster.ocelot(&["creds", "list"]).await.unwrap();
    assert!(listed.stdout.contains("slack webhook"), "{}", listed.both());
    assert_no_secret(&listed.both());

    let failed = cluster.ocelot(&["build", "-r", "team/app"]).await.unwrap();
    assert_ne!(failed.code, 0, "{}", failed.both());
    let build_id = queued_build_id(&failed).to_string();

    let messages = slack
        .wait_for(SLACK_PATH, 1, Duration::from_secs(60))
        .await
        .unwrap();
    let message = messages[0].json();
    assert_eq!(message["channel"], "#ci");
    let text = message["text"].as_str().unwrap();
    assert!(text.starts_with("*FAILED* team/app `main` #1"), "{text}");
    assert!(text.contains("stage `test` failed"), "{text}");
    // the last 20 lines of the failing stage, and no more
    assert!(
        text.contains("line 30\n") && text.contains("token ***\n") && text.contains("line 13\n"),
        "{text}"
    );
    assert!(!text.contains("line 11\n"), "{text}");
    assert!(
        text.ends_with(&format!(
            "https://ci.example/builds/{build_id}?repo=team/app&n=1"
        )),
        "{text}"
    );
    assert_no_secret(&String::from_utf8_lossy(&messages[0].body));

    let tries = hook
        .wait_for("/hook", 3, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        tries.iter().map(|t| t.status).collect::<Vec<_>>(),
        vec![500, 500, 200]
    );
    let delivery = &tries[0].headers["x-ocelot-delivery"];
    for attempt in &tries {
        verify_signature(attempt);
        assert_eq!(&attempt.headers["x-ocelot-delivery"], delivery);
        assert_eq!(attempt.headers["content-type"], "application/json");
        assert_no_secret(&String::from_utf8_lossy(&attempt.body));
    }
    let document = tries[2].json();
    assert_eq!(document["delivery"], delivery.as_str());
    assert_eq!(document["build"]["state"], "failed");
    assert_eq!(document["build"]["repo"], "team/app");
    assert_eq!(document["build"]["branch"], "main");
    assert_eq!(document["failing_stage"]["exit_code"], 3);
    assert_eq!(
        document["failing_stage"]["last_lines"]
            .as_array()
            .unwrap()
            .len(),
        20
    );

    // recorded per delivery, shown by `ocelot status`
    let shown = crate::wait_until_value("both deliveries recorded as sent", || async {
        let list = deliveries(&cluster, &build_id).await;
        let sent = list
            .as_array()?
            .iter()
            .filter(|d| d["status"] == "sent")
            .count();
        (sent == 2).then_some(list)
    })
    .await;
    assert_eq!(shown[0]["kind"], "slack");
    assert_eq!(shown[0]["target"], "chat");
    assert_eq!(shown[0]["attempts"], 1);
    assert_eq!(shown[1]["kind"], "webhook");
    assert_eq!(shown[1]["attempts"], 3);
    let error = shown[1]["last_error"].as_str().unwrap();
    assert!(error.contains("500"), "{error}");
    let human = cluster.ocelot(&["status", &build_id]).await.unwrap();
    assert!(
        human.stdout.contains("notify webhook hook") && human.stdout.contains("sent"),
        "{}",
        human.both()
    );
    // nothing more is sent after the success
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.received().len(), 3);
    assert_eq!(slack.received().len(), 1);

    // the badge: failing, cacheable; unknown branches and repos look alike
    let hooks = cluster.hooks_url.clone().unwrap();
    let badge = ocelot_tests::http::get(&format!("{hooks}/badge/team/app/main.svg"))
        .await
        .unwrap();
    assert_eq!(badge.status, 200);
    assert!(badge.body.contains(">failing</text>"), "{}", badge.body);
    assert_eq!(badge.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(badge.header("etag"), Some("\"ocelot-failing\""));
    assert!(
        badge
            .header("content-type")
            .unwrap()
            .starts_with("image/svg+xml")
    );
    for unknown in ["team/app/nope.svg", "team/none/main.svg"] {
        let badge = ocelot_tests::http::get(&format!("{hooks}/badge/{unknown}"))
            .await
            .unwrap();
        assert_eq!(badge.status, 200, "{unknown}");
        assert!(
            badge.body.contains(">unknown</text>"),
            "{unknown}: {}",
            badge.body
        );
    }

    // fixed: PASS to Slack, and the change to the webhook
    repo.commit(&[("ocelot.yml", &pipeline(PASSING, notify))], "fix")
        .unwrap();
    repo.push().unwrap();
    let passed = cluster.ocelot(&["build", "-r", "team/app"]).await.unwrap();
    assert_eq!(passed.code, 0, "{}", passed.both());
    let messages = slack
        .wait_for(SLACK_PATH, 2, Duration::from_secs(60))
        .await
        .unwrap();
    let text = messages[1].json()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with("*PASSED* team/app `main` #2"), "{text}");
    let tries = hook
        .wait_for("/hook", 4, Duration::from_secs(60))
        .await
        .unwrap();
    verify_signature(&tries[3]);
    assert_eq!(tries[3].json()["build"]["state"], "passed");
    assert_ne!(&tries[3].headers["x-ocelot-delivery"], delivery);
    let badge = ocelot_tests::http::get(&format!("{hooks}/badge/team/app/main.svg"))
        .await
        .unwrap();
    assert!(badge.body.contains(">passing</text>"), "{}", badge.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_arrives_and_a_receiver_that_is_down_changes_no_result() {
    let smtp = SmtpServer::start().await.unwrap();
    // a port nobody listens on: every try fails
    let down = format!(
        "http://127.0.0.1:{}/hook",
        ocelot_tests::free_port().unwrap()
    );
    let cluster = Cluster::start_spec(ClusterSpec {
        notify: fast_notifier(2),
        ..Default::default()
    })
    .await
    .unwrap();
    let notify = "  email:\n    identifier: mail\n    to: [dev@example.com]\n    on: [FAIL]\n  webhook:\n    identifier: down\n";
    crate::repo_with(&cluster, "mailed", &pipeline(FAILING, notify), &[]).await;
    let smtp_url = format!(
        "smtp://{}@127.0.0.1:{}?tls=none&from=ci@example.com&to=dev@example.com,@ops.example",
        ocelot_tests::smtp::USER,
        smtp.port
    );
    add_creds(
        &cluster,
        "mailed",
        &[
            (&["env", "API_TOKEN"], ENV_SECRET.to_string()),
            (
                &["notify", "mail", "--url", &smtp_url],
                ocelot_tests::smtp::PASSWORD.to_string(),
            ),
            (
                &["notify", "down", "--url", &down],
                SIGNING_SECRET.to_string(),
            ),
        ],
    )
    .await;
    let failed = cluster.ocelot(&["build", "-r", "mailed"]).await.unwrap();
    assert_ne!(failed.code, 0, "{}", failed.both());
    let build_id = queued_build_id(&failed);
    let finished = cluster.store.get_build(build_id).await.unwrap();

    let mail = ocelot_tests::wait_until("the mail", Duration::from_secs(60), || async {
        smtp.messages().into_iter().next()
    })
    .await
    .unwrap();
    assert!(mail.contains("X-Auth-Login: ci-mailer\r\n"), "{mail}");
    assert!(
        mail.contains("X-Envelope-To: dev@example.com\r\n"),
        "{mail}"
    );
    assert!(
        mail.contains("Subject: [ocelot] mailed main: FAILED (#1)"),
        "{mail}"
    );
    assert!(mail.contains("From: ci@example.com"), "{mail}");
    assert!(mail.contains("stage `test` failed (exit code 3)"), "{mail}");
    assert!(mail.contains("    line 30"), "{mail}");
    assert!(mail.contains("    token ***"), "{mail}");
    assert_no_secret(&mail);
    assert!(!mail.contains(ocelot_tests::smtp::PASSWORD), "{mail}");

    // the webhook's receiver is down: given up after 2 tries, the build untouched
    let shown = crate::wait_until_value("the webhook given up", || async {
        let list = deliveries(&cluster, &build_id.to_string()).await;
        let done = list
            .as_array()?
            .iter()
            .any(|d| d["kind"] == "webhook" && d["status"] == "gave_up");
        done.then_some(list)
    })
    .await;
    let webhook = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "webhook")
        .unwrap();
    assert_eq!(webhook["attempts"], 2);
    let error = webhook["last_error"].as_str().unwrap();
    assert!(error.starts_with("gave up after 2 tries"), "{error}");
    assert_no_secret(error);
    let email = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "email")
        .unwrap();
    assert_eq!(email["status"], "sent");
    let after = cluster.store.get_build(build_id).await.unwrap();
    assert_eq!(after.state, ocelot_core::BuildState::Failed);
    assert_eq!(after.state, finished.state);
    assert_eq!(after.started_at, finished.started_at);
    assert_eq!(after.finished_at, finished.finished_at);
    let human = cluster
        .ocelot(&["status", &build_id.to_string()])
        .await
        .unwrap();
    assert!(human.stdout.contains("gave up"), "{}", human.both());
}
