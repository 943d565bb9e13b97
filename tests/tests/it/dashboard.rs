//! The web dashboard, in a real browser (headless Chromium over the DevTools protocol) and
//! over plain HTTP: no data without a token; the builds list; a running build's lines appear
//! as they are printed, colours rendered, and then its final state; a dropped live stream
//! resumes after the last event it had; screenshots are kept under target/test-artifacts.

use crate::repo_with;
use ocelot_core::auth::{RepoScope, TokenScope};
use ocelot_proto::v1 as pb;
use ocelot_tests::browser::Browser;
use ocelot_tests::cluster::{Cluster, ClusterSpec};
use serde_json::Value;
use std::path::PathBuf;
use tonic::metadata::MetadataValue;

const SLOW: &str = r#"image: ocelot/busybox
stages:
  - name: count
    script:
      - printf '\033[32mgreen text\033[0m plain\n'
      - for i in 1 2 3 4 5 6 7 8; do echo "tick $i"; sleep 1; done
  - name: after
    script:
      - echo "after stage"
"#;

fn artifacts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts")
}

async fn trigger(cluster: &Cluster, repo: &str) -> i64 {
    let channel = cluster.channel().await.unwrap();
    let mut client = pb::admin_client::AdminClient::new(channel);
    let bearer: MetadataValue<_> = format!("Bearer {}", cluster.token).parse().unwrap();
    let mut request = tonic::Request::new(pb::TriggerBuildRequest {
        repo: repo.into(),
        branch: "main".into(),
        ..Default::default()
    });
    request.metadata_mut().insert("authorization", bearer);
    let response = client.trigger_build(request).await.unwrap().into_inner();
    response.build.unwrap().id
}

