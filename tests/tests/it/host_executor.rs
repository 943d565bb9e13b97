//! Builds on the host (`--executor host`) run only for repos an admin opted in, never for
//! pull requests, each as its own unprivileged uid that cannot read the worker's
//! environment, files or other builds, and whose processes all end with their stage; and
//! `ocelot.yml` is read from git, never through a committed symbolic link.

use crate::{queued_build_id, repo_with, status_json};
use ocelot_core::BuildState;
use ocelot_core::model::{Build, PullRequestRef};
use ocelot_core::queue::{Bus, Setup};
use ocelot_core::store::NewBuild;
use ocelot_tests::cluster::{Cluster, WorkerSpec};
use ocelot_tests::nats::NatsUser;
use ocelot_tests::wait_until;
use ocelot_worker::ExecutorKind;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// A Docker worker (`default`) and a host worker for machine tag `bare`.
async fn host_cluster(concurrency: usize) -> Cluster {
    Cluster::start_with(vec![
        WorkerSpec::default(),
        WorkerSpec {
            tags: vec!["bare".into()],
            executor: ExecutorKind::Host,
            concurrency,
            ..WorkerSpec::default()
        },
    ])
    .await
    .unwrap()
}

/// An `ocelot.yml` of one stage running `lines` on the host worker.
fn host_yml(lines: &[&str]) -> String {
    let mut yml = String::from("machineTag: bare\nstages:\n  - name: host\n    script:\n");
    for line in lines {
        yml.push_str(&format!("      - '{}'\n", line.replace('\'', "''")));
    }
    yml
}

async fn allow_host(cluster: &Cluster, repo: &str, allowed: bool) {
    let output = cluster
        .ocelot(&["repos", "set", repo, "--allow-host", &allowed.to_string()])
        .await
        .unwrap();
    assert_eq!(output.code, 0, "{}", output.both());
}

async fn log_of(cluster: &Cluster, build: &Build) -> String {
    let lines = cluster.store.lines(build.id, build.attempt).await.unwrap();
    lines.iter().map(|l| format!("{}\n", l.text)).collect()
}

