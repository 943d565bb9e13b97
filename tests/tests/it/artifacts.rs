//! Artifacts, on both storage backends (a local directory, and moto's S3 server): a build
//! makes a binary (over one multipart part) and a report; a later stage sees them in the
//! workspace; `ocelot artifacts` lists them and `ocelot artifacts get` fetches both
//! byte-identical into a fresh directory; a symlink out of the workspace and a file past the
//! build's size limit are refused with log lines while the build passes; a crafted `../`
//! name is never written outside the target directory; expiry removes the objects.

use crate::repo_with;
use ocelot_core::storage::{Storage, StorageArgs};
use ocelot_core::store::NewArtifact;
use ocelot_tests::cluster::{Cluster, ClusterSpec, WorkerSpec};
use ocelot_tests::s3::S3Server;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

const ARTIFACTS_YML: &str = r#"image: ocelot/busybox
stages:
  - name: build
    script:
      - mkdir -p out reports
      - head -c 10000000 /dev/urandom > out/app
      - chmod +x out/app
      - echo "app-sha256 $(sha256sum out/app)"
      - printf '<testsuite tests="3" failures="0"/>\n' > reports/unit.xml
      - ln -s /etc/passwd out/passwd-link
    artifacts:
      paths: [out/app, "reports/*.xml", out/passwd-link, "missing/*.txt"]
      expire_in: 1h
  - name: test
    script:
      - test -x out/app
      - cat reports/unit.xml
  - name: package
    script:
      - head -c 3000000 /dev/zero > out/big.bin
    artifacts:
      paths: [out/big.bin]
"#;

const REPORT: &str = "<testsuite tests=\"3\" failures=\"0\"/>\n";

