//! Metrics and traces, end to end with the real binaries: an admin (with `--http-listen`), a
//! worker and a poller (with `--health-listen`) and a hookhandler run as processes; a real
//! Prometheus (Debian's `prometheus`) scrapes each one's `/metrics` every second. A webhook
//! build and an `ocelot build` run to completion; Prometheus then shows every target up and
//! the build, webhook, poll, log and worker metrics. Each build's trace id is in the log of
//! the service that triggered it (the trigger) and of the worker (claim, stages, result).
//!
//! Without a `prometheus` binary on the PATH the test says so and passes, unless
//! `OCELOT_TEST_REQUIRE_ALL` is set (`scripts/test.sh` sets it; `scripts/setup.sh` installs
//! the package).

use ocelot_core::BuildState;
use ocelot_core::model::Build;
use ocelot_hookhandler::providers::{self, Provider};
use ocelot_tests::cluster::{Cluster, bin_dir};
use ocelot_tests::http::{get, post};
use ocelot_tests::nats::NatsUser;
use ocelot_tests::services::ServiceProcess;
use ocelot_tests::{free_port, wait_until};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const YML: &str = r#"image: ocelot/busybox
branches: [main]
stages:
  - name: build
    script:
      - echo "building $GIT_COMMIT"
      - echo "built"
  - name: test
    script: [echo "tested"]
"#;

/// How long Prometheus gets to show what the test expects.
const PROMETHEUS_WAIT: Duration = Duration::from_secs(60);

/// The `prometheus` binary on the PATH, if any.
fn prometheus_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|candidate| candidate.is_file())
}

/// A service process and the `host:port` Prometheus scrapes it on.
struct Scraped {
    service: ServiceProcess,
    target: String,
}

/// What every service process gets: the cluster's database, master key and NATS user.
fn service_env(cluster: &Cluster, user: NatsUser) -> Vec<(String, String)> {
    [
        vec![
            (
                "OCELOT_DATABASE_URL".to_string(),
                cluster.database.url.clone(),
            ),
            (
                "OCELOT_MASTER_KEY_FILE".to_string(),
                cluster
                    .dir
                    .path()
                    .join("master.key")
                    .to_string_lossy()
                    .to_string(),
            ),
            ("RUST_LOG".to_string(), "info".to_string()),
            ("NO_COLOR".to_string(), "1".to_string()),
        ],
        cluster.nats.env(user),
    ]
    .concat()
}

fn start(cluster: &Cluster, name: &str, user: NatsUser, args: &[String]) -> ServiceProcess {
    let binary = bin_dir().unwrap().join(format!("ocelot-{name}"));
    ServiceProcess::start(
        name,
        &binary,
        args,
        &service_env(cluster, user),
        &cluster.dir.path().join(format!("{name}.log")),
    )
    .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn cache_dir(cluster: &Cluster, name: &str) -> String {
    cluster
        .dir
        .path()
        .join(format!("{name}-cache"))
        .to_string_lossy()
        .to_string()
}

/// The four services as processes; the admin's gRPC address comes back with them.
fn start_services(cluster: &Cluster) -> (Vec<Scraped>, String, String) {
    let address = || format!("127.0.0.1:{}", free_port().unwrap());
    let (admin_grpc, admin_http) = (address(), address());
    let admin = start(
        cluster,
        "admin",
        NatsUser::Admin,
        &strings(&[
            "--listen",
            &admin_grpc,
            "--http-listen",
            &admin_http,
            "--cache-dir",
            &cache_dir(cluster, "admin"),
        ]),
    );
    let worker_health = address();
    let worker = start(
        cluster,
        "worker",
        NatsUser::Worker,
        &strings(&[
            "--worker-id",
            "metrics-worker",
            "--concurrency",
            "2",
            "--health-listen",
            &worker_health,
            "--cache-dir",
            &cache_dir(cluster, "worker"),
            "--min-free-disk-mib",
            "1",
            "--check-every",
            "500ms",
        ]),
    );
    let hooks = address();
    let hookhandler = start(
        cluster,
        "hookhandler",
        NatsUser::Hookhandler,
        &strings(&[
            "--listen",
            &hooks,
            "--cache-dir",
            &cache_dir(cluster, "hookhandler"),
        ]),
    );
    let poller_health = address();
    let poller = start(
        cluster,
        "poller",
        NatsUser::Poller,
        &strings(&[
            "--health-listen",
            &poller_health,
            "--cache-dir",
            &cache_dir(cluster, "poller"),
            "--tick",
            "200ms",
        ]),
    );
    let scraped = vec![
        Scraped {
            service: admin,
            target: admin_http,
        },
        Scraped {
            service: worker,
            target: worker_health,
        },
        Scraped {
            service: hookhandler,
            target: hooks.clone(),
        },
        Scraped {
            service: poller,
            target: poller_health,
        },
    ];
    (
        scraped,
        format!("http://{admin_grpc}"),
        format!("http://{hooks}"),
    )
}

/// Waits until each service answers `/metrics` in the Prometheus text format.
async fn wait_serving_metrics(services: &mut [Scraped]) {
    for scraped in services.iter_mut() {
        let url = format!("http://{}/metrics", scraped.target);
        let answered = wait_until(
            &format!("{} to serve {url}", scraped.service.name),
            Duration::from_secs(60),
            || async { get(&url).await.ok().filter(|r| r.status == 200) },
        )
        .await;
        let response = answered.unwrap_or_else(|error| {
            panic!(
                "{error}; exited: {}; its log ends:\n{}",
                scraped.service.has_exited(),
                scraped.service.log_tail(30)
            )
        });
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")),
            "{url}: {:?}",
            response.headers
        );
    }
}

