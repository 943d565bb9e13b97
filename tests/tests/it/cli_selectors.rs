//! Naming a build without its id: `watch`, `status`, `kill` and `rerun` take `latest` (or,
//! but for `status`, nothing) in a checkout: the newest build of its repo and branch (of
//! HEAD's commit when detached), or a commit prefix: the newest build of that commit. A
//! queued build's watcher is told why it waits. `ocelot version` asks the server.

use crate::cli_output::{pin, pin_with, run};
use crate::{queued_build_id, repo_with};
use ocelot_core::ids::BuildId;
use ocelot_tests::cluster::{CliOutput, Cluster, ClusterSpec, bin_dir};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const YML: &str = "image: ocelot/busybox
stages:
  - name: hello
    script: ['echo hello from $GIT_BRANCH']
";

/// Routed to a tag no worker serves: it stays queued.
const NOWHERE_YML: &str = "image: ocelot/busybox
machineTag: nowhere
stages:
  - name: never
    script: [echo never]
";

/// `ocelot ARGS` in `dir`, with the exit code it must have.
async fn run_in(cluster: &Cluster, dir: &Path, args: &[&str], code: i32) -> CliOutput {
    let output = cluster.ocelot_in(dir, args).await.unwrap();
    assert_eq!(output.code, code, "ocelot {args:?}: {}", output.both());
    output
}

