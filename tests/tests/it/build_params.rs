//! Parameters from the shell: `ocelot build --env KEY=VALUE` (after the file's `env`, never
//! in a secret's place, recorded and shown by `ocelot status`), `--force` (past `branches`),
//! `--stage NAME` (that stage and the ones before it), and `ocelot rerun` keeping or
//! replacing them; the same checks through the API.

use crate::{queued_build_id, repo_with, status_json};
use ocelot_proto::v1 as pb;
use ocelot_tests::cluster::{CliOutput, Cluster};
use serde_json::json;
use tonic::metadata::MetadataValue;

const ENV_YML: &str = r#"image: ocelot/busybox
env: ["GREETING=from-file", "KEEP=file"]
stages:
  - name: show
    script:
      - echo "greeting=$GREETING keep=$KEEP extra=[$EXTRA]"
      - if [ "$API_TOKEN" = "mine" ]; then echo "param replaced the secret"; else echo "secret kept"; fi
  - name: own
    env: ["GREETING=from-stage"]
    script:
      - echo "stage greeting=$GREETING"
"#;

/// A secret the build gets as `API_TOKEN`.
const SECRET: &str = "s3cr3t-value-for-params";

fn assert_ok(output: &CliOutput, code: i32) {
    assert_eq!(output.code, code, "{}", output.both());
}

