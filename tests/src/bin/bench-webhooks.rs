//! Benchmark: verified webhook ingest. Starts a hookhandler (ingest only: `--processors 0`)
//! on loopback against a fresh Postgres database, then sends REQUESTS signed GitHub push
//! deliveries (distinct delivery ids) over CONCURRENCY keep-alive connections and prints the
//! throughput and latency percentiles. Then, as the yardstick, a plain loop of single-row
//! `INSERT`s of the same rows over CONCURRENCY Postgres connections (no HTTP, no
//! verification) into another fresh database of the same server, and the ratios of the two.
//! ROUNDS rounds alternate the two. Prints the server's `fsync` and `synchronous_commit`.
//! Bounded by REQUESTS × ROUNDS.
//!
//! `cargo run --release -p ocelot-tests --bin bench-webhooks -- [REQUESTS] [CONCURRENCY] [ROUNDS]`

use anyhow::Context;
use ocelot_tests::nats::{NatsServer, NatsUser};
use ocelot_tests::postgres::TestDatabase;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let requests: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let concurrency: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(32);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1);
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

    let (client, connection) =
        tokio_postgres::connect(&database.url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let setting = |name: &'static str| {
        let client = &client;
        async move {
            let row = client.query_one(&format!("SHOW {name}"), &[]).await?;
            anyhow::Ok(row.get::<_, String>(0))
        }
    };
    println!(
        "{requests} signed GitHub push deliveries ({} bytes each), {concurrency} keep-alive connections; \
         Postgres fsync={} synchronous_commit={}",
        body.len(),
        setting("fsync").await?,
        setting("synchronous_commit").await?,
    );
    let plain = PlainInserts::prepare().await?;
    for round in 0..rounds {
        let prefix = format!("bench-{round}-");
        let hooks =
            hookhandler_run(address, &body, &signature, requests, concurrency, &prefix).await?;
        // the rows the hookhandler recorded, as the yardstick inserts them
        let row = client
            .query_one("SELECT event, request FROM webhook_deliveries LIMIT 1", &[])
            .await?;
        let inserts = plain
            .run(row.get(0), row.get(1), requests, concurrency, &prefix)
            .await?;
        println!("round {}:", round + 1);
        hooks.print("  hookhandler (HTTP, verify, group commit)");
        inserts.print("  plain INSERT loop (same rows)");
        println!(
            "  ratio hookhandler / plain INSERT: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
            hooks.throughput() / inserts.throughput(),
            hooks.percentile(0.50).as_secs_f64() / inserts.percentile(0.50).as_secs_f64(),
            hooks.percentile(0.99).as_secs_f64() / inserts.percentile(0.99).as_secs_f64(),
        );
    }
    // rows written by one transaction share its xmin: the number of group commits
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT xmin::TEXT) FROM webhook_deliveries",
            &[],
        )
        .await?;
    let (recorded, commits): (i64, i64) = (row.get(0), row.get(1));
    println!(
        "deliveries recorded by the hookhandler: {recorded} of {}, in {commits} commits ({:.1} per commit)",
        requests * rounds,
        recorded as f64 / commits.max(1) as f64
    );
    Ok(())
}

/// What one connection's requests got: each latency, and how many answers of each status.
type Answered = (Vec<Duration>, BTreeMap<u16, usize>);

/// One timed run: its wall time, each request's latency and the statuses answered.
struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, usize>,
}

impl Run {
    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }

    fn print(&self, name: &str) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{name}: {:.0}/s over {:.2} s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; statuses {:?}",
            self.throughput(),
            self.elapsed.as_secs_f64(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            ms(self.percentile(1.0)),
            self.statuses,
        );
    }

    /// Runs `tasks` (each: its latencies and statuses) and gathers them.
    async fn gather(
        started: Instant,
        tasks: Vec<JoinHandle<anyhow::Result<Answered>>>,
    ) -> anyhow::Result<Run> {
        let mut latencies = Vec::new();
        let mut statuses = BTreeMap::<u16, usize>::new();
        for task in tasks {
            let (task_latencies, task_statuses) = task.await??;
            latencies.extend(task_latencies);
            for (status, count) in task_statuses {
                *statuses.entry(status).or_default() += count;
            }
        }
        let elapsed = started.elapsed();
        latencies.sort();
        Ok(Run {
            elapsed,
            latencies,
            statuses,
        })
    }
}

/// `requests` deliveries to the hookhandler at `address` over `concurrency` connections.
async fn hookhandler_run(
    address: std::net::SocketAddr,
    body: &Arc<String>,
    signature: &Arc<String>,
    requests: usize,
    concurrency: usize,
    prefix: &str,
) -> anyhow::Result<Run> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let body = body.clone();
        let signature = signature.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses = BTreeMap::<u16, usize>::new();
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
                     X-GitHub-Event: push\r\nX-GitHub-Delivery: {prefix}{index}\r\n{signature}\r\nContent-Length: {}\r\n\r\n{body}",
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
    Run::gather(started, tasks).await
}

/// The yardstick: the same rows inserted one by one, each its own transaction (what each
/// request cost before group commit), over plain Postgres connections to a fresh database.
struct PlainInserts {
    url: String,
    repo_id: i64,
    _database: TestDatabase,
}

impl PlainInserts {
    async fn prepare() -> anyhow::Result<PlainInserts> {
        let database = TestDatabase::create().await?;
        let plain = ocelot_core::store::Store::connect(&database.url).await?;
        let repo = plain
            .add_repo("bench", "git://127.0.0.1:1/team/bench.git", "main", None)
            .await?;
        Ok(PlainInserts {
            url: database.url.clone(),
            repo_id: repo.id.to_db(),
            _database: database,
        })
    }

    async fn run(
        &self,
        event: String,
        request: serde_json::Value,
        requests: usize,
        concurrency: usize,
        prefix: &str,
    ) -> anyhow::Result<Run> {
        let mut clients = Vec::new();
        for _ in 0..concurrency {
            let (client, connection) =
                tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            let insert = client
                .prepare(
                    "INSERT INTO webhook_deliveries (provider, delivery_id, repo_id, event, request)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .await?;
            clients.push((client, insert));
        }
        let next = Arc::new(AtomicUsize::new(0));
        let event = Arc::new(event);
        let request = Arc::new(request);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (client, insert) in clients {
            let next = next.clone();
            let event = event.clone();
            let request = request.clone();
            let prefix = prefix.to_string();
            let repo_id = self.repo_id;
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut statuses = BTreeMap::<u16, usize>::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= requests {
                        break;
                    }
                    let id = format!("{prefix}{index}");
                    let sent = Instant::now();
                    client
                        .execute(&insert, &[&"github", &id, &repo_id, &*event, &*request])
                        .await?;
                    latencies.push(sent.elapsed());
                    // 201: inserted (a status, to print both runs alike)
                    *statuses.entry(201).or_default() += 1;
                }
                Ok::<_, anyhow::Error>((latencies, statuses))
            }));
        }
        Run::gather(started, tasks).await
    }
}