fn git_in(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The shortest prefix (7 digits or more) of `commit` that is not all digits, which would
/// read as a build id.
fn prefix_of(commit: &str) -> &str {
    let letter = commit
        .find(|c: char| c.is_ascii_alphabetic())
        .expect("a commit id with a letter");
    &commit[..(letter + 1).max(7)]
}

fn json_id(output: &CliOutput) -> BuildId {
    let value: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    value["id"].as_i64().unwrap().into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_no_id_and_commit_prefixes_name_the_newest_build() {
    let cluster = Cluster::start().await.unwrap();
    let repo = repo_with(&cluster, "sel", YML, &[]).await;
    let main_commit = repo.head().unwrap();
    let checkout = cluster.dir.path().join("sel-checkout");
    repo.clone_to(&checkout).unwrap();

    // nothing built yet; outside a checkout there is no `latest`
    let none = run_in(&cluster, &checkout, &["watch"], 6).await;
    pin("selector_no_build_yet", &none);
    let outside = run(&cluster, &["status", "latest"], 2).await;
    assert!(
        outside.stderr.contains("not in a git checkout")
            && outside.stderr.contains("give a build id"),
        "{}",
        outside.both()
    );
    let no_commit = run(&cluster, &["status", "abcdef0"], 6).await;
    assert!(
        no_commit
            .stderr
            .contains("no build for commit abcdef0: `ocelot status` lists the builds"),
        "{}",
        no_commit.both()
    );

    // main built from the checkout; `dev` with a commit of its own
    let main_build = queued_build_id(&run_in(&cluster, &checkout, &["build"], 0).await);
    repo.git(&["checkout", "-q", "-b", "dev"]).unwrap();
    let dev_commit = repo.commit(&[("dev.txt", "dev")], "dev work").unwrap();
    repo.git(&["push", "-q", "origin", "dev"]).unwrap();
    let dev_build = queued_build_id(&run(&cluster, &["build", "-r", "sel", "-b", "dev"], 0).await);

    // in the checkout, on main: no id and `latest` are main's newest build
    let watched = run_in(&cluster, &checkout, &["watch"], 0).await;
    assert!(
        watched.stdout.contains("hello from main")
            && watched.stderr.contains(&format!(
                "latest → build {main_build}: sel #1 (main @ {})",
                &main_commit[..7]
            )),
        "{}",
        watched.both()
    );
    pin("selector_watch_latest_human", &watched);
    let latest = run_in(&cluster, &checkout, &["status", "latest", "--json"], 0).await;
    assert_eq!(json_id(&latest), main_build);
    // a commit prefix names that commit's newest build, from anywhere
    let by_commit = run(&cluster, &["status", prefix_of(&dev_commit), "--json"], 0).await;
    assert_eq!(json_id(&by_commit), dev_build);
    let upper = prefix_of(&dev_commit).to_ascii_uppercase();
    assert_eq!(
        json_id(&run(&cluster, &["status", &upper, "--json"], 0).await),
        dev_build
    );

    // the checkout on dev: dev's newest; HEAD detached: its commit's newest
    git_in(&checkout, &["fetch", "-q"]);
    git_in(&checkout, &["checkout", "-q", "dev"]);
    let on_dev = run_in(&cluster, &checkout, &["status", "latest", "--json"], 0).await;
    assert_eq!(json_id(&on_dev), dev_build);
    git_in(&checkout, &["checkout", "-q", "--detach", &main_commit]);
    let detached = run_in(&cluster, &checkout, &["status", "latest", "--json"], 0).await;
    assert_eq!(json_id(&detached), main_build);
    git_in(&checkout, &["checkout", "-q", "main"]);

    // the same commit built in another repo (a mirror): the prefix is ambiguous, but for a
    // checkout of one of them
    let fork_bare = cluster.git.root().join("fork.git");
    git_in(
        cluster.git.root(),
        &[
            "clone",
            "-q",
            "--bare",
            &repo.bare.display().to_string(),
            &fork_bare.display().to_string(),
        ],
    );
    let fork_url = repo.url.replace("/sel.git", "/fork.git");
    cluster.add_repo("fork", &fork_url).await.unwrap();
    let fork_build = queued_build_id(
        &run(
            &cluster,
            &["build", "-r", "fork", "-b", "main", "-c", &main_commit],
            0,
        )
        .await,
    );
    let ambiguous = run(&cluster, &["status", prefix_of(&main_commit)], 2).await;
    for wanted in [
        format!(
            "  {}  fork (main), newest build {fork_build}",
            &main_commit[..12]
        ),
        format!(
            "  {}  sel (main), newest build {main_build}",
            &main_commit[..12]
        ),
    ] {
        assert!(ambiguous.stderr.contains(&wanted), "{}", ambiguous.both());
    }
    // (the prefix is 7 digits or more)
    let prefix = format!(r"\b{}\b", prefix_of(&main_commit));
    pin_with(
        "selector_ambiguous_commit",
        &ambiguous,
        &[(prefix.as_str(), "[prefix]")],
    );
    let in_checkout = run_in(
        &cluster,
        &checkout,
        &["status", prefix_of(&main_commit), "--json"],
        0,
    )
    .await;
    assert_eq!(json_id(&in_checkout), main_build);

    // rerun by commit prefix, in the checkout: a new build of that commit
    let rerun = run_in(&cluster, &checkout, &["rerun", prefix_of(&main_commit)], 0).await;
    assert!(
        rerun
            .stderr
            .contains(&format!("a rerun of build {main_build}"))
            && rerun.stdout.contains("hello from main"),
        "{}",
        rerun.both()
    );

    // main moves to a commit no worker can build: `ocelot watch` (no id) says why its
    // build waits, and `ocelot kill` (no id) cancels it
    repo.git(&["checkout", "-q", "main"]).unwrap();
    repo.commit(&[("ocelot.yml", NOWHERE_YML)], "route nowhere")
        .unwrap();
    repo.push().unwrap();
    git_in(&checkout, &["pull", "-q"]);
    let queued: BuildId = run_in(&cluster, &checkout, &["build", "--no-follow"], 0)
        .await
        .stdout
        .trim()
        .parse()
        .unwrap();
    let mut watch = cluster.ocelot_spawn(&checkout, &["watch"]).unwrap();
    let mut stderr = BufReader::new(watch.stderr.take().unwrap()).lines();
    let mut watch_stdout = watch.stdout.take().unwrap();
    let mut shown = Vec::new();
    let reason = "queued: no live worker serves tag `nowhere`";
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            shown.push(line);
            if shown.last().is_some_and(|l| l.starts_with(reason)) {
                return;
            }
        }
        panic!("the watch ended without saying why: {shown:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no `{reason}` line within 60 s: {shown:?}"));
    let killed = run_in(&cluster, &checkout, &["kill"], 0).await;
    assert!(
        killed.stderr.contains(&format!("latest → build {queued}")),
        "{}",
        killed.both()
    );
    while let Some(line) = stderr.next_line().await.unwrap() {
        shown.push(line);
    }
    let status = watch.wait().await.unwrap();
    assert_eq!(status.code(), Some(4), "{shown:?}");
    assert!(
        shown.iter().any(|l| l.starts_with("CANCELLED")),
        "{shown:?}"
    );
    // each reason once, until it changes (the registry may learn of the worker meanwhile)
    let reasons: Vec<&String> = shown.iter().filter(|l| l.starts_with("queued: ")).collect();
    assert!(
        reasons.windows(2).all(|pair| pair[0] != pair[1]),
        "{shown:?}"
    );
    let mut log = String::new();
    watch_stdout.read_to_string(&mut log).await.unwrap();
    assert_eq!(log, "", "a queued build has no log yet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_shows_the_cli_and_the_server() {
    let cluster = Cluster::start_spec(ClusterSpec {
        dashboard_url: Some("https://ci.example/ocelot".into()),
        ..ClusterSpec::default()
    })
    .await
    .unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let extra: &[(&str, &str)] = &[
        (r"127\.0\.0\.1:\d+", "[admin]"),
        (r"\b\d+\.\d+\.\d+\b", "[version]"),
    ];
    let human = run(&cluster, &["version"], 0).await;
    assert_eq!(
        human.stdout,
        format!(
            "ocelot {version}\nserver {version} ({})\ndashboard https://ci.example/ocelot\n",
            cluster.admin_url
        )
    );
    assert_eq!(human.stderr, "", "same versions: no note");
    pin_with("version_human", &human, extra);
    let json = run(&cluster, &["version", "--json"], 0).await;
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["version"], version);
    assert_eq!(value["server"]["version"], version);
    assert_eq!(
        value["server"]["dashboard_url"],
        "https://ci.example/ocelot"
    );
    pin_with("version_json", &json, extra);

    // any valid token may ask; without one, or without a server, the CLI's own version
    // and a note, exit 0
    let read = cluster
        .ocelot(&["token", "create", "--name", "reader", "--scope", "read"])
        .await
        .unwrap();
    let reader = cluster
        .ocelot_with_token(read.stdout.trim(), &["version", "--json"])
        .await
        .unwrap();
    assert_eq!(reader.code, 0, "{}", reader.both());
    assert!(reader.stdout.contains(r#""server":{"#), "{}", reader.both());
    let anonymous = cluster.ocelot_with_token("", &["version"]).await.unwrap();
    assert_eq!(anonymous.code, 0, "{}", anonymous.both());
    assert_eq!(anonymous.stdout, format!("ocelot {version}\n"));
    assert!(
        anonymous
            .stderr
            .starts_with("note: the server's version is unknown: unauthenticated"),
        "{}",
        anonymous.both()
    );
    let unreachable = run(&cluster, &["--admin", "http://127.0.0.1:1", "version"], 0).await;
    assert_eq!(unreachable.stdout, format!("ocelot {version}\n"));
    assert!(
        unreachable
            .stderr
            .contains("note: the server's version is unknown: cannot reach the Ocelot admin at http://127.0.0.1:1"),
        "{}",
        unreachable.both()
    );
    let offline = run(
        &cluster,
        &["--admin", "http://127.0.0.1:1", "version", "--json"],
        0,
    )
    .await;
    let value: serde_json::Value = serde_json::from_str(&offline.stdout).unwrap();
    assert_eq!(value["server"], serde_json::Value::Null);
    assert!(value["server_error"].as_str().is_some(), "{value}");
}

/// `ocelot validate FILE ARGS`, offline (no cluster): the binary and the file only.
fn validate(file: &Path, args: &[&str]) -> CliOutput {
    let output = std::process::Command::new(bin_dir().unwrap().join("ocelot"))
        .arg("validate")
        .arg(file)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("OCELOT_ADMIN")
        .output()
        .unwrap();
    CliOutput {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `ocelot validate --branch B`: which stages a build of `B` runs, which are skipped and
/// why, and which depend on the commit; a stage whose need was skipped by its triggers
/// still runs.
#[test]
fn validate_branch_says_which_stages_would_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ocelot.yml");
    std::fs::write(
        &file,
        r#"image: ocelot/busybox
branches: [main, release/.*]
stages:
  - name: build
    script: [make]
  - name: test
    needs: [build]
    script: [make test]
  - name: docs
    needs: [build]
    triggers: ['\branch main and \filepath docs/']
    script: [make docs]
  - name: deploy
    needs: [test, docs]
    trigger: { branches: [main] }
    script: [make deploy]
"#,
    )
    .unwrap();
    let path = file.display().to_string();
    let extra: &[(&str, &str)] = &[(path.as_str(), "[file]")];
    for branch in ["main", "release/1", "feature/x"] {
        let human = validate(&file, &["--branch", branch]);
        assert_eq!(human.code, 0, "{}", human.both());
        pin_with(
            &format!("validate_branch_{}", branch.replace('/', "_")),
            &human,
            extra,
        );
    }
    let json = validate(&file, &["--branch", "feature/x", "--json"]);
    assert_eq!(json.code, 0, "{}", json.both());
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let plan = &value["branch"];
    assert_eq!(plan["branch"], "feature/x", "{value}");
    assert_eq!(plan["builds"], false, "{value}");
    let runs: Vec<(&str, &str)> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["runs"].as_str().unwrap()))
        .collect();
    assert_eq!(
        runs,
        [
            ("build", "yes"),
            ("test", "yes"),
            ("docs", "no"),
            ("deploy", "no")
        ]
    );
}