/// The build `id` as `ocelot status ID` prints it.
async fn status_human(cluster: &Cluster, id: &str) -> String {
    cluster.ocelot(&["status", id]).await.unwrap().stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_params_follow_the_files_env_are_recorded_and_rerun_keeps_or_replaces_them() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(&cluster, "params", ENV_YML, &[]).await;
    let added = cluster
        .ocelot_with_input(
            &["creds", "add", "env", "API_TOKEN", "-r", "params"],
            SECRET.as_bytes(),
        )
        .await
        .unwrap();
    assert_ok(&added, 0);

    let built = cluster
        .ocelot(&[
            "build",
            "-r",
            "params",
            "--env",
            "GREETING=from-shell",
            "--env",
            "EXTRA=a b=c",
            "--env",
            "API_TOKEN=mine",
        ])
        .await
        .unwrap();
    assert_ok(&built, 0);
    // after the file's env; a stage's own env still comes last
    assert!(
        built
            .stdout
            .contains("greeting=from-shell keep=file extra=[a b=c]"),
        "{}",
        built.both()
    );
    assert!(
        built.stdout.contains("stage greeting=from-stage"),
        "{}",
        built.both()
    );
    // a parameter never takes a secret's place, and the log says so
    assert!(built.stdout.contains("secret kept"), "{}", built.both());
    assert!(
        built.stdout.contains(
            "build parameter API_TOKEN not applied: a secret of that name takes its place"
        ),
        "{}",
        built.both()
    );
    assert!(
        built
            .stdout
            .contains("build parameters (--env): EXTRA, GREETING"),
        "{}",
        built.both()
    );

    let first = queued_build_id(&built);
    let status = status_json(&cluster, first).await;
    assert_eq!(
        status["env"],
        json!({"API_TOKEN": "mine", "EXTRA": "a b=c", "GREETING": "from-shell"}),
        "{status}"
    );
    assert_eq!(status["force"], json!(false));
    assert_eq!(status["stage"], json!(null));
    let human = status_human(&cluster, &first.to_string()).await;
    assert!(human.contains("  env      EXTRA=a b=c\n"), "{human}");
    assert!(
        human.contains("  env      GREETING=from-shell\n"),
        "{human}"
    );
    // the listing carries them too
    let listed = cluster.ocelot(&["status", "--json"]).await.unwrap();
    assert!(
        listed.stdout.contains(r#""GREETING":"from-shell""#),
        "{}",
        listed.both()
    );

    // a rerun without --env keeps the original's parameters
    let kept = cluster
        .ocelot(&["rerun", &first.to_string()])
        .await
        .unwrap();
    assert_ok(&kept, 0);
    assert!(
        kept.stdout
            .contains("greeting=from-shell keep=file extra=[a b=c]"),
        "{}",
        kept.both()
    );
    assert_eq!(
        status_json(&cluster, queued_build_id(&kept)).await["env"],
        status["env"]
    );

    // with --env, they are replaced (not merged)
    let replaced = cluster
        .ocelot(&["rerun", &first.to_string(), "--env", "GREETING=again"])
        .await
        .unwrap();
    assert_ok(&replaced, 0);
    assert!(
        replaced
            .stdout
            .contains("greeting=again keep=file extra=[]"),
        "{}",
        replaced.both()
    );
    assert_eq!(
        status_json(&cluster, queued_build_id(&replaced)).await["env"],
        json!({"GREETING": "again"})
    );

    // a plain build has none
    let plain = cluster.ocelot(&["build", "-r", "params"]).await.unwrap();
    assert_ok(&plain, 0);
    assert!(
        plain
            .stdout
            .contains("greeting=from-file keep=file extra=[]"),
        "{}",
        plain.both()
    );
    assert_eq!(
        status_json(&cluster, queued_build_id(&plain)).await["env"],
        json!({})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_env_params_are_refused_by_the_cli_and_the_api_and_nothing_is_queued() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(&cluster, "refused", ENV_YML, &[]).await;
    let cases: [(&[&str], &str); 5] = [
        (
            &["--env", "1BAD=x"],
            "`1BAD` is not an environment variable name",
        ),
        (&["--env", "NO_EQUALS"], "is not of the form KEY=VALUE"),
        (&["--env", "OCELOT_REPO=x"], "names starting with `OCELOT_`"),
        (
            &["--env", "GIT_BRANCH=x"],
            "Ocelot sets `GIT_BRANCH` itself",
        ),
        (&["--env", "A=1", "--env", "A=2"], "`A` is given twice"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["build", "-r", "refused"];
        args.extend_from_slice(flags);
        let output = cluster.ocelot(&args).await.unwrap();
        assert_ok(&output, 2);
        assert!(
            output.stderr.contains(message),
            "{flags:?}: {}",
            output.both()
        );
    }
    let long = format!("BIG={}", "x".repeat(4096));
    let output = cluster
        .ocelot(&["build", "-r", "refused", "--env", &long])
        .await
        .unwrap();
    assert_ok(&output, 2);
    assert!(
        output.stderr.contains("at most 4096 bytes"),
        "{}",
        output.both()
    );

    // the API checks them itself (the CLI is only one client)
    let channel = cluster.channel().await.unwrap();
    let mut client = pb::admin_client::AdminClient::new(channel);
    let bearer: MetadataValue<_> = format!("Bearer {}", cluster.token).parse().unwrap();
    for (name, message) in [
        ("OCELOT_TOKEN", "names starting with `OCELOT_`"),
        ("has space", "is not an environment variable name"),
    ] {
        let mut request = tonic::Request::new(pb::TriggerBuildRequest {
            repo: "refused".into(),
            env: vec![pb::EnvParam {
                name: name.into(),
                value: "x".into(),
            }],
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("authorization", bearer.clone());
        let status = client.trigger_build(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(message), "{status:?}");
    }
    let too_many = (0..65)
        .map(|i| pb::EnvParam {
            name: format!("P{i}"),
            value: "x".into(),
        })
        .collect();
    let mut request = tonic::Request::new(pb::TriggerBuildRequest {
        repo: "refused".into(),
        env: too_many,
        ..Default::default()
    });
    request.metadata_mut().insert("authorization", bearer);
    let status = client.trigger_build(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("at most 64"), "{status:?}");
    assert!(
        cluster.builds().await.unwrap().is_empty(),
        "a refused request queued a build"
    );
}

const FILTERED_YML: &str = r#"image: ocelot/busybox
branches: ["release/.*"]
stages:
  - name: build
    script: [echo "ran build"]
  - name: test
    script: [echo "ran test"]
  - name: deploy
    script: [echo "ran deploy"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_builds_past_branches_and_stage_runs_the_stage_and_those_before_it() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(&cluster, "filtered", FILTERED_YML, &[]).await;

    // without --force: skipped, as always
    let skipped = cluster
        .ocelot(&["build", "-r", "filtered", "-b", "main"])
        .await
        .unwrap();
    assert_ok(&skipped, 0);
    assert!(skipped.stderr.contains("SKIPPED"), "{}", skipped.both());
    assert!(!skipped.stdout.contains("ran build"), "{}", skipped.both());

    // with it: every stage runs, and the build says it was forced
    let forced = cluster
        .ocelot(&["build", "-r", "filtered", "-b", "main", "--force"])
        .await
        .unwrap();
    assert_ok(&forced, 0);
    for stage in ["ran build", "ran test", "ran deploy"] {
        assert!(forced.stdout.contains(stage), "{}", forced.both());
    }
    let forced_id = queued_build_id(&forced);
    let status = status_json(&cluster, forced_id).await;
    assert_eq!(status["state"], "passed", "{status}");
    assert_eq!(status["force"], json!(true));
    assert!(
        status_human(&cluster, &forced_id.to_string())
            .await
            .contains("  forced   built whatever `branches` in ocelot.yml says (--force)"),
    );

    // --stage test: build and test run, deploy is skipped saying why
    let staged = cluster
        .ocelot(&[
            "build", "-r", "filtered", "-b", "main", "--force", "--stage", "test",
        ])
        .await
        .unwrap();
    assert_ok(&staged, 0);
    assert!(staged.stdout.contains("ran build"), "{}", staged.both());
    assert!(staged.stdout.contains("ran test"), "{}", staged.both());
    assert!(!staged.stdout.contains("ran deploy"), "{}", staged.both());
    assert!(
        staged
            .stdout
            .contains("stage deploy skipped: not selected (--stage test)"),
        "{}",
        staged.both()
    );
    let staged_id = queued_build_id(&staged);
    let status = status_json(&cluster, staged_id).await;
    assert_eq!(status["stage"], json!("test"), "{status}");
    let states: Vec<&str> = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["passed", "passed", "skipped"], "{status}");
    assert!(
        status_human(&cluster, &staged_id.to_string())
            .await
            .contains("  stage    test and the stages it needs (--stage)")
    );

    // a rerun keeps --force and --stage; --stage on the rerun replaces the selection
    let rerun = cluster
        .ocelot(&["rerun", &staged_id.to_string()])
        .await
        .unwrap();
    assert_ok(&rerun, 0);
    assert!(rerun.stdout.contains("ran test"), "{}", rerun.both());
    assert!(!rerun.stdout.contains("ran deploy"), "{}", rerun.both());
    let rerun_status = status_json(&cluster, queued_build_id(&rerun)).await;
    assert_eq!(rerun_status["force"], json!(true));
    assert_eq!(rerun_status["stage"], json!("test"));
    let first_only = cluster
        .ocelot(&["rerun", &staged_id.to_string(), "--stage", "build"])
        .await
        .unwrap();
    assert_ok(&first_only, 0);
    assert!(
        first_only.stdout.contains("ran build"),
        "{}",
        first_only.both()
    );
    assert!(
        !first_only.stdout.contains("ran test"),
        "{}",
        first_only.both()
    );

    // a rerun of a skipped build with --force runs it
    let rerun_forced = cluster
        .ocelot(&["rerun", &queued_build_id(&skipped).to_string(), "--force"])
        .await
        .unwrap();
    assert_ok(&rerun_forced, 0);
    assert!(
        rerun_forced.stdout.contains("ran deploy"),
        "{}",
        rerun_forced.both()
    );

    // an unknown stage errors the build, naming the stages there are
    let unknown = cluster
        .ocelot(&[
            "build", "-r", "filtered", "-b", "main", "--force", "--stage", "tset",
        ])
        .await
        .unwrap();
    assert_ok(&unknown, 3);
    let status = status_json(&cluster, queued_build_id(&unknown)).await;
    assert_eq!(status["state"], "errored", "{status}");
    assert_eq!(
        status["reason"],
        "--stage `tset`: ocelot.yml has no stage of that name (did you mean `test`?); its stages are: build, test, deploy",
        "{status}"
    );
    assert!(!unknown.stdout.contains("ran build"), "{}", unknown.both());
}
