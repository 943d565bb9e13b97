//! Benchmark: verified webhook ingest. Starts a hookhandler (ingest only: `--processors 0`)
//! on loopback against a fresh Postgres database, then sends REQUESTS signed GitHub push
//! deliveries (distinct delivery ids) over CONCURRENCY keep-alive connections and prints the
//! throughput and latency percentiles. Bounded by REQUESTS.
//!
//! `cargo run --release -p ocelot-tests --bin bench-webhooks -- [REQUESTS] [CONCURRENCY]`

use anyhow::Context;
use ocelot_tests::nats::{NatsServer, NatsUser};
use ocelot_tests::postgres::TestDatabase;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let requests: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let concurrency: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(32);
    let database = TestDatabase::create().await?;
    let nats = NatsServer::start().await?;
    let store = ocelot_core::store::Store::connect(&database.url).await?;
    let secret = "bench-secret-0123456789abcdef";
    // webhook secrets are sealed under the master key, as the admin does
    let key_dir = tempfile::tempdir()?;
    let key_file = key_dir.path().join("master.key");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_file)?
            .write_all(ocelot_core::secrets::cipher::MasterKey::generate_hex()?.as_bytes())?;
    }
    let key = ocelot_core::secrets::cipher::MasterKey::from_file(&key_file)?;
    let sealed = ocelot_core::secrets::webhook::seal(&key, "bench", secret)?;
    store
        .add_repo(
            "bench",
            "git://127.0.0.1:1/team/bench.git",
            "main",
            Some(&sealed),
        )
        .await?;
    // the streams, as an admin or worker makes them (the hookhandler may only publish jobs)
    let _streams = ocelot_core::queue::Bus::connect(
        &nats.args(NatsUser::Admin),
        ocelot_core::queue::Setup::Streams,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let settings = ocelot_hookhandler::Settings {
        database: ocelot_core::settings::DatabaseArgs::new(database.url.clone()),
        nats: nats.args(NatsUser::Hookhandler),
        log: ocelot_core::settings::LogArgs {
            log_format: ocelot_core::telemetry::LogFormat::Plain,
        },
        secrets: ocelot_core::settings::SecretsArgs {
            master_key_file: Some(key_file.clone()),
        },
        secret_store: Default::default(),
        consul: Default::default(),
        listen: address,
        cache_dir: None,
        max_body_bytes: 5 * 1024 * 1024,
        rate_limit: std::num::NonZeroU32::new(1_000_000).context("rate")?,
        rate_burst: std::num::NonZeroU32::new(1_000_000).context("burst")?,
        processors: 0,
    };
    tokio::spawn(ocelot_hookhandler::run(
        settings,
        listener,
        std::future::pending(),
    ));
    ocelot_tests::wait_for_port(address.port(), Duration::from_secs(30)).await?;

    let fixture = format!(
        "{}/../hookhandler/tests/fixtures/webhooks/github/push_branch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut body: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture)?)?;
    body["repository"]["full_name"] = "team/bench".into();
    let body = Arc::new(body.to_string());
    let (header, signature) = ocelot_hookhandler::providers::sign(
        ocelot_hookhandler::Provider::GitHub,
        body.as_bytes(),
        secret,
    );
    let signature = Arc::new(format!("{header}: {signature}"));

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let body = body.clone();
        let signature = signature.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            let mut stream = BufReader::new(stream);
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= requests {
                    break;
                }
                let request = format!(
                    "POST /hooks/github HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
                     X-GitHub-Event: push\r\nX-GitHub-Delivery: bench-{index}\r\n{signature}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let sent = Instant::now();
                stream.get_mut().write_all(request.as_bytes()).await?;
                let mut status_line = String::new();
                stream.read_line(&mut status_line).await?;
                let status: u16 = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("status")?;
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    stream.read_line(&mut line).await?;
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse()?;
                    }
                }
                let mut response_body = vec![0; length];
                stream.read_exact(&mut response_body).await?;
                latencies.push(sent.elapsed());
                *statuses.entry(status).or_default() += 1;
            }
            Ok::<_, anyhow::Error>((latencies, statuses))
        }));
    }
    let mut latencies = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for task in tasks {
        let (task_latencies, task_statuses) = task.await??;
        latencies.extend(task_latencies);
        for (status, count) in task_statuses {
            *statuses.entry(status).or_default() += count;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(index).copied().unwrap_or_default()
    };
    let recorded: i64 = {
        let (client, connection) =
            tokio_postgres::connect(&database.url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client
            .query_one("SELECT count(*) FROM webhook_deliveries", &[])
            .await?
            .get(0)
    };
    println!(
        "{requests} signed GitHub push deliveries ({} bytes each), {concurrency} keep-alive connections",
        body.len()
    );
    println!(
        "throughput {:.0} deliveries/s over {:.2} s",
        requests as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(0.50).as_secs_f64() * 1000.0,
        percentile(0.99).as_secs_f64() * 1000.0,
        percentile(1.0).as_secs_f64() * 1000.0
    );
    println!("statuses {statuses:?}; deliveries recorded in Postgres: {recorded}");
    Ok(())
}
