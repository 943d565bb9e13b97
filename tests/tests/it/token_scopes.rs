//! API tokens limited to some repos (`ocelot token create --repos 'team/*'`): such a token
//! lists only its repos' builds, repos, polls and credentials, and every RPC that names a
//! repo or a build outside them gets exactly the answer of one that does not exist (so it
//! cannot even learn that they exist). Every RPC of the proto is in the table below, with
//! the attack it must withstand; within its repos the token works as before.

use crate::queued_build_id;
use ocelot_tests::cluster::{CliOutput, Cluster};
use std::collections::BTreeSet;

const YML: &str = "image: ocelot/busybox
stages:
  - name: s
    script: [echo scoped]
";

/// A repo (and a build id) that exists nowhere, for "the same answer as a missing one".
const MISSING_REPO: &str = "nosuch/app";
const MISSING_BUILD: &str = "987654";

/// What a limited token gets from an RPC about something outside its repos.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The very answer (exit code and message) of the same call about something missing.
    LikeMissing,
    /// Refused with exit 7 and this text in the message.
    Refused(&'static str),
    /// Answered (exit 0), without a word about `other/app` or its build.
    Filtered,
    /// Answered: the RPC is about no repo.
    Independent,
    /// Answered (about no repo) with this on stdout: for a command that exits 0 even when
    /// its call is refused (`ocelot version`).
    Answers(&'static str),
}

/// One RPC: its name in the proto, the `ocelot` command that calls it about `other/app` (or
/// its build `{other}`), the input on stdin, and what must happen.
struct Case {
    rpc: &'static str,
    args: &'static [&'static str],
    input: Option<&'static str>,
    expect: Expect,
}