fn sha256_file(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

async fn artifacts_round_trip(storage: Option<StorageArgs>) {
    let cluster = Cluster::start_spec(ClusterSpec {
        workers: vec![WorkerSpec {
            artifacts: ocelot_worker::ArtifactLimits {
                max_mib: 12,
                ..ocelot_worker::ArtifactLimits::default()
            },
            ..WorkerSpec::default()
        }],
        storage,
        ..ClusterSpec::default()
    })
    .await
    .unwrap();
    repo_with(&cluster, "maker", ARTIFACTS_YML, &[]).await;
    let built = cluster.ocelot(&["build", "-r", "maker"]).await.unwrap();
    // the refused artifacts leave the result as it is
    assert_eq!(built.code, 0, "{}", built.both());
    let build = cluster.builds().await.unwrap().remove(0);
    let id = build.id.to_string();
    let lines: Vec<String> = cluster
        .store
        .lines(build.id, build.attempt)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(
        has(
            "artifact `out/passwd-link` refused: a symlink to `/etc/passwd`, outside the workspace"
        ),
        "{lines:#?}"
    );
    assert!(
        has("artifact `out/big.bin` refused:") && has("--max-artifact-mib"),
        "{lines:#?}"
    );
    assert!(
        has("artifacts: `missing/*.txt` matched no file"),
        "{lines:#?}"
    );
    // kept where the cluster's storage is (the directory, or the S3 bucket)
    let location = cluster.storage.location().unwrap().to_string();
    assert!(
        has(&format!("artifacts: 2 kept (9.5 MiB) in {location}")),
        "{location}: {lines:#?}"
    );
    if std::env::var_os("OCELOT_TEST_SHOW_LOG").is_some() {
        eprintln!("{}", lines.join("\n"));
    }
    let app_sha = lines
        .iter()
        .find_map(|l| l.strip_prefix("app-sha256 "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the build printed the binary's SHA-256")
        .to_string();

    // listed: name, size, SHA-256, stage
    let listed = cluster.ocelot(&["artifacts", &id, "--json"]).await.unwrap();
    assert_eq!(listed.code, 0, "{}", listed.both());
    let list: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let list = list.as_array().unwrap();
    let paths: Vec<&str> = list.iter().map(|a| a["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["out/app", "reports/unit.xml"], "{}", listed.stdout);
    assert_eq!(list[0]["size"], 10_000_000);
    assert_eq!(list[0]["sha256"], app_sha.as_str());
    assert_eq!(list[0]["stage"], "build");
    assert_eq!(list[1]["size"], REPORT.len());
    let table = cluster.ocelot(&["artifacts", &id]).await.unwrap();
    assert!(
        table.stdout.contains("reports/unit.xml"),
        "{}",
        table.both()
    );

    // fetched byte-identical into a fresh directory
    let fresh = tempfile::tempdir().unwrap();
    let target = fresh.path().join("fetched");
    let got = cluster
        .ocelot(&["artifacts", "get", &id, "-o", target.to_str().unwrap()])
        .await
        .unwrap();
    assert_eq!(got.code, 0, "{}", got.both());
    assert_eq!(sha256_file(&target.join("out/app")), app_sha);
    assert_eq!(
        std::fs::read_to_string(target.join("reports/unit.xml")).unwrap(),
        REPORT
    );
    // one by name
    let one = fresh.path().join("one");
    let got = cluster
        .ocelot(&[
            "artifacts",
            "get",
            &id,
            "reports/unit.xml",
            "-o",
            one.to_str().unwrap(),
            "--json",
        ])
        .await
        .unwrap();
    assert_eq!(got.code, 0, "{}", got.both());
    assert!(one.join("reports/unit.xml").is_file());
    assert!(!one.join("out").exists());

    // a crafted `../` name (as a tampered row would say) is refused, never written outside
    let storage = Storage::open(&cluster.storage).unwrap();
    let key = format!("artifacts/{id}/crafted");
    let mut writer = storage.writer(&key);
    writer.write(b"escaped").await.unwrap();
    let stored = writer.finish().await.unwrap();
    cluster
        .store
        .record_artifact(&NewArtifact {
            build_id: build.id,
            attempt: build.attempt,
            stage: "build",
            path: "../escaped.txt",
            size: stored.size,
            sha256: &stored.sha256,
            object_key: &key,
            expires_at: None,
        })
        .await
        .unwrap();
    let jail = fresh.path().join("jail");
    let got = cluster
        .ocelot(&["artifacts", "get", &id, "-o", jail.to_str().unwrap()])
        .await
        .unwrap();
    assert_ne!(got.code, 0, "{}", got.both());
    assert!(
        got.stderr
            .contains("`../escaped.txt` leaves the target directory: refused"),
        "{}",
        got.both()
    );
    assert!(!fresh.path().join("escaped.txt").exists());
    // the others were still written
    assert!(jail.join("reports/unit.xml").is_file());

    // expiry: an hour later (as the store sees it) the rows go, then a pass of the admin's
    // retention deletes the objects, the crafted one (no expiry) included once removed
    let objects = storage.list(&format!("artifacts/{id}")).await.unwrap();
    assert_eq!(objects.len(), 3, "{objects:?}");
    let later = SystemTime::now() + Duration::from_secs(2 * 3600);
    assert_eq!(cluster.store.expire_artifacts(later).await.unwrap(), 2);
    let pruned = ocelot_admin::retention::artifact_pass(&cluster.store, &storage)
        .await
        .unwrap();
    assert_eq!(pruned.objects, 2, "{pruned:?}");
    let left = storage.list(&format!("artifacts/{id}")).await.unwrap();
    assert_eq!(left.len(), 1, "only the crafted object is left: {left:?}");
    assert_eq!(cluster.store.delete_artifacts(build.id).await.unwrap(), 1);
    ocelot_admin::retention::artifact_pass(&cluster.store, &storage)
        .await
        .unwrap();
    assert!(
        storage
            .list(&format!("artifacts/{id}"))
            .await
            .unwrap()
            .is_empty()
    );
    let listed = cluster.ocelot(&["artifacts", &id, "--json"]).await.unwrap();
    assert_eq!(listed.stdout.trim(), "[]", "{}", listed.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_on_a_local_directory() {
    artifacts_round_trip(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_on_an_s3_server() {
    let s3 = S3Server::start().await.unwrap();
    artifacts_round_trip(Some(s3.storage_args("it"))).await;
}

/// Artifacts go with their build: removing the repo (its builds with it) queues their
/// objects, and a retention pass deletes them from the storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_go_with_their_build() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(
        &cluster,
        "small",
        "image: ocelot/busybox\nstages:\n  - name: build\n    script: [echo hi > out.txt]\n    artifacts: [out.txt]\n",
        &[],
    )
    .await;
    let built = cluster.ocelot(&["build", "-r", "small"]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    let build = cluster.builds().await.unwrap().remove(0);
    let storage = Storage::open(&cluster.storage).unwrap();
    let prefix = format!("artifacts/{}", build.id);
    assert_eq!(storage.list(&prefix).await.unwrap().len(), 1);
    let removed = cluster.ocelot(&["repos", "remove", "small"]).await.unwrap();
    assert_eq!(removed.code, 0, "{}", removed.both());
    let pruned = ocelot_admin::retention::artifact_pass(&cluster.store, &storage)
        .await
        .unwrap();
    assert_eq!(pruned.objects, 1, "{pruned:?}");
    assert!(storage.list(&prefix).await.unwrap().is_empty());
}

/// On the host executor the workspace is packed from the host's directory, never following
/// a link: a symlink to a file of the worker's host is refused, the real file is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_builds_keep_artifacts_and_never_a_link_out() {
    let cluster = Cluster::start_with(vec![
        WorkerSpec::default(),
        WorkerSpec {
            tags: vec!["bare".into()],
            executor: ocelot_worker::ExecutorKind::Host,
            concurrency: 1,
            ..WorkerSpec::default()
        },
    ])
    .await
    .unwrap();
    let yml = "machineTag: bare\nstages:\n  - name: host\n    script:\n      - mkdir -p out\n      - printf made-on-the-host > out/result.txt\n      - ln -s /etc/hostname out/hostname\n    artifacts: [out]\n";
    repo_with(&cluster, "bare-repo", yml, &[]).await;
    let allowed = cluster
        .ocelot(&["repos", "set", "bare-repo", "--allow-host", "true"])
        .await
        .unwrap();
    assert_eq!(allowed.code, 0, "{}", allowed.both());
    let built = cluster.ocelot(&["build", "-r", "bare-repo"]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    assert!(
        built.stdout.contains(
            "artifact `out/hostname` refused: a symlink to `/etc/hostname`, outside the workspace"
        ),
        "{}",
        built.both()
    );
    let build = cluster.builds().await.unwrap().remove(0);
    let target = tempfile::tempdir().unwrap();
    let got = cluster
        .ocelot(&[
            "artifacts",
            "get",
            &build.id.to_string(),
            "-o",
            target.path().to_str().unwrap(),
        ])
        .await
        .unwrap();
    assert_eq!(got.code, 0, "{}", got.both());
    assert_eq!(
        std::fs::read_to_string(target.path().join("out/result.txt")).unwrap(),
        "made-on-the-host"
    );
    assert!(!target.path().join("out/hostname").exists());
}

/// `when`: a passing stage keeps no `on_failure` artifacts, a failing one keeps them; the
/// build's result is the failing stage's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_artifacts_are_kept_only_when_the_stage_fails() {
    let cluster = Cluster::start().await.unwrap();
    let yml = r#"image: ocelot/busybox
stages:
  - name: unit
    script: [echo unit passed > unit.log]
    artifacts: {paths: [unit.log], when: on_failure}
  - name: test
    script:
      - echo "3 tests, 1 failure" > test.log
      - exit 3
    artifacts: {paths: [test.log], when: on_failure}
  - name: never
    script: [echo never]
"#;
    repo_with(&cluster, "failing", yml, &[]).await;
    let built = cluster.ocelot(&["build", "-r", "failing"]).await.unwrap();
    assert_eq!(built.code, 1, "{}", built.both());
    let build = cluster.builds().await.unwrap().remove(0);
    let listed = cluster
        .ocelot(&["artifacts", &build.id.to_string(), "--json"])
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let kept: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["path"].as_str().unwrap(), a["stage"].as_str().unwrap()))
        .collect();
    assert_eq!(kept, [("test.log", "test")], "{}", listed.both());
}

/// An upload given up (a cancelled build drops its writer) leaves no multipart upload in
/// the bucket: the writer aborts it when dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_upload_leaves_no_multipart_upload_behind() {
    let s3 = S3Server::start().await.unwrap();
    let storage = Storage::open(&s3.storage_args("dropped")).unwrap();
    let mut writer = storage.writer("artifacts/1/big");
    // past one part: the multipart upload has begun
    let piece = vec![7u8; 1024 * 1024];
    for _ in 0..12 {
        writer.write(&piece).await.unwrap();
    }
    ocelot_tests::wait_until(
        "the multipart upload to begin",
        Duration::from_secs(10),
        || async { (s3.uploads_in_progress().await.ok()? > 0).then_some(()) },
    )
    .await
    .unwrap();
    drop(writer);
    ocelot_tests::wait_until(
        "the upload to be aborted",
        Duration::from_secs(10),
        || async { (s3.uploads_in_progress().await.ok()? == 0).then_some(()) },
    )
    .await
    .unwrap();
    assert!(storage.list("artifacts/1").await.unwrap().is_empty());
}
