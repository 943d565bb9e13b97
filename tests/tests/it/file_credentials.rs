//! `file` credentials: written at their paths before the first stage (mode 0600, parent
//! directories 0700), every line masked in the log, removed before a stage's artifacts are
//! collected (so a pattern that matches one keeps nothing of it) and written again for the
//! next stage; withheld from a fork's pull request; on the host, owned by the build's uid
//! and only inside its home or workspace. Bad paths are refused when stored.

use crate::repo_with;
use ocelot_core::BuildState;
use ocelot_core::ids::BuildId;
use ocelot_core::model::{Build, PullRequestRef};
use ocelot_core::queue::{Bus, Setup};
use ocelot_core::store::NewBuild;
use ocelot_tests::cluster::{Cluster, WorkerSpec};
use ocelot_tests::nats::NatsUser;
use ocelot_tests::wait_until;
use ocelot_worker::ExecutorKind;
use std::time::Duration;

/// A kubeconfig: every line but the last is long enough to be masked alone.
const KUBECONFIG: &str = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://k8s.internal.example:6443\n  name: prod-7f3a\nusers:\n- name: deployer-9c2e\n  user:\n    token: kube-token-0d1e2f3a4b5c6d7e\n}\n";
const SETTINGS: &str = "<settings><password>maven-pass-77aa88bb</password></settings>\n";

const DOCKER_YML: &str = r#"image: ocelot/busybox
stages:
  - name: use
    script:
      - cat ~/.kube/config
      - echo "home-mode $(stat -c %a ~/.kube/config) dir-mode $(stat -c %a ~/.kube)"
      - echo "ws-mode $(stat -c %a conf/settings.xml)"
      - cat conf/settings.xml
      - echo not-secret > conf/other.txt
    artifacts:
      paths: ["conf/*"]
  - name: again
    script:
      - test -f ~/.kube/config && test -f conf/settings.xml && echo "written again"
      - grep -c deployer ~/.kube/config
"#;

/// The lines of a value that the log must not show (the masker skips shorter ones).
fn maskable_lines(value: &str) -> Vec<&str> {
    value
        .lines()
        .map(str::trim)
        .filter(|l| l.chars().count() >= ocelot_core::secrets::mask::MIN_SECRET_LEN)
        .collect()
}

async fn log_of(cluster: &Cluster, build: &Build) -> String {
    let lines = cluster.store.lines(build.id, build.attempt).await.unwrap();
    lines.iter().map(|l| format!("{}\n", l.text)).collect()
}

