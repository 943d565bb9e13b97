//! Benchmark: the poller's cost. Registers ENTRIES repos, each polled every minute, against a
//! local `git daemon`, runs the real `ocelot-poller` binary for SECONDS and prints the CPU
//! share of one core it used (from /proc), how many polls it made and how they spread.
//!
//! `cargo build --release --bins && OCELOT_TEST_BIN_DIR=target/release cargo run --release -p ocelot-tests --bin bench-poller -- [ENTRIES] [SECONDS]`

use anyhow::Context;
use ocelot_core::model::PollSchedule;
use ocelot_tests::git::GitServer;
use ocelot_tests::nats::{NatsServer, NatsUser};
use ocelot_tests::postgres::TestDatabase;
use std::time::{Duration, Instant, SystemTime};

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields after the name: state is 0, utime is 11, stime is 12
    Ok(fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let entries: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(120);
    let database = TestDatabase::create().await?;
    let nats = NatsServer::start().await?;
    let dir = tempfile::tempdir()?;
    let git = GitServer::start(&dir.path().join("git")).await?;
    let repo = git.create_repo(
        "polled",
        &[(
            "ocelot.yml",
            "image: ocelot/busybox\nstages:\n  - name: s\n    script: [true]\n",
        )],
    )?;
    let store = ocelot_core::store::Store::connect(&database.url).await?;
    let schedule = PollSchedule::Every(Duration::from_secs(60));
    let now = SystemTime::now();
    for index in 0..entries {
        let added = store
            .add_repo(&format!("repo-{index}"), &repo.url, "main", None)
            .await?;
        store
            .upsert_poll(
                added.id,
                &["main".to_string()],
                &schedule,
                false,
                ocelot_core::schedule::first_due(&schedule, now),
            )
            .await?;
    }
    let bin = ocelot_tests::cluster::bin_dir()?.join("ocelot-poller");
    // the streams, as an admin or worker makes them (the poller may only publish jobs)
    let _streams = ocelot_core::queue::Bus::connect(
        &nats.args(NatsUser::Admin),
        ocelot_core::queue::Setup::Streams,
    )
    .await?;
    let mut child = tokio::process::Command::new(&bin)
        .env("OCELOT_DATABASE_URL", &database.url)
        .envs(nats.env(NatsUser::Poller))
        .env("RUST_LOG", "warn")
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("poller pid")?;
    let ticks_per_second: f64 = String::from_utf8(
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()?
            .stdout,
    )?
    .trim()
    .parse()?;
    let start_ticks = cpu_ticks(pid)?;
    let started = Instant::now();
    let mut per_10s = Vec::new();
    let (client, connection) =
        tokio_postgres::connect(&database.url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let mut last_count = 0i64;
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let count: i64 = client
            .query_one(
                "SELECT count(*) FROM polls WHERE last_polled_at IS NOT NULL",
                &[],
            )
            .await?
            .get(0);
        per_10s.push(count - last_count);
        last_count = count;
    }
    let used = (cpu_ticks(pid)? - start_ticks) as f64 / ticks_per_second;
    let wall = started.elapsed().as_secs_f64();
    let errors: i64 = client
        .query_one(
            "SELECT count(*) FROM polls WHERE last_error IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    child.kill().await?;
    println!("{entries} polls every 1 min against a local git daemon, poller run {wall:.0} s");
    println!(
        "poller CPU: {used:.2} s of CPU in {wall:.0} s = {:.1} % of one core",
        used / wall * 100.0
    );
    println!("entries polled at least once: {last_count}; polls with an error: {errors}");
    println!("first polls per 10 s window (spread): {per_10s:?}");
    Ok(())
}
