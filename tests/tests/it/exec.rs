//! `ocelot exec`: a checkout's `ocelot.yml` run on this machine's Docker with the worker's
//! engine and no server prints what `ocelot build` of the same commit prints through a real
//! cluster, and exits with the same code: a passing build, a failing stage, `--stage` and
//! `--env`, a `needs:` graph with a matrix and a failure, and an uncommitted `ocelot.yml`
//! (with an untracked file) that is used as it is. Ctrl-C cancels the build and leaves no
//! container or network behind.
//!
//! Every `ocelot exec` of the suite runs in this one test, one after the other: what it
//! leaves on the Docker host (labelled `io.ocelot.worker-id=local`) is then its own.

use crate::repo_with;
use ocelot_tests::cluster::{CliOutput, Cluster};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const YML: &str = r#"image: ocelot/busybox
stages:
  - name: compile
    script:
      - echo "compiling $OCELOT_REPO on $GIT_BRANCH"
  - name: lint
    script:
      - echo "a warning" >&2
  - name: test
    script:
      - echo "test 1 ok"
      - echo "greeting=[$GREETING]"
"#;

const BROKEN_YML: &str = r#"image: ocelot/busybox
stages:
  - name: compile
    script:
      - echo "compiling $OCELOT_REPO on $GIT_BRANCH"
      - exit 3
  - name: test
    script:
      - echo "never runs"
"#;

/// A graph: `test` is a 2-job matrix, `lint` runs beside it and fails, `package` needs both
/// (skipped), `docs` needs only `test`.
const GRAPH_YML: &str = r#"image: ocelot/busybox
stages:
  - name: build
    script:
      - echo built > built.txt
  - name: test
    needs: [build]
    matrix:
      SHELL_KIND: [ash, dash]
    script:
      - echo "job $SHELL_KIND saw $(cat built.txt)"
  - name: lint
    needs: [build]
    script:
      - echo "lint found 1 problem"
      - exit 2
  - name: package
    needs: [test, lint]
    script:
      - echo packaged
  - name: docs
    needs: [test]
    script:
      - echo documented
"#;

/// The uncommitted `ocelot.yml`: a stage of its own reads an untracked file.
const CHANGED_YML: &str = r#"image: ocelot/busybox
stages:
  - name: compile
    script:
      - echo "compiling $OCELOT_REPO on $GIT_BRANCH"
  - name: notes
    script:
      - cat notes.txt
"#;

const CANCEL_YML: &str = r#"image: ocelot/busybox
stages:
  - name: wait
    script:
      - echo waiting
      - sleep 300
"#;

/// `12.3s` → `[duration]`, also inside `(12.3s)` or before a `:`.
fn without_duration(word: &str) -> String {
    let core = word
        .trim_start_matches('(')
        .trim_end_matches([')', ':', ',']);
    let is_duration = core
        .strip_suffix('s')
        .is_some_and(|n| n.contains('.') && n.parse::<f64>().is_ok());
    if is_duration {
        word.replace(core, "[duration]")
    } else {
        word.to_string()
    }
}