/// A Prometheus of the test's own, scraping `targets` (job name, `host:port`) every second.
fn start_prometheus(
    binary: &Path,
    dir: &Path,
    targets: &[(&str, &str)],
) -> (ServiceProcess, String) {
    let mut config = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
    );
    for (job, target) in targets {
        config.push_str(&format!(
            "  - job_name: {job}\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
        ));
    }
    let config_file = dir.join("prometheus.yml");
    std::fs::write(&config_file, config).unwrap();
    let listen = format!("127.0.0.1:{}", free_port().unwrap());
    let args = vec![
        format!("--config.file={}", config_file.display()),
        format!(
            "--storage.tsdb.path={}",
            dir.join("prometheus-data").display()
        ),
        format!("--web.listen-address={listen}"),
    ];
    let prometheus = ServiceProcess::start(
        "prometheus",
        binary,
        &args,
        &[],
        &dir.join("prometheus.log"),
    )
    .unwrap();
    (prometheus, format!("http://{listen}"))
}

/// `text` percent-encoded for a URL's query.
fn query_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The instant vector `query` evaluates to: each series' labels and value.
async fn query(prometheus: &str, query: &str) -> anyhow::Result<Vec<(Value, f64)>> {
    let url = format!("{prometheus}/api/v1/query?query={}", query_encoded(query));
    let response = get(&url).await?;
    anyhow::ensure!(
        response.status == 200,
        "{url}: {} {}",
        response.status,
        response.body
    );
    let answer = response.json();
    let series = answer["data"]["result"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("{url}: no result in {}", response.body))?;
    Ok(series
        .iter()
        .map(|s| {
            let value = s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            (s["metric"].clone(), value)
        })
        .collect())
}

/// One value a check wants: the query and what its result must satisfy.
struct Expect {
    query: &'static str,
    /// What the result must show, in words.
    wanted: &'static str,
    check: fn(&[(Value, f64)]) -> bool,
}

fn sum(series: &[(Value, f64)]) -> f64 {
    series.iter().map(|(_, value)| value).sum()
}

const EXPECTED: &[Expect] = &[
    Expect {
        query: "up",
        wanted: "1 for admin, worker, hookhandler and poller",
        check: |series| {
            ["admin", "worker", "hookhandler", "poller"]
                .iter()
                .all(|job| {
                    series
                        .iter()
                        .any(|(labels, value)| labels["job"] == *job && *value == 1.0)
                })
        },
    },
    Expect {
        query: r#"sum(ocelot_builds_finished_total{job="worker",state="passed"})"#,
        wanted: ">= 2 (the webhook's build and `ocelot build`'s)",
        check: |series| sum(series) >= 2.0,
    },
    Expect {
        query: r#"sum(ocelot_builds_finished_total{job="worker",state="passed",trigger="push"})"#,
        wanted: ">= 1",
        check: |series| sum(series) >= 1.0,
    },
    Expect {
        query: r#"sum(ocelot_builds_triggered_total{job="hookhandler",trigger="push"})"#,
        wanted: ">= 1",
        check: |series| sum(series) >= 1.0,
    },
    Expect {
        query: r#"sum(ocelot_builds_triggered_total{job="admin",trigger="manual"})"#,
        wanted: ">= 1",
        check: |series| sum(series) >= 1.0,
    },
    Expect {
        query: r#"sum(ocelot_webhook_deliveries_total{job="hookhandler",provider="github",status="202"})"#,
        wanted: ">= 1",
        check: |series| sum(series) >= 1.0,
    },
    Expect {
        query: r#"sum(ocelot_poll_results_total{job="poller"})"#,
        wanted: ">= 1",
        check: |series| sum(series) >= 1.0,
    },
    Expect {
        query: r#"sum(ocelot_build_duration_seconds_count{job="worker",state="passed"})"#,
        wanted: ">= 2",
        check: |series| sum(series) >= 2.0,
    },
    Expect {
        query: r#"sum(ocelot_stage_duration_seconds_count{job="worker",state="passed"})"#,
        wanted: ">= 4 (two stages of two builds)",
        check: |series| sum(series) >= 4.0,
    },
    Expect {
        query: r#"sum(ocelot_build_queued_seconds_count{job="worker",tag="default"})"#,
        wanted: ">= 2",
        check: |series| sum(series) >= 2.0,
    },
    Expect {
        query: r#"sum(ocelot_log_lines_total{job="worker"})"#,
        wanted: ">= 6 (three output lines of each build)",
        check: |series| sum(series) >= 6.0,
    },
    Expect {
        query: r#"ocelot_worker_slots{job="worker"}"#,
        wanted: "2 (--concurrency)",
        check: |series| sum(series) == 2.0,
    },
    Expect {
        query: r#"ocelot_worker_paused{job="worker",reason="disk"}"#,
        wanted: "0",
        check: |series| series.len() == 1 && sum(series) == 0.0,
    },
    Expect {
        query: r#"ocelot_builds_running{job="worker"}"#,
        wanted: "0 (both builds are done)",
        check: |series| series.len() == 1 && sum(series) == 0.0,
    },
];