/// Evaluates `expression` until it is true (60 s at most), failing with `what`.
async fn wait_in_page(browser: &mut Browser, what: &str, expression: &str) {
    let mut seen = Value::Null;
    for _ in 0..240 {
        seen = browser.evaluate(expression).await.unwrap();
        if seen == Value::Bool(true) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let text = browser
        .evaluate("document.body.innerText")
        .await
        .unwrap_or_default();
    panic!("{what}: never true ({seen}); the page shows:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_running_build_live_in_a_browser() {
    let cluster = Cluster::start_spec(ClusterSpec {
        admin_http: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let base = cluster.admin_http_url.clone().unwrap();
    let read_token = cluster
        .store
        .create_scoped_token("dashboard-viewer", TokenScope::Read, &RepoScope::all())
        .await
        .unwrap();
    repo_with(&cluster, "slow", SLOW, &[]).await;

    // no build data without a token; the page itself carries the security headers
    let refused = ocelot_tests::http::get(&format!("{base}/api/builds"))
        .await
        .unwrap();
    assert_eq!(refused.status, 401, "{}", refused.body);
    let page = ocelot_tests::http::get(&format!("{base}/")).await.unwrap();
    assert_eq!(page.status, 200);
    let policy = page.header("content-security-policy").unwrap_or_default();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let forged = ocelot_tests::http::get_with(
        &format!("{base}/api/builds"),
        &[("Authorization", "Bearer ocelot_not-a-token")],
    )
    .await
    .unwrap();
    assert_eq!(forged.status, 401, "{}", forged.body);

    let build_id = trigger(&cluster, "slow").await;
    // the sign-in link `ocelot open` prints: the token in the fragment, never sent in a URL
    let open = cluster
        .ocelot_with_token(&read_token, &["open", &build_id.to_string()])
        .await
        .unwrap();
    assert_eq!(open.code, 0, "{}", open.both());
    let link = open.stdout.trim().to_string();
    assert_eq!(
        link,
        format!("{base}/#/builds/{build_id}?token={read_token}")
    );
    let bare = cluster
        .ocelot(&["open", &build_id.to_string(), "--no-token"])
        .await
        .unwrap();
    assert_eq!(bare.stdout.trim(), format!("{base}/#/builds/{build_id}"));
    let mut browser = Browser::start().await.unwrap();
    browser.navigate(&link).await.unwrap();
    // a line printed while the build runs shows up while it still runs
    wait_in_page(
        &mut browser,
        "`tick 2` on the page while the build runs",
        "[...document.querySelectorAll('#log .line')].some(l => l.textContent === 'tick 2')",
    )
    .await;
    let running = browser
        .evaluate("document.getElementById('build-state').dataset.state")
        .await
        .unwrap();
    let lines_now = browser
        .evaluate("[...document.querySelectorAll('#log .line')].filter(l => l.textContent.startsWith('tick')).length")
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert_eq!(running, "running", "the page's state while the build runs");
    let stored = cluster.store.get_build(build_id.into()).await.unwrap();
    assert!(
        !stored.state.is_final() && lines_now < 8,
        "the lines should arrive while the build runs (page: {running}, {lines_now} ticks; build: {:?})",
        stored.state
    );
    // the sign-in link's token is gone from the address
    let address = browser.evaluate("location.href").await.unwrap();
    assert!(!address.as_str().unwrap().contains("token="), "{address}");
    browser
        .screenshot(&artifacts_dir().join("dashboard-running.png"))
        .await
        .unwrap();

    wait_in_page(
        &mut browser,
        "the final state `passed`",
        "document.getElementById('build-state')?.dataset.state === 'passed' && !!document.getElementById('result')",
    )
    .await;
    // every line once, in order, with its colour
    let ticks = browser
        .evaluate("[...document.querySelectorAll('#log .line')].map(l => l.textContent).filter(t => t.startsWith('tick') || t.startsWith('after'))")
        .await
        .unwrap();
    let expected: Vec<String> = (1..=8)
        .map(|i| format!("tick {i}"))
        .chain(["after stage".to_string()])
        .collect();
    assert_eq!(ticks, serde_json::json!(expected));
    let green = browser
        .evaluate("document.querySelector('#log .ansi-fg-2')?.textContent")
        .await
        .unwrap();
    assert_eq!(green, "green text");
    let escape_shown = browser
        .evaluate("document.getElementById('log').textContent.includes('\\u001b')")
        .await
        .unwrap();
    assert_eq!(escape_shown, Value::Bool(false));
    browser
        .screenshot(&artifacts_dir().join("dashboard-build.png"))
        .await
        .unwrap();

    // the builds list and the workers page
    browser.navigate(&format!("{base}/#/")).await.unwrap();
    wait_in_page(
        &mut browser,
        "the build in the list",
        &format!("!!document.querySelector('#builds a[href=\"#/builds/{build_id}\"]')"),
    )
    .await;
    browser
        .screenshot(&artifacts_dir().join("dashboard-builds.png"))
        .await
        .unwrap();
    browser
        .navigate(&format!("{base}/#/workers"))
        .await
        .unwrap();
    wait_in_page(
        &mut browser,
        "the worker in the list",
        &format!(
            "document.getElementById('workers')?.textContent.includes('{}')",
            cluster.worker_ids[0]
        ),
    )
    .await;

    // a dropped live stream resumes right after the last event the browser had
    // (`Last-Event-ID`, which EventSource sends when it reconnects)
    let bearer = format!("Bearer {read_token}");
    let page = ocelot_tests::http::get_with(
        &format!("{base}/api/builds/{build_id}/log"),
        &[("Authorization", &bearer)],
    )
    .await
    .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    let events = page.json()["events"].as_array().unwrap().clone();
    let cut = &events[events.len() / 2];
    let resume_id = format!("{}:{}", cut["attempt"], cut["last_seq"]);
    let resumed = ocelot_tests::http::get_with(
        &format!("{base}/api/builds/{build_id}/events"),
        &[("Authorization", &bearer), ("Last-Event-ID", &resume_id)],
    )
    .await
    .unwrap();
    let resumed_events: Vec<Value> = resumed
        .body
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    let first = resumed_events
        .first()
        .expect("events after the resume point");
    assert_eq!(
        first["seq"].as_u64().unwrap(),
        cut["last_seq"].as_u64().unwrap() + 1,
        "{}",
        resumed.body
    );
    let stored_after: Vec<&Value> = events
        .iter()
        .filter(|e| e["seq"].as_u64() > cut["last_seq"].as_u64())
        .collect();
    assert_eq!(resumed_events.len(), stored_after.len(), "{}", resumed.body);
    assert_eq!(resumed_events.last().unwrap()["kind"], "result");
}