/// A line with what differs from run to run replaced: the banner keeps the repo and the
/// branch (not the build's id and number, its commit, its worker), durations go.
fn normalized(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    if let [
        "build",
        _,
        _,
        "of",
        repo,
        "at",
        _,
        branch,
        "on",
        "worker",
        _,
    ] = words.as_slice()
    {
        return format!("build of {repo} {branch}");
    }
    words
        .iter()
        .map(|w| without_duration(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What must be the same between `ocelot build` and `ocelot exec`: the exit code, the log
/// (stdout) and the stage and result lines (stderr), normalized, without each command's
/// first line (`build N queued: ...`, `exec: ...`) or the lines a queued build prints while
/// it waits. `sorted`: in any order (stages that run at once interleave).
fn comparable(output: &CliOutput, sorted: bool) -> (i32, Vec<String>, Vec<String>) {
    let lines = |text: &str, skip: usize| {
        let mut lines: Vec<String> = text
            .lines()
            .skip(skip)
            .filter(|l| !l.starts_with("queued: "))
            .map(normalized)
            .collect();
        if sorted {
            lines.sort();
        }
        lines
    };
    (
        output.code,
        lines(&output.stdout, 0),
        lines(&output.stderr, 1),
    )
}

/// `ocelot build` of the checkout's branch through the cluster, and `ocelot exec` in the
/// checkout, with `args` each; both exit with `code` and print the same.
async fn same_as_build(
    cluster: &Cluster,
    checkout: &std::path::Path,
    repo: &str,
    branch: &str,
    args: &[&str],
    code: i32,
    sorted: bool,
) -> CliOutput {
    let mut build_args = vec!["build", "-r", repo, "-b", branch];
    build_args.extend_from_slice(args);
    let built = cluster.ocelot(&build_args).await.unwrap();
    let mut exec_args = vec!["exec"];
    exec_args.extend_from_slice(args);
    let executed = cluster.ocelot_in(checkout, &exec_args).await.unwrap();
    assert_eq!(built.code, code, "ocelot {build_args:?}: {}", built.both());
    assert_eq!(
        comparable(&executed, sorted),
        comparable(&built, sorted),
        "ocelot exec {args:?} printed otherwise than ocelot build:\n{}\n\nocelot build:\n{}",
        executed.both(),
        built.both()
    );
    executed
}

/// The containers and networks `ocelot exec` made that are still on the Docker host.
async fn left_by_exec(docker: &bollard::Docker) -> (Vec<String>, Vec<String>) {
    let filters = HashMap::from([(
        "label".to_string(),
        vec!["io.ocelot.worker-id=local".to_string()],
    )]);
    let containers = docker
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    let networks = docker
        .list_networks(Some(
            bollard::query_parameters::ListNetworksOptionsBuilder::new()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|n| n.id)
        .collect();
    (containers, networks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_prints_and_exits_as_a_server_build_and_leaves_nothing_behind() {
    let cluster = Cluster::start().await.unwrap();
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let repo = repo_with(&cluster, "exec-app", YML, &[]).await;
    let checkout = repo.work.clone();
    repo.push().unwrap();

    // a passing build, and the build's parameters
    let passed = same_as_build(&cluster, &checkout, "exec-app", "main", &[], 0, false).await;
    assert!(
        passed.stdout.contains("compiling exec-app on main"),
        "{}",
        passed.both()
    );
    assert!(
        passed.stderr.starts_with("exec: exec-app (main @ "),
        "{}",
        passed.both()
    );
    let selected = same_as_build(
        &cluster,
        &checkout,
        "exec-app",
        "main",
        &["--stage", "lint", "--env", "GREETING=hi there"],
        0,
        false,
    )
    .await;
    assert!(
        selected.stderr.contains("⊘ test skipped"),
        "{}",
        selected.both()
    );
    let greeted = same_as_build(
        &cluster,
        &checkout,
        "exec-app",
        "main",
        &["--env", "GREETING=hi there"],
        0,
        false,
    )
    .await;
    assert!(
        greeted.stdout.contains("greeting=[hi there]"),
        "{}",
        greeted.both()
    );

    // a failing stage
    repo.git(&["checkout", "-q", "-b", "broken"]).unwrap();
    repo.commit(&[("ocelot.yml", BROKEN_YML)], "break the build")
        .unwrap();
    repo.git(&["push", "-q", "origin", "broken"]).unwrap();
    let failed = same_as_build(&cluster, &checkout, "exec-app", "broken", &[], 1, false).await;
    assert!(
        failed.stderr.contains("FAILED in ")
            && failed
                .stderr
                .contains("stage `compile` failed with exit code 3"),
        "{}",
        failed.both()
    );

    // a graph with a matrix, a failure beside it and what it skips
    repo.git(&["checkout", "-q", "-b", "graph", "main"])
        .unwrap();
    repo.commit(&[("ocelot.yml", GRAPH_YML)], "a graph")
        .unwrap();
    repo.git(&["push", "-q", "origin", "graph"]).unwrap();
    let graph = same_as_build(&cluster, &checkout, "exec-app", "graph", &[], 1, true).await;
    assert!(
        graph.stdout.contains("job dash saw built") && graph.stdout.contains("documented"),
        "{}",
        graph.both()
    );
    assert!(
        graph.stderr.contains("⊘ package skipped"),
        "{}",
        graph.both()
    );

    // an uncommitted ocelot.yml and an untracked file are what exec runs; committed and
    // pushed, the server builds the same
    repo.git(&["checkout", "-q", "main"]).unwrap();
    std::fs::write(checkout.join("ocelot.yml"), CHANGED_YML).unwrap();
    std::fs::write(checkout.join("notes.txt"), "a note not committed yet\n").unwrap();
    let uncommitted = cluster.ocelot_in(&checkout, &["exec"]).await.unwrap();
    assert_eq!(uncommitted.code, 0, "{}", uncommitted.both());
    assert!(
        uncommitted.stdout.contains("a note not committed yet")
            && uncommitted.stderr.contains("with 2 uncommitted changes"),
        "{}",
        uncommitted.both()
    );
    repo.commit(&[], "the notes stage").unwrap();
    repo.push().unwrap();
    let committed = cluster
        .ocelot(&["build", "-r", "exec-app", "-b", "main"])
        .await
        .unwrap();
    assert_eq!(
        comparable(&uncommitted, false),
        comparable(&committed, false),
        "exec of the uncommitted change:\n{}\n\nbuild of it committed:\n{}",
        uncommitted.both(),
        committed.both()
    );
    assert_eq!(
        left_by_exec(&docker).await,
        (Vec::new(), Vec::new()),
        "ocelot exec left containers or networks"
    );

    // Ctrl-C: the build is cancelled, its container and network removed
    std::fs::write(checkout.join("ocelot.yml"), CANCEL_YML).unwrap();
    let mut child =
        tokio::process::Command::new(ocelot_tests::cluster::bin_dir().unwrap().join("ocelot"))
            .arg("exec")
            .current_dir(&checkout)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let waiting = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "waiting" {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(waiting, "the stage never printed its line");
    let (running, networks) = left_by_exec(&docker).await;
    assert_eq!(running.len(), 1, "the build's container runs: {running:?}");
    assert_eq!(
        networks.len(),
        1,
        "the build's network exists: {networks:?}"
    );
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("CANCELLED in ") && stderr.contains("cancelled by Ctrl-C"),
        "{stderr}"
    );
    assert_eq!(
        left_by_exec(&docker).await,
        (Vec::new(), Vec::new()),
        "a cancelled ocelot exec left containers or networks"
    );
}
