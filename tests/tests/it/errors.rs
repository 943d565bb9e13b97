//! Bad input gets a clear error and an exit code: malformed ocelot.yml, missing image,
//! unreachable repo or admin, unknown repo, offline validation.

use crate::{queued_build_id, repo_with, status_json};
use ocelot_tests::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_ocelot_yml_errors_the_build_naming_line_and_field() {
    let cluster = Cluster::start().await.unwrap();
    let yml = "image: ocelot/busybox\nstages:\n  - name: build\n    scrpt:\n      - echo hi\n";
    repo_with(&cluster, "malformed", yml, &[]).await;
    let output = cluster.ocelot(&["build", "-r", "malformed"]).await.unwrap();
    assert_eq!(output.code, 3, "{}", output.both());
    assert!(output.stdout.contains("line 4"), "{}", output.both());
    assert!(output.stdout.contains("scrpt"), "{}", output.both());
    assert!(
        output.stdout.contains("did you mean `script`"),
        "{}",
        output.both()
    );
    let build_id = queued_build_id(&output);
    let status = status_json(&cluster, build_id).await;
    assert_eq!(status["state"], "errored");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("line 4") && reason.contains("scrpt"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_errors_the_build_saying_how_to_provide_it() {
    let cluster = Cluster::start().await.unwrap();
    // a registry on a closed loopback port: the pull fails at once, without leaving the host
    let image = "127.0.0.1:1/ocelot-test/missing:never";
    let yml = format!("image: {image}\nstages:\n  - name: s\n    script: [echo no]\n");
    repo_with(&cluster, "noimage", &yml, &[]).await;
    let output = cluster.ocelot(&["build", "-r", "noimage"]).await.unwrap();
    assert_eq!(output.code, 3, "{}", output.both());
    let build_id = queued_build_id(&output);
    let status = status_json(&cluster, build_id).await;
    assert_eq!(status["state"], "errored");
    let reason = status["reason"].as_str().unwrap();
    assert!(reason.contains(image), "{reason}");
    assert!(
        reason.contains("could not be pulled") && reason.contains("docker"),
        "{reason}"
    );
    assert!(output.stderr.contains(image), "{}", output.both());
    cluster.wait_containers_gone(build_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_repo_is_refused_with_a_clear_message() {
    let cluster = Cluster::start().await.unwrap();
    let port = ocelot_tests::free_port().unwrap();
    cluster
        .add_repo("gone", &format!("git://127.0.0.1:{port}/gone.git"))
        .await
        .unwrap();
    let output = cluster
        .ocelot(&["build", "-r", "gone", "-b", "main"])
        .await
        .unwrap();
    assert_eq!(output.code, 6, "{}", output.both());
    assert!(
        output.stderr.contains("cannot reach repository"),
        "{}",
        output.both()
    );
    let unknown = cluster
        .ocelot(&["build", "-r", "nobody", "-b", "main"])
        .await
        .unwrap();
    assert_eq!(unknown.code, 6, "{}", unknown.both());
    assert!(
        unknown.stderr.contains("repo `nobody` not found"),
        "{}",
        unknown.both()
    );
    let listed = cluster.ocelot(&["status", "--json"]).await.unwrap();
    assert_eq!(
        listed.stdout.trim(),
        "[]",
        "a refused trigger must create no build"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_that_does_not_exist_is_refused() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(
        &cluster,
        "branches",
        "image: ocelot/busybox\nstages:\n  - name: s\n    script: [echo]\n",
        &[],
    )
    .await;
    let output = cluster
        .ocelot(&["build", "-r", "branches", "-b", "nope"])
        .await
        .unwrap();
    assert_eq!(output.code, 6, "{}", output.both());
    assert!(
        output.stderr.contains("branch `nope` not found"),
        "{}",
        output.both()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_admin_exits_5_with_a_hint() {
    let port = ocelot_tests::free_port().unwrap();
    let output =
        tokio::process::Command::new(ocelot_tests::cluster::bin_dir().unwrap().join("ocelot"))
            .args(["--admin", &format!("http://127.0.0.1:{port}"), "status"])
            .output()
            .await
            .unwrap();
    assert_eq!(output.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the Ocelot admin"), "{stderr}");
    assert!(stderr.contains("OCELOT_ADMIN"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_works_offline_and_reports_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ocelot.yml");
    std::fs::write(
        &file,
        "imag: x\nbranches: ['(']\nstages:\n  - name: a\n    script: []\n  - name: b\n    timeout: soon\n    script: [ok]\n",
    )
    .unwrap();
    let bin = ocelot_tests::cluster::bin_dir().unwrap().join("ocelot");
    let output = tokio::process::Command::new(&bin)
        .args(["--admin", "http://127.0.0.1:1", "validate"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for wanted in [
        "line 1",
        "imag",
        "did you mean `image`",
        "line 2",
        "line 5",
        "script",
        "line 7",
        "timeout",
    ] {
        assert!(
            stdout.contains(wanted),
            "`{wanted}` missing from:\n{stdout}"
        );
    }
    std::fs::write(
        &file,
        "image: x\nstages:\n  - name: a\n    script: [make]\n",
    )
    .unwrap();
    let good = tokio::process::Command::new(&bin)
        .arg("validate")
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert_eq!(good.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_outside_the_branches_filter_is_skipped_without_running() {
    let cluster = Cluster::start().await.unwrap();
    let yml = "image: ocelot/busybox\nbranches: [release/.*]\nstages:\n  - name: s\n    script: [echo must not run]\n";
    repo_with(&cluster, "filtered", yml, &[]).await;
    let output = cluster
        .ocelot(&["build", "-r", "filtered", "-b", "main"])
        .await
        .unwrap();
    assert_eq!(output.code, 0, "{}", output.both());
    assert!(output.stderr.contains("SKIPPED"), "{}", output.both());
    assert!(!output.stdout.contains("must not run"));
    let status = status_json(&cluster, queued_build_id(&output)).await;
    assert_eq!(status["state"], "skipped");
}