const CASES: &[Case] = &[
    Case {
        rpc: "TriggerBuild",
        args: &["build", "-r", "other/app", "--no-follow"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "WatchBuild",
        args: &["watch", "{other}"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "GetBuild",
        args: &["status", "{other}"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "CancelBuild",
        args: &["kill", "{other}"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "RerunBuild",
        args: &["rerun", "{other}", "--no-follow"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "ListArtifacts",
        args: &["artifacts", "{other}"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "GetArtifact",
        args: &["artifacts", "get", "{other}", "out/app"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "ListCaches",
        args: &["cache", "list", "-r", "other/app"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "ClearCaches",
        args: &["cache", "clear", "-r", "other/app"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "ListBuilds",
        args: &["status", "--json", "--limit", "100"],
        input: None,
        expect: Expect::Filtered,
    },
    Case {
        rpc: "AddRepo",
        args: &["repos", "add", "other/new", "git://127.0.0.1:1/new.git"],
        input: None,
        expect: Expect::Refused("is not one of them"),
    },
    Case {
        rpc: "ListRepos",
        args: &["repos", "list", "--json"],
        input: None,
        expect: Expect::Filtered,
    },
    Case {
        rpc: "RemoveRepo",
        args: &["repos", "remove", "other/app"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "HookRepo",
        args: &[
            "repos",
            "hook",
            "other/app",
            "--hooks-url",
            "https://hooks.example",
        ],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "SetRepoOptions",
        args: &["repos", "set", "other/app", "--secrets-for-forks", "true"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "AddPoll",
        args: &["poll", "add", "-r", "other/app", "--every", "1h"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "ListPolls",
        args: &["poll", "list", "--json"],
        input: None,
        expect: Expect::Filtered,
    },
    Case {
        rpc: "RemovePoll",
        args: &["poll", "remove", "-r", "other/app"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "ListWorkers",
        args: &["workers", "--json"],
        input: None,
        expect: Expect::Independent,
    },
    Case {
        rpc: "GetServerInfo",
        args: &["version", "--json"],
        input: None,
        expect: Expect::Answers(r#""server":{"#),
    },
    Case {
        rpc: "AddCredential",
        args: &["creds", "add", "env", "STOLEN", "-r", "other/app"],
        input: Some("planted-value-1234"),
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "ListCredentials",
        args: &["creds", "list", "--json"],
        input: None,
        expect: Expect::Filtered,
    },
    Case {
        rpc: "RemoveCredential",
        args: &["creds", "remove", "env", "OTHER_SECRET", "-r", "other/app"],
        input: None,
        expect: Expect::LikeMissing,
    },
    Case {
        rpc: "CreateToken",
        args: &["token", "create", "--name", "escalated", "--scope", "admin"],
        input: None,
        expect: Expect::Refused("needs a token for every repo"),
    },
    Case {
        rpc: "ListTokens",
        args: &["token", "list"],
        input: None,
        expect: Expect::Refused("needs a token for every repo"),
    },
    Case {
        rpc: "RevokeToken",
        args: &["token", "revoke", "test-admin"],
        input: None,
        expect: Expect::Refused("needs a token for every repo"),
    },
];

/// The RPCs the proto declares.
fn proto_rpcs() -> BTreeSet<String> {
    include_str!("../../../proto/proto/ocelot/v1/admin.proto")
        .lines()
        .filter_map(|line| line.trim().strip_prefix("rpc "))
        .filter_map(|rest| rest.split('(').next())
        .map(|name| name.trim().to_string())
        .collect()
}

/// Runs `ocelot ARGS` with `token` (and `input` as the value of `--from-file`).
async fn run(cluster: &Cluster, token: &str, args: &[String], input: Option<&str>) -> CliOutput {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match input {
        None => cluster.ocelot_with_token(token, &args).await.unwrap(),
        Some(input) => {
            // `ocelot_with_input` uses the cluster's token: swap it through --from-file
            let file = cluster.dir.path().join("input-value");
            std::fs::write(&file, input).unwrap();
            let mut with_file = args.clone();
            let path = file.display().to_string();
            with_file.extend(["--from-file", path.as_str()]);
            cluster.ocelot_with_token(token, &with_file).await.unwrap()
        }
    }
}

/// `args` about `repo` (for `other/app`) and `build` (for `{other}`).
fn substitute(args: &[&str], repo: &str, build: &str) -> Vec<String> {
    args.iter()
        .map(|arg| arg.replace("{other}", build).replace("other/app", repo))
        .collect()
}

/// Builds `name` (a registered repo) with the cluster's admin token; its build id.
async fn build_passes(cluster: &Cluster, name: &str) -> String {
    let built = cluster.ocelot(&["build", "-r", name]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    queued_build_id(&built).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_limited_to_team_repos_sees_and_touches_nothing_else() {
    let cluster = Cluster::start().await.unwrap();
    for (git_name, name) in [
        ("team-app", "team/app"),
        ("team-lib", "team/lib"),
        ("other-app", "other/app"),
    ] {
        let repo = cluster
            .git
            .create_repo(git_name, &[("ocelot.yml", YML)])
            .unwrap();
        cluster.add_repo(name, &repo.url).await.unwrap();
    }
    let team_build = build_passes(&cluster, "team/app").await;
    build_passes(&cluster, "team/lib").await;
    let other_build = build_passes(&cluster, "other/app").await;
    // things of other/app a limited token must neither see nor change
    for args in [
        vec!["poll", "add", "-r", "other/app", "--every", "1h"],
        vec!["poll", "add", "-r", "team/lib", "--every", "1h"],
    ] {
        let done = cluster.ocelot(&args).await.unwrap();
        assert_eq!(done.code, 0, "{args:?}: {}", done.both());
    }
    for (name, repo) in [("OTHER_SECRET", "other/app"), ("TEAM_SECRET", "team/lib")] {
        let done = cluster
            .ocelot_with_input(
                &["creds", "add", "env", name, "-r", repo],
                b"value-of-a-secret",
            )
            .await
            .unwrap();
        assert_eq!(done.code, 0, "{}", done.both());
    }

    // an admin makes limited tokens; `token list` shows their repos
    let mut tokens = Vec::new();
    for (name, scope) in [("team-admin", "admin"), ("team-ci", "trigger")] {
        let created = cluster
            .ocelot(&[
                "token", "create", "--name", name, "--scope", scope, "--repos", "team/*",
            ])
            .await
            .unwrap();
        assert_eq!(created.code, 0, "{}", created.both());
        tokens.push(created.stdout.trim().to_string());
    }
    let (team_admin, team_ci) = (tokens[0].clone(), tokens[1].clone());
    let listed = cluster.ocelot(&["token", "list", "--json"]).await.unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let team = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "team-ci")
        .unwrap();
    assert_eq!(team["repos"], serde_json::json!(["team/*"]), "{listed}");
    let all = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "test-admin")
        .unwrap();
    assert_eq!(all["repos"], serde_json::json!([]), "{listed}");
    let human = cluster.ocelot(&["token", "list"]).await.unwrap();
    assert!(human.stdout.contains("team/*"), "{}", human.both());
    let bad = cluster
        .ocelot(&["token", "create", "--name", "broken", "--repos", "team/["])
        .await
        .unwrap();
    assert_eq!(bad.code, 6, "{}", bad.both());
    assert!(bad.stderr.contains("not a glob pattern"), "{}", bad.both());

    // the trigger token: only team builds are listed; the other repo's build answers as a
    // build that does not exist, for every verb
    let status = cluster
        .ocelot_with_token(&team_ci, &["status", "--json", "--limit", "100"])
        .await
        .unwrap();
    assert_eq!(status.code, 0, "{}", status.both());
    assert!(
        status.stdout.contains("team/app") && status.stdout.contains("team/lib"),
        "{}",
        status.both()
    );
    assert!(!status.stdout.contains("other/app"), "{}", status.both());
    for verb in [
        vec!["status", "{other}"],
        vec!["watch", "{other}"],
        vec!["kill", "{other}"],
        vec!["rerun", "{other}", "--no-follow"],
        vec!["build", "-r", "other/app", "--no-follow"],
        vec!["status", "-r", "other/app"],
    ] {
        let hidden = run(
            &cluster,
            &team_ci,
            &substitute(&verb, "other/app", &other_build),
            None,
        )
        .await;
        let missing = run(
            &cluster,
            &team_ci,
            &substitute(&verb, MISSING_REPO, MISSING_BUILD),
            None,
        )
        .await;
        assert_ne!(hidden.code, 0, "{verb:?}: {}", hidden.both());
        assert_eq!(
            hidden.code,
            missing.code,
            "{verb:?}: {}\n{}",
            hidden.both(),
            missing.both()
        );
        assert_eq!(
            hidden
                .stderr
                .replace(&other_build, MISSING_BUILD)
                .replace("other/app", MISSING_REPO),
            missing.stderr,
            "{verb:?}"
        );
    }
    // within its repos it works as any trigger token
    let within = cluster
        .ocelot_with_token(&team_ci, &["status", &team_build, "--json"])
        .await
        .unwrap();
    assert_eq!(within.code, 0, "{}", within.both());
    let rerun = cluster
        .ocelot_with_token(&team_ci, &["rerun", &team_build])
        .await
        .unwrap();
    assert_eq!(rerun.code, 0, "{}", rerun.both());
    assert!(rerun.stdout.contains("scoped"), "{}", rerun.both());
    let built = cluster
        .ocelot_with_token(&team_ci, &["build", "-r", "team/lib"])
        .await
        .unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    let watched = cluster
        .ocelot_with_token(&team_ci, &["watch", &team_build])
        .await
        .unwrap();
    assert_eq!(watched.code, 0, "{}", watched.both());

    // every RPC of the proto is in the table, and each withstands its attack
    let table: BTreeSet<String> = CASES.iter().map(|c| c.rpc.to_string()).collect();
    assert_eq!(
        table,
        proto_rpcs(),
        "an RPC without a repo-scope case (add it to CASES)"
    );
    for case in CASES {
        let hidden = run(
            &cluster,
            &team_admin,
            &substitute(case.args, "other/app", &other_build),
            case.input,
        )
        .await;
        match case.expect {
            Expect::LikeMissing => {
                let missing = run(
                    &cluster,
                    &team_admin,
                    &substitute(case.args, MISSING_REPO, MISSING_BUILD),
                    case.input,
                )
                .await;
                assert_ne!(hidden.code, 0, "{}: {}", case.rpc, hidden.both());
                assert_eq!(
                    hidden.code,
                    missing.code,
                    "{}: {}\n{}",
                    case.rpc,
                    hidden.both(),
                    missing.both()
                );
                assert_eq!(
                    hidden
                        .stderr
                        .replace(&other_build, MISSING_BUILD)
                        .replace("other/app", MISSING_REPO),
                    missing.stderr,
                    "{}",
                    case.rpc
                );
            }
            Expect::Refused(text) => {
                assert_eq!(hidden.code, 7, "{}: {}", case.rpc, hidden.both());
                assert!(
                    hidden.stderr.contains(text),
                    "{}: {}",
                    case.rpc,
                    hidden.both()
                );
            }
            Expect::Filtered => {
                assert_eq!(hidden.code, 0, "{}: {}", case.rpc, hidden.both());
                assert!(
                    !hidden.stdout.contains("other/app"),
                    "{}: {}",
                    case.rpc,
                    hidden.both()
                );
                assert!(
                    !hidden.stdout.contains("OTHER_SECRET"),
                    "{}: {}",
                    case.rpc,
                    hidden.both()
                );
                assert!(
                    hidden.stdout.contains("team/"),
                    "{}: {}",
                    case.rpc,
                    hidden.both()
                );
            }
            Expect::Independent => {
                assert_eq!(hidden.code, 0, "{}: {}", case.rpc, hidden.both());
            }
            Expect::Answers(text) => {
                assert_eq!(hidden.code, 0, "{}: {}", case.rpc, hidden.both());
                assert!(
                    hidden.stdout.contains(text),
                    "{}: {}",
                    case.rpc,
                    hidden.both()
                );
            }
        }
    }
    // a credential for a prefix may cover repos outside the token's: refused
    let prefix = run(
        &cluster,
        &team_admin,
        &substitute(
            &["creds", "add", "env", "WIDE", "--prefix", "team/"],
            "",
            "",
        ),
        Some("value-of-a-secret"),
    )
    .await;
    assert_eq!(prefix.code, 7, "{}", prefix.both());
    assert!(
        prefix.stderr.contains("need a token for every repo"),
        "{}",
        prefix.both()
    );

    // nothing of other/app changed: its repo, build, poll and credential are all there
    let repos = cluster.ocelot(&["repos", "list", "--json"]).await.unwrap();
    assert!(
        repos.stdout.contains("other/app") && !repos.stdout.contains("other/new"),
        "{}",
        repos.both()
    );
    let build = crate::status_json(&cluster, other_build.parse().unwrap()).await;
    assert_eq!(build["state"], "passed", "{build}");
    let polls = cluster.ocelot(&["poll", "list", "--json"]).await.unwrap();
    assert!(polls.stdout.contains("other/app"), "{}", polls.both());
    let creds = cluster.ocelot(&["creds", "list", "--json"]).await.unwrap();
    assert!(
        creds.stdout.contains("OTHER_SECRET") && !creds.stdout.contains("STOLEN"),
        "{}",
        creds.both()
    );
    let tokens = cluster.ocelot(&["token", "list", "--json"]).await.unwrap();
    assert!(!tokens.stdout.contains("escalated"), "{}", tokens.both());
    let still = cluster.ocelot(&["status"]).await.unwrap();
    assert_eq!(still.code, 0, "{}", still.both());

    // and the limited admin token still manages its own repos
    for args in [
        vec!["repos", "set", "team/app", "--secrets-for-forks", "true"],
        vec!["poll", "add", "-r", "team/app", "--every", "1h"],
        vec!["poll", "remove", "-r", "team/lib"],
        vec!["creds", "remove", "env", "TEAM_SECRET", "-r", "team/lib"],
        vec!["repos", "add", "team/new", "git://127.0.0.1:1/new.git"],
    ] {
        let done = cluster.ocelot_with_token(&team_admin, &args).await.unwrap();
        assert_eq!(done.code, 0, "{args:?}: {}", done.both());
    }
}