/// Waits until every expectation holds in Prometheus; fails with what it saw.
async fn wait_for_expectations(prometheus: &str) {
    let deadline = tokio::time::Instant::now() + PROMETHEUS_WAIT;
    loop {
        let mut unmet = Vec::new();
        for expect in EXPECTED {
            match query(prometheus, expect.query).await {
                Ok(series) if (expect.check)(&series) => {}
                Ok(series) => unmet.push(format!(
                    "{} wants {}, is {:?}",
                    expect.query,
                    expect.wanted,
                    series
                        .iter()
                        .map(|(labels, value)| format!("{labels} {value}"))
                        .collect::<Vec<_>>()
                )),
                Err(error) => unmet.push(format!("{}: {error:#}", expect.query)),
            }
        }
        if unmet.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {PROMETHEUS_WAIT:?}, Prometheus shows:\n{}",
            unmet.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `text` without terminal escape sequences (colours), as a person reads the log.
fn without_escapes(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ending with a letter
            if chars.next() == Some('[') {
                for end in chars.by_ref() {
                    if end.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
}

/// The lines of `service`'s log that carry `trace_id=ID`.
fn traced_lines(service: &ServiceProcess, trace_id: &str) -> Vec<String> {
    let text = without_escapes(&std::fs::read_to_string(&service.log).unwrap_or_default());
    let needle = format!("trace_id={trace_id}");
    text.lines()
        .filter(|line| line.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// Waits until `service`'s log has a line with `trace_id=ID` and each of `messages`.
async fn wait_traced(service: &ServiceProcess, trace_id: &str, messages: &[&str]) {
    let found = wait_until(
        &format!(
            "{}'s log to show trace_id={trace_id} with {messages:?}",
            service.name
        ),
        Duration::from_secs(30),
        || async {
            let lines = traced_lines(service, trace_id);
            messages
                .iter()
                .all(|message| lines.iter().any(|line| line.contains(message)))
                .then_some(())
        },
    )
    .await;
    if let Err(error) = found {
        panic!(
            "{error}; lines with it:\n{}\nlog ends:\n{}",
            traced_lines(service, trace_id).join("\n"),
            service.log_tail(40)
        );
    }
}

fn github_push(full_name: &str, before: &str, after: &str) -> Value {
    let path = format!(
        "{}/../hookhandler/tests/fixtures/webhooks/github/push_branch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    body["ref"] = json!("refs/heads/main");
    body["before"] = json!(before);
    body["after"] = json!(after);
    body["repository"]["full_name"] = json!(full_name);
    body
}

/// The build of `trigger` once final; on a time-out, what the builds and the services say.
async fn final_build(cluster: &Cluster, trigger: &str, services: &[Scraped]) -> Build {
    let done = wait_until(
        &format!("the {trigger} build to finish"),
        Duration::from_secs(120),
        || async {
            cluster
                .builds()
                .await
                .ok()?
                .into_iter()
                .find(|b| b.trigger == trigger && b.state.is_final())
        },
    )
    .await;
    match done {
        Ok(build) => build,
        Err(error) => {
            let builds = cluster.builds().await.unwrap_or_default();
            let logs: Vec<String> = services
                .iter()
                .map(|s| format!("--- {}\n{}", s.service.name, s.service.log_tail(25)))
                .collect();
            panic!("{error}; builds: {builds:#?}\n{}", logs.join("\n"))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_service_and_a_trace_id_follows_each_build() {
    let Some(prometheus_bin) = prometheus_binary() else {
        assert!(
            std::env::var_os("OCELOT_TEST_REQUIRE_ALL").is_none(),
            "no `prometheus` on the PATH and OCELOT_TEST_REQUIRE_ALL is set: run scripts/setup.sh (Debian's prometheus package)"
        );
        eprintln!(
            "SKIPPED prometheus_scrapes_every_service_and_a_trace_id_follows_each_build: no `prometheus` on the PATH (scripts/setup.sh installs Debian's package)"
        );
        return;
    };
    // the cluster's own admin answers the CLI; the services under test are processes
    let cluster = Cluster::start_with(Vec::new()).await.unwrap();
    let (mut services, admin_url, hooks_url) = start_services(&cluster);
    wait_serving_metrics(&mut services).await;
    let targets: Vec<(&str, &str)> = services
        .iter()
        .map(|s| (s.service.name.as_str(), s.target.as_str()))
        .collect();
    let (mut prometheus, prometheus_url) =
        start_prometheus(&prometheus_bin, cluster.dir.path(), &targets);

    let repo = cluster
        .git
        .create_repo("team/measured", &[("ocelot.yml", YML)])
        .unwrap();
    let secret = cluster.add_repo("measured", &repo.url).await.unwrap();
    let before = repo.head().unwrap();
    let after = repo.commit(&[("src/app.sh", "echo hi")], "more").unwrap();
    repo.push().unwrap();

    // a webhook build: the hookhandler process triggers it, the worker process runs it
    let body = github_push("team/measured", &before, &after).to_string();
    let (signature_header, signature) = providers::sign(Provider::GitHub, body.as_bytes(), &secret);
    let response = post(
        &format!("{hooks_url}/hooks/github"),
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "metrics-1"),
            (signature_header, signature.as_str()),
        ],
        body.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 202, "{}", response.body);
    let pushed = final_build(&cluster, "push", &services).await;
    assert_eq!(pushed.state, BuildState::Passed, "{pushed:?}");

    // `ocelot build` through the admin process
    let output = tokio::process::Command::new(bin_dir().unwrap().join("ocelot"))
        .args(["build", "-r", "measured"])
        .current_dir(cluster.dir.path())
        .env("OCELOT_ADMIN", &admin_url)
        .env_remove("OCELOT_TLS_CA")
        .env("OCELOT_TOKEN", &cluster.token)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "ocelot build: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let manual = final_build(&cluster, "manual", &services).await;
    assert_eq!(manual.state, BuildState::Passed, "{manual:?}");

    // a poll of the repo, for the poller's metrics
    let added = cluster
        .ocelot(&["poll", "add", "-r", "measured", "--every", "1s"])
        .await
        .unwrap();
    assert_eq!(added.code, 0, "{}", added.both());

    // each build's trace id: in its trigger's log and in the worker's
    let service = |name: &str| {
        &services
            .iter()
            .find(|s| s.service.name == name)
            .unwrap()
            .service
    };
    let traced = |build: &Build| -> String {
        let trace_id = build.trace_id.clone().unwrap_or_default();
        assert!(
            ocelot_core::trace::is_trace_id(&trace_id),
            "no trace id: {build:?}"
        );
        trace_id
    };
    let worker_steps = ["build claimed", "stage finished", "build finished"];
    let pushed_trace = traced(&pushed);
    wait_traced(
        service("hookhandler"),
        &pushed_trace,
        &["webhook accepted", "build created"],
    )
    .await;
    wait_traced(service("worker"), &pushed_trace, &worker_steps).await;
    let manual_trace = traced(&manual);
    assert_ne!(pushed_trace, manual_trace);
    wait_traced(service("admin"), &manual_trace, &["build created"]).await;
    wait_traced(service("worker"), &manual_trace, &worker_steps).await;
    // one build's trace id is on its own build's lines only, never on the other's
    let names_build = |line: &str, id: &str| {
        line.contains(&format!("build_id={id}}}")) || line.contains(&format!("build_id={id} "))
    };
    for (trace_id, own, other) in [
        (&pushed_trace, pushed.id.to_string(), manual.id.to_string()),
        (&manual_trace, manual.id.to_string(), pushed.id.to_string()),
    ] {
        let lines = traced_lines(service("worker"), trace_id);
        assert!(
            lines
                .iter()
                .all(|line| names_build(line, &own) && !names_build(line, &other)),
            "the traces mix (trace {trace_id} of build {own}):\n{}",
            lines.join("\n")
        );
    }

    // Prometheus: readiness first, then every expectation
    wait_until(
        "Prometheus to be ready",
        Duration::from_secs(60),
        || async {
            get(&format!("{prometheus_url}/-/ready"))
                .await
                .ok()
                .filter(|r| r.status == 200)
        },
    )
    .await
    .unwrap_or_else(|error| {
        panic!(
            "{error}; exited: {}; its log ends:\n{}",
            prometheus.has_exited(),
            prometheus.log_tail(30)
        )
    });
    wait_for_expectations(&prometheus_url).await;
}
