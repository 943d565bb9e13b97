//! End-to-end tests: every test starts its own cluster (database, NATS, git daemon, admin,
//! workers) and drives the real `ocelot` binary.

// helpers of tests may panic like the tests themselves
#![allow(clippy::unwrap_used)]

mod artifacts;
mod auth;
mod branch_integrity;
mod build;
mod build_params;
mod bus_security;
mod caches;
mod cancel;
mod cli_output;
mod cli_selectors;
mod commit_status;
mod dashboard;
mod database_tls;
mod errors;
mod exec;
mod file_credentials;
mod graph;
mod haproxy;
mod harness;
mod health;
mod host_executor;
mod limits;
mod log_colours;
mod log_outage;
mod log_path;
mod matrix;
mod metrics;
mod notify;
mod poller;
mod private_repos;
mod recovery;
mod sandbox;
mod secrets;
mod services;
mod settings;
mod store;
mod token_scopes;
mod warm;
mod watch;
mod webhook_ingest;
mod webhooks;
mod workers;

use ocelot_core::ids::BuildId;
use ocelot_tests::cluster::{CliOutput, Cluster};

/// The build id from the CLI's "build N queued" line.
pub(crate) fn queued_build_id(output: &CliOutput) -> BuildId {
    output
        .stderr
        .lines()
        .find_map(|line| {
            line.strip_prefix("build ")?
                .split_once(" queued")?
                .0
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no `build N queued` line:\n{}", output.both()))
}

/// Registers a repo with `ocelot.yml` (and extra files) and returns its name.
pub(crate) async fn repo_with(
    cluster: &Cluster,
    name: &str,
    ocelot_yml: &str,
    extra: &[(&str, &str)],
) -> ocelot_tests::git::TestRepo {
    let mut files = vec![("ocelot.yml", ocelot_yml)];
    files.extend_from_slice(extra);
    let repo = cluster.git.create_repo(name, &files).unwrap();
    cluster.add_repo(name, &repo.url).await.unwrap();
    repo
}

/// `ocelot status ID --json`.
pub(crate) async fn status_json(cluster: &Cluster, build_id: BuildId) -> serde_json::Value {
    let output = cluster
        .ocelot(&["status", &build_id.to_string(), "--json"])
        .await
        .unwrap();
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}\n{}", output.both()))
}

/// Polls `check` until it returns a value (60 s at most).
pub(crate) async fn wait_until_value<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    ocelot_tests::wait_until(what, std::time::Duration::from_secs(60), check)
        .await
        .unwrap()
}

/// A GitHub `pull_request` delivery (the recorded fixture) for pull request `number` of
/// `team/app` from the fork `stranger/app`, whose branch is called `main`, at `head_sha`.
pub(crate) fn github_fork_pull_request(number: u64, head_sha: &str) -> serde_json::Value {
    use serde_json::json;
    let path = format!(
        "{}/../hookhandler/tests/fixtures/webhooks/github/pull_request_opened.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut body: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    body["number"] = json!(number);
    body["pull_request"]["number"] = json!(number);
    body["pull_request"]["head"]["sha"] = json!(head_sha);
    body["pull_request"]["head"]["ref"] = json!("main");
    body["pull_request"]["head"]["repo"]["full_name"] = json!("stranger/app");
    body["pull_request"]["base"]["ref"] = json!("main");
    body["repository"]["full_name"] = json!("team/app");
    body
}
