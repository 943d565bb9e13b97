//! Benchmark: a 100 MB artifact through Ocelot against plain copies of the same file. Starts
//! a test cluster (admin and one docker worker in this process, the real `ocelot` binary) on
//! a local-directory storage, or with `s3` on a moto S3 server of its own; then RUNS times:
//! a build writes MB megabytes of random bytes to `out/app` and keeps it as an artifact
//! (upload: the worker's "collecting" line → its "kept" line, read from the container,
//! hashed, stored), `ocelot artifacts get` fetches it (download, SHA-256 checked); and the
//! plain sides: `docker cp` of the same size out of a container, and `cp` of the fetched
//! file. Prints median/min/max of each. Bounded by RUNS.
//!
//! `OCELOT_TEST_BIN_DIR=target/debug cargo run -p ocelot-tests --bin bench-artifacts -- [MB] [RUNS] [s3]`

use anyhow::Context;
use ocelot_tests::cluster::{Cluster, ClusterSpec, WorkerSpec};
use std::time::{Duration, Instant};

fn summary(name: &str, mut times: Vec<Duration>, megabytes: u64) {
    times.sort();
    let median = times[times.len() / 2];
    #[allow(clippy::cast_precision_loss)]
    let rate = megabytes as f64 / median.as_secs_f64();
    println!(
        "| {name} | {} ms | {} ms | {} ms | {rate:.0} MB/s |",
        median.as_millis(),
        times[0].as_millis(),
        times[times.len() - 1].as_millis()
    );
}

async fn docker(args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let megabytes: u64 = args.first().map_or(Ok(100), |a| a.parse())?;
    let runs: usize = args.get(1).map_or(Ok(5), |a| a.parse())?;
    let s3 = if args.get(2).map(String::as_str) == Some("s3") {
        Some(ocelot_tests::s3::S3Server::start().await?)
    } else {
        None
    };
    let cluster = Cluster::start_spec(ClusterSpec {
        workers: vec![WorkerSpec {
            artifacts: ocelot_worker::ArtifactLimits {
                max_mib: megabytes * 2,
                ..ocelot_worker::ArtifactLimits::default()
            },
            ..WorkerSpec::default()
        }],
        storage: s3.as_ref().map(|s| s.storage_args("bench")),
        ..ClusterSpec::default()
    })
    .await?;
    let bytes = megabytes * 1_000_000;
    let yml = format!(
        "image: ocelot/busybox\nstages:\n  - name: make\n    script: [mkdir -p out, head -c {bytes} /dev/urandom > out/app]\n    artifacts: [out/app]\n"
    );
    let repo = cluster
        .git
        .create_repo("big", &[("ocelot.yml", yml.as_str())])?;
    cluster.add_repo("big", &repo.url).await?;
    let work = tempfile::tempdir()?;
    let (mut upload, mut download, mut docker_cp, mut plain_cp) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let built = cluster.ocelot(&["build", "-r", "big"]).await?;
        anyhow::ensure!(built.code == 0, "{}", built.both());
        let build = cluster.builds().await?.remove(0);
        let lines = cluster.store.lines(build.id, build.attempt).await?;
        let at = |prefix: &str| {
            lines
                .iter()
                .find(|l| l.text.starts_with(prefix))
                .map(|l| l.at)
                .with_context(|| format!("no `{prefix}` line"))
        };
        let started = at("artifacts: collecting")?;
        let kept = at("artifacts: 1 kept")?;
        upload.push(kept.duration_since(started)?);

        let target = work.path().join(format!("get-{run}"));
        let clock = Instant::now();
        let got = cluster
            .ocelot(&[
                "artifacts",
                "get",
                &build.id.to_string(),
                "-o",
                target.to_str().context("path")?,
            ])
            .await?;
        download.push(clock.elapsed());
        anyhow::ensure!(got.code == 0, "{}", got.both());
        let fetched = target.join("out/app");
        anyhow::ensure!(std::fs::metadata(&fetched)?.len() == bytes);

        let clock = Instant::now();
        std::fs::copy(&fetched, work.path().join(format!("copy-{run}")))?;
        plain_cp.push(clock.elapsed());

        let container = docker(&[
            "run",
            "-d",
            "ocelot/busybox",
            "sh",
            "-c",
            &format!("head -c {bytes} /dev/urandom > /app; sleep 600"),
        ])
        .await?;
        // the file is complete once `head` is gone
        loop {
            let top = docker(&["top", &container]).await?;
            if !top.contains("head") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let out = work.path().join(format!("docker-cp-{run}"));
        let clock = Instant::now();
        docker(&[
            "cp",
            &format!("{container}:/app"),
            out.to_str().context("path")?,
        ])
        .await?;
        docker_cp.push(clock.elapsed());
        docker(&["rm", "-f", &container]).await?;
        for path in [target, out, work.path().join(format!("copy-{run}"))] {
            let _ = std::fs::remove_dir_all(&path);
            let _ = std::fs::remove_file(&path);
        }
    }
    let storage = cluster.storage.location()?;
    println!("{megabytes} MB, {runs} runs, storage {storage}\n");
    println!("| | median | min | max | median rate |\n|---|---|---|---|---|");
    summary(
        "upload: container → storage (worker, hashed)",
        upload,
        megabytes,
    );
    summary(
        "download: `ocelot artifacts get` (SHA-256 checked)",
        download,
        megabytes,
    );
    summary("`docker cp` out of a container", docker_cp, megabytes);
    summary("`cp` on the local disk", plain_cp, megabytes);
    Ok(())
}