async fn final_build(cluster: &Cluster, id: ocelot_core::ids::BuildId) -> Build {
    wait_until("the build to end", Duration::from_secs(90), || async {
        cluster
            .store
            .get_build(id)
            .await
            .ok()
            .filter(|b| b.state.is_final())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repo_not_allowed_on_the_host_errors_saying_how_to_allow_it() {
    let cluster = host_cluster(1).await;
    repo_with(&cluster, "native", &host_yml(&["echo RAN-ON-HOST"]), &[]).await;
    let listed = cluster.ocelot(&["repos", "list", "--json"]).await.unwrap();
    let repos: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(repos[0]["allow_host"], false, "{repos}");

    let refused = cluster.ocelot(&["build", "-r", "native"]).await.unwrap();
    assert_eq!(refused.code, 3, "{}", refused.both());
    assert!(
        !refused.stdout.contains("RAN-ON-HOST"),
        "{}",
        refused.both()
    );
    let status = status_json(&cluster, queued_build_id(&refused)).await;
    assert_eq!(status["state"], "errored");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("may not run builds on the host")
            && reason.contains("ocelot repos set native --allow-host true"),
        "{reason}"
    );

    // the admin opts the repo in: the same build now runs, and the listing says so
    allow_host(&cluster, "native", true).await;
    let listed = cluster.ocelot(&["repos", "list", "--json"]).await.unwrap();
    let repos: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(repos[0]["allow_host"], true, "{repos}");
    let human = cluster.ocelot(&["repos", "list"]).await.unwrap();
    assert!(human.stdout.contains("HOST"), "{}", human.both());
    let ran = cluster.ocelot(&["build", "-r", "native"]).await.unwrap();
    assert_eq!(ran.code, 0, "{}", ran.both());
    assert!(ran.stdout.contains("RAN-ON-HOST"), "{}", ran.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_requests_never_run_on_the_host_even_when_the_repo_allows_it() {
    let cluster = host_cluster(1).await;
    let repo = repo_with(&cluster, "native", &host_yml(&["echo RAN-ON-HOST"]), &[]).await;
    allow_host(&cluster, "native", true).await;
    let repo_id = cluster.store.find_repo("native").await.unwrap().id;
    // a job as the hookhandler queues it for a pull request (from a fork, then not)
    let bus = Bus::connect(
        &cluster.nats.args(NatsUser::Hookhandler),
        Setup::PublishOnly,
    )
    .await
    .unwrap();
    for (number, from_fork) in [(7, true), (8, false)] {
        let inserted = cluster
            .store
            .insert_build(&NewBuild {
                repo_id,
                commit: repo.head().unwrap(),
                branch: format!("pull/{number}"),
                trigger: "pull_request".into(),
                tag: "bare".into(),
                state: BuildState::Queued,
                reason: None,
                previous_commit: None,
                pull_request: Some(PullRequestRef {
                    number,
                    base_branch: "main".into(),
                    from_fork,
                }),
                git_tag: None,
                dedupe_key: None,
                params: Default::default(),
                notify: Vec::new(),
                trace_id: None,
            })
            .await
            .unwrap();
        assert!(ocelot_core::trigger::publish(&cluster.store, &bus, &inserted.build).await);
        let build = final_build(&cluster, inserted.build.id).await;
        assert_eq!(build.state, BuildState::Errored, "{build:?}");
        let reason = build.reason.clone().unwrap_or_default();
        assert!(
            reason.contains("pull-request builds never run on the host"),
            "{reason}"
        );
        let log = log_of(&cluster, &build).await;
        assert!(!log.contains("RAN-ON-HOST"), "{log}");
        assert!(log.contains("name an `image`"), "{log}");
    }
    // the repo's own builds still run there
    let ran = cluster.ocelot(&["build", "-r", "native"]).await.unwrap();
    assert_eq!(ran.code, 0, "{}", ran.both());
    assert!(ran.stdout.contains("RAN-ON-HOST"), "{}", ran.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_build_cannot_read_the_worker_its_files_or_another_build() {
    let cluster = host_cluster(2).await;
    // a victim build: a secret file in its workspace, then it waits for the test
    let release_dir = tempfile::tempdir().unwrap();
    // writable by the victim (where it says its workspace), the test releases it there
    std::fs::set_permissions(release_dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let release = release_dir.path().join("release");
    let told = release_dir.path().join("workspace");
    let victim_yml = host_yml(&[
        "echo victim-secret-contents > secret.txt",
        &format!("echo \"$WORKSPACE\" > {}", told.display()),
        &format!("while [ ! -e {} ]; do sleep 0.1; done", release.display()),
    ]);
    repo_with(&cluster, "victim", &victim_yml, &[]).await;
    allow_host(&cluster, "victim", true).await;
    let queued = cluster
        .ocelot(&["build", "-r", "victim", "--no-follow"])
        .await
        .unwrap();
    let victim_id: ocelot_core::ids::BuildId = queued.stdout.trim().parse().unwrap();
    let victim_workspace = wait_until(
        "the victim's workspace",
        Duration::from_secs(60),
        || async {
            let text = std::fs::read_to_string(&told).ok()?;
            text.ends_with('\n').then(|| text.trim().to_string())
        },
    )
    .await
    .unwrap();

    let cache_dir = cluster.dir.path().join("worker-1");
    let master_key = cluster.dir.path().join("master.key");
    let attempt = |what: &str, command: String| {
        format!("if {command}; then echo \"LEAK-{what}\"; else echo \"denied-{what}\"; fi")
    };
    let probes = [
        ("ppid-environ", "cat /proc/$PPID/environ".to_string()),
        ("signal-worker", "kill -0 $PPID".to_string()),
        ("master-key", format!("cat {}", master_key.display())),
        ("cache-dir", format!("ls {}", cache_dir.display())),
        ("mirrors", format!("ls {}/mirrors", cache_dir.display())),
        ("workspaces", "ls \"$(dirname \"$WORKSPACE\")\"".to_string()),
        (
            "victim-secret",
            format!("cat {victim_workspace}/secret.txt"),
        ),
        ("victim-workspace", format!("ls {victim_workspace}")),
    ];
    let mut lines: Vec<String> = vec![
        "echo \"uid=$(id -u)\"".into(),
        "for f in /proc/[0-9]*/environ; do tr \"\\000\" \"\\n\" < \"$f\" 2>/dev/null || true; done"
            .into(),
    ];
    lines.extend(
        probes
            .iter()
            .map(|(what, command)| attempt(what, command.clone())),
    );
    let line_refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    repo_with(&cluster, "spy", &host_yml(&line_refs), &[]).await;
    allow_host(&cluster, "spy", true).await;
    let spy = cluster.ocelot(&["build", "-r", "spy"]).await.unwrap();
    std::fs::write(&release, "go").unwrap();
    assert_eq!(spy.code, 0, "{}", spy.both());
    for (what, _) in &probes {
        assert!(
            spy.stdout.contains(&format!("denied-{what}")),
            "{what}:\n{}",
            spy.both()
        );
        assert!(
            !spy.stdout.contains(&format!("LEAK-{what}")),
            "{what}:\n{}",
            spy.both()
        );
    }
    let uid: u32 = spy
        .stdout
        .lines()
        .find_map(|l| l.split("uid=").nth(1)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no uid line:\n{}", spy.both()));
    assert_ne!(uid, 0);
    assert_ne!(
        uid,
        rustix::process::geteuid().as_raw(),
        "the worker's own uid"
    );
    // nothing of the worker's secrets reached the log
    let spy_build = cluster
        .store
        .get_build(queued_build_id(&spy))
        .await
        .unwrap();
    let log = log_of(&cluster, &spy_build).await;
    let key = std::fs::read_to_string(&master_key).unwrap();
    for secret in [
        cluster.database.url.as_str(),
        key.trim(),
        "victim-secret-contents",
    ] {
        assert!(!log.contains(secret), "`{secret}` leaked:\n{log}");
    }
    assert!(!log.contains("OCELOT_DATABASE_URL"), "{log}");
    // the victim goes on and passes
    let victim = final_build(&cluster, victim_id).await;
    assert_eq!(victim.state, BuildState::Passed, "{victim:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonised_process_does_not_outlive_its_host_build() {
    let cluster = host_cluster(1).await;
    let yml = host_yml(&[
        "echo \"uid=$(id -u)\"",
        "setsid sleep 1000 </dev/null >/dev/null 2>&1 &",
        "echo \"daemon $!\"",
    ]);
    repo_with(&cluster, "daemon", &yml, &[]).await;
    allow_host(&cluster, "daemon", true).await;
    let output = cluster.ocelot(&["build", "-r", "daemon"]).await.unwrap();
    assert_eq!(output.code, 0, "{}", output.both());
    let field = |prefix: &str| -> u32 {
        output
            .stdout
            .lines()
            .find_map(|l| l.split(prefix).nth(1)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{prefix}N` line:\n{}", output.both()))
    };
    let (uid, daemon) = (field("uid="), field("daemon "));
    // the build is over: neither the daemon nor any other process of its uid runs
    let stat = std::fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z"),
        "the daemon outlived its build: {stat}"
    );
    let of_uid: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|s| {
            let live = !s
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'));
            let ruid = s
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next().map(str::to_string));
            live && ruid == Some(uid.to_string())
        })
        .collect();
    assert!(
        of_uid.is_empty(),
        "processes of uid {uid} remain: {of_uid:?}"
    );
    // the worker still builds
    let again = cluster.ocelot(&["build", "-r", "daemon"]).await.unwrap();
    assert_eq!(again.code, 0, "{}", again.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_or_huge_ocelot_yml_is_refused_and_never_read_from_the_host() {
    let cluster = host_cluster(1).await;
    let good = "image: ocelot/busybox\nstages:\n  - name: s\n    script: [echo GOOD-BUILD]\n";
    let repo = repo_with(&cluster, "links", good, &[]).await;
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let hostname = hostname.trim();
    for target in ["/etc/hostname", "/dev/zero"] {
        repo.git(&["rm", "-q", "ocelot.yml"]).unwrap();
        std::os::unix::fs::symlink(target, repo.work.join("ocelot.yml")).unwrap();
        repo.commit(&[], &format!("link to {target}")).unwrap();
        repo.push().unwrap();
        let output = cluster.ocelot(&["build", "-r", "links"]).await.unwrap();
        assert_eq!(output.code, 3, "{target}: {}", output.both());
        let build = cluster
            .store
            .get_build(queued_build_id(&output))
            .await
            .unwrap();
        assert_eq!(build.state, BuildState::Errored);
        let reason = build.reason.clone().unwrap_or_default();
        assert!(reason.contains("symbolic link"), "{target}: {reason}");
        let log = log_of(&cluster, &build).await;
        if !hostname.is_empty() {
            assert!(
                !log.split_whitespace().any(|word| word == hostname),
                "the host's name reached the log:\n{log}"
            );
        }
    }
    // a regular file over the limit
    repo.git(&["rm", "-q", "ocelot.yml"]).unwrap();
    let huge = format!("# {}\n{good}", "x".repeat(2 * 1024 * 1024));
    repo.commit(&[("ocelot.yml", huge.as_str())], "huge")
        .unwrap();
    repo.push().unwrap();
    let output = cluster.ocelot(&["build", "-r", "links"]).await.unwrap();
    assert_eq!(output.code, 3, "{}", output.both());
    let status = status_json(&cluster, queued_build_id(&output)).await;
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("over the limit of 1048576 bytes"),
        "{reason}"
    );
    // the worker then runs a good build
    repo.commit(&[("ocelot.yml", good)], "fixed").unwrap();
    repo.push().unwrap();
    let output = cluster.ocelot(&["build", "-r", "links"]).await.unwrap();
    assert_eq!(output.code, 0, "{}", output.both());
    assert!(output.stdout.contains("GOOD-BUILD"), "{}", output.both());
}
