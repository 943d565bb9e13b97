//! Benchmark: a log-heavy build end to end. Starts a test cluster (admin and one docker
//! worker in this process, the real `ocelot` binary), then, alternating, RUNS times:
//! `ocelot build` of a stage printing `seq 1 LINES` (its stdout read through a pipe, every
//! line checked: present, in order) and the same script in a plain `docker run --rm` read
//! through a pipe. Prints median/min/max of each and the ratio of the medians. Bounded by
//! RUNS.
//!
//! `OCELOT_TEST_BIN_DIR=target/release cargo run --release -p ocelot-tests --bin bench-logs -- [LINES] [RUNS]`

use anyhow::Context;
use ocelot_tests::cluster::{Cluster, WorkerSpec};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Reads the command's stdout to the end; checks that its numbers are `1..=lines`, in order
/// (Ocelot's own lines skipped), and returns how long the whole command took.
async fn timed(mut command: tokio::process::Command, lines: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut reader = BufReader::with_capacity(1 << 16, stdout).lines();
    let mut expected = 1u64;
    while let Some(line) = reader.next_line().await? {
        // Ocelot's own lines (the banner) are not the script's
        let Ok(number) = line.parse::<u64>() else {
            continue;
        };
        anyhow::ensure!(number == expected, "line {expected} is `{line}`");
        expected += 1;
    }
    let status = child.wait().await?;
    anyhow::ensure!(status.success(), "exited with {status}");
    anyhow::ensure!(expected == lines + 1, "{} lines of {lines}", expected - 1);
    Ok(started.elapsed())
}

fn summary(name: &str, values: &mut [Duration]) -> Duration {
    values.sort();
    let median = values[values.len() / 2];
    println!(
        "{name:<46} median {:7.2} s   min {:7.2} s   max {:7.2} s",
        median.as_secs_f64(),
        values[0].as_secs_f64(),
        values[values.len() - 1].as_secs_f64()
    );
    median
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let lines: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    // the worker keeps the flood whole (the test cluster's default keeps 4 MiB)
    let cluster = Cluster::start_with(vec![WorkerSpec {
        max_log_mib: 64,
        max_log_lines: lines + 100,
        ..WorkerSpec::default()
    }])
    .await?;
    let script = format!("seq 1 {lines}");
    let yml =
        format!("image: ocelot/busybox\nstages:\n  - name: flood\n    script:\n      - {script}\n");
    let repo = cluster.git.create_repo("flood", &[("ocelot.yml", &yml)])?;
    cluster.add_repo("flood", &repo.url).await?;
    let bin = ocelot_tests::cluster::bin_dir()?;
    let (mut ocelot, mut docker) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut command = tokio::process::Command::new(bin.join("ocelot"));
        command
            .args(["build", "-r", "flood"])
            .env("OCELOT_ADMIN", &cluster.admin_url)
            .env("OCELOT_TOKEN", &cluster.token)
            .env("NO_COLOR", "1");
        ocelot.push(timed(command, lines).await.context("ocelot build")?);
        let mut command = tokio::process::Command::new("docker");
        command.args(["run", "--rm", "ocelot/busybox", "sh", "-c", &script]);
        docker.push(timed(command, lines).await.context("docker run")?);
    }
    println!(
        "{runs} runs, `{script}`, image ocelot/busybox, stdout read through a pipe, every line checked"
    );
    let ocelot = summary("ocelot build (trigger to exit)", &mut ocelot);
    let docker = summary("docker run --rm, same script", &mut docker);
    println!(
        "ratio (medians)                                {:.2}x",
        ocelot.as_secs_f64() / docker.as_secs_f64()
    );
    Ok(())
}