async fn final_build(cluster: &Cluster, id: BuildId) -> Build {
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

async fn add_file(cluster: &Cluster, name: &str, repo: &str, path: &str, value: &str) {
    let added = cluster
        .ocelot_with_input(
            &["creds", "add", "file", name, "-r", repo, "--path", path],
            value.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(added.code, 0, "{}", added.both());
}

/// Queues a pull-request build of `repo`'s head as the hookhandler would, and waits for it.
async fn pull_request_build(
    cluster: &Cluster,
    repo: &ocelot_tests::git::TestRepo,
    repo_name: &str,
    from_fork: bool,
) -> Build {
    let repo_id = cluster.store.find_repo(repo_name).await.unwrap().id;
    let bus = Bus::connect(
        &cluster.nats.args(NatsUser::Hookhandler),
        Setup::PublishOnly,
    )
    .await
    .unwrap();
    let inserted = cluster
        .store
        .insert_build(&NewBuild {
            repo_id,
            commit: repo.head().unwrap(),
            branch: "pull/5".into(),
            trigger: "pull_request".into(),
            tag: "default".into(),
            state: BuildState::Queued,
            reason: None,
            previous_commit: None,
            pull_request: Some(PullRequestRef {
                number: 5,
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
    final_build(cluster, inserted.build.id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_credential_is_private_masked_kept_out_of_artifacts_and_withheld_from_forks() {
    let cluster = Cluster::start().await.unwrap();
    let repo = repo_with(&cluster, "kube", DOCKER_YML, &[]).await;

    // bad paths, a missing path, a path on another kind: refused, saying why
    for (args, said) in [
        (vec!["--path", "../outside"], "`..`"),
        (vec!["--path", "~/.kube/"], "ends with `/`"),
        (vec![], "--path"),
    ] {
        let mut command = vec!["creds", "add", "file", "bad", "-r", "kube"];
        command.extend(args);
        let refused = cluster
            .ocelot_with_input(&command, KUBECONFIG.as_bytes())
            .await
            .unwrap();
        assert_ne!(refused.code, 0, "{}", refused.both());
        assert!(refused.stderr.contains(said), "{}", refused.both());
    }
    let on_env = cluster
        .ocelot_with_input(
            &["creds", "add", "env", "TOKEN", "-r", "kube", "--path", "x"],
            b"value-1234",
        )
        .await
        .unwrap();
    assert!(on_env.stderr.contains("has no path"), "{}", on_env.both());

    add_file(&cluster, "kubeconfig", "kube", "~/.kube/config", KUBECONFIG).await;
    let settings_file = cluster.dir.path().join("settings.xml");
    std::fs::write(&settings_file, SETTINGS).unwrap();
    let added = cluster
        .ocelot(&[
            "creds",
            "add",
            "file",
            "settings",
            "-r",
            "kube",
            "--path",
            "./conf/settings.xml",
            "--from-file",
            settings_file.to_str().unwrap(),
        ])
        .await
        .unwrap();
    assert_eq!(added.code, 0, "{}", added.both());
    let listed = cluster.ocelot(&["creds", "list"]).await.unwrap();
    assert!(
        listed.stdout.contains("path ~/.kube/config")
            && listed.stdout.contains("path ./conf/settings.xml"),
        "{}",
        listed.both()
    );
    assert!(!listed.stdout.contains("deployer"), "{}", listed.both());

    let built = cluster.ocelot(&["build", "-r", "kube"]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    let out = &built.stdout;
    assert!(
        out.contains("secrets in files: ~/.kube/config, conf/settings.xml"),
        "{}",
        built.both()
    );
    assert!(
        out.contains("home-mode 600 dir-mode 700"),
        "{}",
        built.both()
    );
    assert!(out.contains("ws-mode 600"), "{}", built.both());
    assert!(out.contains("written again"), "{}", built.both());
    let build = cluster.builds().await.unwrap().remove(0);
    let stored = log_of(&cluster, &build).await;
    for text in [out.as_str(), built.stderr.as_str(), stored.as_str()] {
        for line in maskable_lines(KUBECONFIG)
            .into_iter()
            .chain(maskable_lines(SETTINGS))
        {
            assert!(!text.contains(line), "`{line}` leaked:\n{text}");
        }
    }
    // the kubeconfig's 9 maskable lines, each one `***`; its short `}` as it is
    let masked = out.lines().filter(|l| *l == "***").count();
    assert!(masked >= 10, "{masked} masked lines:\n{out}");
    assert!(out.lines().any(|l| l == "}"), "{out}");

    // the stage's pattern matched the credential's file: it was removed before, not kept
    let kept: Vec<String> = cluster
        .store
        .artifacts(build.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.path)
        .collect();
    assert_eq!(kept, vec!["conf/other.txt".to_string()], "{stored}");

    // a fork's pull request gets no file; a pull request from the repo itself does
    let fork = pull_request_build(&cluster, &repo, "kube", true).await;
    let fork_log = log_of(&cluster, &fork).await;
    assert_eq!(fork.state, BuildState::Failed, "{fork_log}");
    assert!(fork_log.contains("build secrets withheld"), "{fork_log}");
    assert!(!fork_log.contains("secrets in files"), "{fork_log}");
    assert!(
        fork_log.contains("can't open '/root/.kube/config'"),
        "{fork_log}"
    );
    let own = pull_request_build(&cluster, &repo, "kube", false).await;
    let own_log = log_of(&cluster, &own).await;
    assert_eq!(own.state, BuildState::Passed, "{own_log}");
    assert!(own_log.contains("secrets in files"), "{own_log}");
}

const HOST_YML: &str = r#"machineTag: bare
stages:
  - name: host
    script:
      - cat ~/.kube/config
      - echo "mode $(stat -c %a ~/.kube/config) $(stat -c %a conf/settings.xml)"
      - test "$(stat -c %u ~/.kube/config)" = "$(id -u)" && echo "owned by the build"
      - echo not-secret > conf/other.txt
    artifacts:
      paths: ["conf/*"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_host_files_belong_to_the_build_and_stay_in_its_home_or_workspace() {
    let cluster = Cluster::start_with(vec![
        WorkerSpec::default(),
        WorkerSpec {
            tags: vec!["bare".into()],
            executor: ExecutorKind::Host,
            ..WorkerSpec::default()
        },
    ])
    .await
    .unwrap();
    repo_with(&cluster, "native", HOST_YML, &[]).await;
    let allowed = cluster
        .ocelot(&["repos", "set", "native", "--allow-host", "true"])
        .await
        .unwrap();
    assert_eq!(allowed.code, 0, "{}", allowed.both());
    add_file(
        &cluster,
        "kubeconfig",
        "native",
        "~/.kube/config",
        KUBECONFIG,
    )
    .await;
    add_file(
        &cluster,
        "settings",
        "native",
        "conf/settings.xml",
        SETTINGS,
    )
    .await;

    let built = cluster.ocelot(&["build", "-r", "native"]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    assert!(built.stdout.contains("mode 600 600"), "{}", built.both());
    assert!(
        built.stdout.contains("owned by the build"),
        "{}",
        built.both()
    );
    for line in maskable_lines(KUBECONFIG) {
        assert!(!built.stdout.contains(line), "`{line}` leaked");
    }
    let build = cluster.builds().await.unwrap().remove(0);
    let kept: Vec<String> = cluster
        .store
        .artifacts(build.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.path)
        .collect();
    assert_eq!(kept, vec!["conf/other.txt".to_string()]);

    // an absolute path outside the build's home and workspace: the build errors, saying so
    add_file(
        &cluster,
        "system",
        "native",
        "/etc/ocelot-test.pem",
        SETTINGS,
    )
    .await;
    let refused = cluster.ocelot(&["build", "-r", "native"]).await.unwrap();
    assert_eq!(refused.code, 3, "{}", refused.both());
    assert!(
        refused.stdout.contains("only in its home"),
        "{}",
        refused.both()
    );
    assert!(!std::path::Path::new("/etc/ocelot-test.pem").exists());
}
