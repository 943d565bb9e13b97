//! A whole Ocelot on loopback for one test: a fresh database, a NATS server, a git daemon,
//! the admin and the workers in-process, and the real `ocelot` binary to drive them.

use crate::git::GitServer;
use crate::nats::{NatsServer, NatsUser};
use crate::pg_server::PostgresServer;
use crate::postgres::TestDatabase;
use anyhow::Context;
use ocelot_core::ids::BuildId;
use ocelot_core::store::Store;
use ocelot_worker::ExecutorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One worker to start.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub tags: Vec<String>,
    pub executor: ExecutorKind,
    pub concurrency: usize,
    /// Free disk under which the worker takes no job (`--min-free-disk-mib`).
    pub min_free_disk_mib: u64,
    /// How long its writes wait out a Postgres outage (`--store-outage-budget`).
    pub store_outage_budget: Duration,
    /// Build container limits, host access and pulls (`--build-memory`, ...).
    pub sandbox: ocelot_worker::SandboxArgs,
    /// Output lines a build keeps (`--max-log-lines`).
    pub max_log_lines: u64,
    /// Output bytes a build keeps, in MiB (`--max-log-mib`).
    pub max_log_mib: u64,
    /// The artifacts a build keeps (`--max-artifact-mib`, `--max-artifacts`).
    pub artifacts: ocelot_worker::ArtifactLimits,
    /// The caches builds save (`--max-cache-mib`, `--cache-expire-in`).
    pub caches: ocelot_worker::CacheSettings,
    /// How its builds' stages run (`--max-parallel-stages`).
    pub stages: ocelot_worker::StageSettings,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        WorkerSpec {
            tags: vec!["default".to_string()],
            executor: ExecutorKind::Docker,
            concurrency: 2,
            min_free_disk_mib: 1,
            store_outage_budget: Duration::from_secs(60),
            // a test's in-process worker may be torn down while it starts a warm container:
            // any worker's sweeper removes such leftovers once this idle time has passed
            sandbox: ocelot_worker::SandboxArgs {
                warm_idle: Duration::from_secs(120),
                ..ocelot_worker::SandboxArgs::default()
            },
            max_log_lines: 1_000_000,
            max_log_mib: 4,
            artifacts: ocelot_worker::ArtifactLimits::default(),
            caches: ocelot_worker::CacheSettings::default(),
            stages: ocelot_worker::StageSettings::default(),
        }
    }
}

/// Settings of the cluster's hookhandler.
#[derive(Debug, Clone)]
pub struct HookSpec {
    pub rate_limit: u32,
    pub rate_burst: u32,
    pub max_body_bytes: usize,
}

impl Default for HookSpec {
    fn default() -> Self {
        HookSpec {
            rate_limit: 1000,
            rate_burst: 1000,
            max_body_bytes: 256 * 1024,
        }
    }
}

/// What a test cluster runs.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub workers: Vec<WorkerSpec>,
    pub hookhandler: Option<HookSpec>,
    pub pollers: usize,
    /// Serve the admin API over TLS (a throwaway CA; the CLI gets `OCELOT_TLS_CA`).
    pub tls: bool,
    /// Workers and pollers serve `/healthz` and `/readyz` (see `Cluster::health_urls`).
    pub health_endpoints: bool,
    /// A PostgreSQL server of the cluster's own (`Cluster::postgres`), which a test may stop
    /// and start; else a database on the shared server.
    pub own_postgres: bool,
    /// Where the admin and workers keep artifacts; default: a directory of the cluster's.
    pub storage: Option<ocelot_core::storage::StorageArgs>,
    /// The admin's notifier settings (`--build-url`, retries).
    pub notify: ocelot_admin::notifier::NotifierArgs,
    /// The admin's `--dashboard-url` (what `ocelot version` shows).
    pub dashboard_url: Option<String>,
    /// The admin serves its HTTP endpoints (dashboard, `/metrics`; see `Cluster::admin_http_url`).
    pub admin_http: bool,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            workers: vec![WorkerSpec::default()],
            hookhandler: None,
            pollers: 0,
            tls: false,
            health_endpoints: false,
            own_postgres: false,
            storage: None,
            notify: Default::default(),
            dashboard_url: None,
            admin_http: false,
        }
    }
}

/// What a CLI run printed and returned.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// stdout and stderr together, for failure messages.
    pub fn both(&self) -> String {
        format!(
            "exit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

#[derive(Debug)]
pub struct Cluster {
    pub database: TestDatabase,
    /// The cluster's own PostgreSQL server, when the spec asked for one.
    pub postgres: Option<PostgresServer>,
    pub nats: NatsServer,
    pub git: GitServer,
    pub admin_url: String,
    /// The CA certificate the admin's TLS certificate chains to, when it serves TLS.
    pub tls_ca: Option<PathBuf>,
    /// `http://127.0.0.1:PORT` of the hookhandler, when the cluster runs one.
    pub hooks_url: Option<String>,
    pub store: Store,
    /// An admin-scope API token, used by every `ocelot` run of the cluster.
    pub token: String,
    pub dir: tempfile::TempDir,
    pub worker_ids: Vec<String>,
    /// The installation's id (labels its build containers and networks).
    pub instance: String,
    /// `http://127.0.0.1:PORT` of each worker's and poller's health endpoints, with the
    /// service's name, when the spec asked for them.
    pub health_urls: Vec<(String, String)>,
    /// Where the admin and workers keep artifacts.
    pub storage: ocelot_core::storage::StorageArgs,
    /// `http://127.0.0.1:PORT` of the admin's dashboard and `/metrics`, when the spec asked.
    pub admin_http_url: Option<String>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
        // the in-process workers stop with the test's runtime, without removing their warm
        // containers or the networks still being removed in the background
        remove_docker_leftovers(&self.instance);
    }
}

/// Removes every container and network labelled with installation `instance` (a test's
/// own database: nobody else's), with the docker CLI; best effort.
pub fn remove_docker_leftovers(instance: &str) {
    let filter = format!("label=io.ocelot.instance={instance}");
    let listed = |args: &[&str]| -> Vec<String> {
        std::process::Command::new("docker")
            .args(args)
            .output()
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = listed(&["ps", "-aq", "--filter", &filter]);
    if !containers.is_empty() {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(&containers)
            .output();
    }
    let networks = listed(&["network", "ls", "-q", "--filter", &filter]);
    if !networks.is_empty() {
        let _ = std::process::Command::new("docker")
            .args(["network", "rm"])
            .args(&networks)
            .output();
    }
}

/// The binaries the tests run (the CLI and the services, also inside the multi-host
/// test's image).
pub const BINARIES: [&str; 5] = [
    "ocelot",
    "ocelot-admin",
    "ocelot-worker",
    "ocelot-poller",
    "ocelot-hookhandler",
];

/// The directory of the binaries under test: `OCELOT_TEST_BIN_DIR` as it is, or else the
/// test binary's own profile directory (`target/debug`) once `cargo build --workspace --bins`
/// (what `scripts/test.sh` runs) has brought them up to date there, so a stale binary is
/// never tested. The build runs once per test process; the first caller waits for it.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| built_bin_dir().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn built_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("OCELOT_TEST_BIN_DIR") {
        let dir = PathBuf::from(dir);
        missing_binaries(&dir).map_err(|missing| {
            anyhow::anyhow!(
                "OCELOT_TEST_BIN_DIR={} lacks {missing}: build them there, or unset it to let the tests build them",
                dir.display()
            )
        })?;
        return Ok(dir);
    }
    let exe = std::env::current_exe()?;
    // target/PROFILE/deps/it-HASH (a test) or target/PROFILE/NAME (a binary) → target/PROFILE
    let mut dir = exe
        .parent()
        .context("cannot find the target directory from the test binary's path")?;
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir = dir.parent().context("no profile directory above deps/")?;
    }
    let profile = dir
        .file_name()
        .and_then(|name| name.to_str())
        .context("the profile directory's name")?;
    let target_dir = dir.parent().context("no target directory")?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(&cargo);
    command
        .args(["build", "--workspace", "--bins", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(std::process::Stdio::null());
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let shown = format!("{command:?}");
    let output = command
        .output()
        .with_context(|| format!("running {shown}"))?;
    anyhow::ensure!(
        output.status.success(),
        "building the binaries under test failed ({shown}):\n{}\n(or set OCELOT_TEST_BIN_DIR to a directory of built binaries)",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = dir.to_path_buf();
    missing_binaries(&dir)
        .map_err(|missing| anyhow::anyhow!("{shown} left no {missing} in {}", dir.display()))?;
    Ok(dir)
}

/// Ok when `dir` holds every one of [`BINARIES`], else the names of those it lacks.
fn missing_binaries(dir: &Path) -> Result<(), String> {
    let missing: Vec<&str> = BINARIES
        .into_iter()
        .filter(|name| !dir.join(name).is_file())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join(", "))
    }
}

impl Cluster {
    /// A cluster with one docker worker serving the `default` tag.
    pub async fn start() -> anyhow::Result<Cluster> {
        Cluster::start_with(vec![WorkerSpec::default()]).await
    }

    pub async fn start_with(workers: Vec<WorkerSpec>) -> anyhow::Result<Cluster> {
        Cluster::start_spec(ClusterSpec {
            workers,
            ..ClusterSpec::default()
        })
        .await
    }

    pub async fn start_spec(spec: ClusterSpec) -> anyhow::Result<Cluster> {
        let workers = spec.workers;
        // the binaries the test runs, built (once per test process) before anything starts
        tokio::task::spawn_blocking(bin_dir).await??;
        if std::env::var_os("RUST_LOG").is_some() {
            ocelot_core::telemetry::init(ocelot_core::telemetry::LogFormat::Plain);
        }
        let (database, postgres) = if spec.own_postgres {
            let server = tokio::task::spawn_blocking(PostgresServer::start).await??;
            let url = server.create_database("ocelot").await?;
            (TestDatabase { url }, Some(server))
        } else {
            (TestDatabase::create().await?, None)
        };
        let nats = NatsServer::start().await?;
        let dir = tempfile::tempdir()?;
        let git = GitServer::start(&dir.path().join("git")).await?;
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        // the master key that seals this cluster's credentials
        let master_key = dir.path().join("master.key");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&master_key)?;
            file.write_all(ocelot_core::secrets::cipher::MasterKey::generate_hex()?.as_bytes())?;
        }
        // what every in-process service of the cluster connects to
        let database_args = ocelot_core::settings::DatabaseArgs::new(database.url.clone());
        let log_args = ocelot_core::settings::LogArgs {
            log_format: ocelot_core::telemetry::LogFormat::Plain,
        };
        let secrets = ocelot_core::settings::SecretsArgs {
            master_key_file: Some(master_key.clone()),
        };

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let admin_addr = listener.local_addr()?;
        let certificates = if spec.tls {
            Some(crate::tls::TestCertificates::generate(
                &dir.path().join("tls"),
            )?)
        } else {
            None
        };
        let storage = spec
            .storage
            .clone()
            .unwrap_or_else(|| ocelot_core::storage::StorageArgs::dir(dir.path().join("storage")));
        let admin_settings = ocelot_admin::Settings {
            storage: storage.clone(),
            database: database_args.clone(),
            nats: nats.args(NatsUser::Admin),
            log: log_args.clone(),
            secrets: secrets.clone(),
            secret_store: Default::default(),
            consul: Default::default(),
            listen: admin_addr,
            http_listen: None,
            dashboard_url: spec.dashboard_url.clone(),
            tls_cert: certificates.as_ref().map(|c| c.cert.clone()),
            tls_key: certificates.as_ref().map(|c| c.key.clone()),
            cache_dir: Some(dir.path().join("admin-cache")),
            keep_logs: Default::default(),
            notify: spec.notify.clone(),
            command: None,
        };
        let admin_http = if spec.admin_http {
            Some(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
        } else {
            None
        };
        let admin_http_url = match &admin_http {
            Some(listener) => Some(format!("http://{}", listener.local_addr()?)),
            None => None,
        };
        tasks.push(tokio::spawn(ocelot_admin::run_with_http(
            admin_settings,
            listener,
            admin_http,
            stop.clone().cancelled_owned(),
        )));

        // the health endpoints' listeners, bound here and handed over (no port to race for)
        let mut health_urls = Vec::new();
        let mut health_listener =
            async |name: String| -> anyhow::Result<Option<tokio::net::TcpListener>> {
                if !spec.health_endpoints {
                    return Ok(None);
                }
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                health_urls.push((name, format!("http://{}", listener.local_addr()?)));
                Ok(Some(listener))
            };
        let mut worker_ids = Vec::new();
        if workers.iter().any(|w| w.executor == ExecutorKind::Host) {
            // host builds run as unprivileged uids, which must pass through to their
            // workspaces (not list the directory: its master key stays root's, mode 0600)
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
        }
        for (index, spec) in workers.into_iter().enumerate() {
            let worker_id = format!(
                "test-worker-{index}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            );
            worker_ids.push(worker_id.clone());
            let settings = ocelot_worker::Settings {
                database: database_args.clone(),
                nats: nats.args(NatsUser::Worker),
                log: log_args.clone(),
                secrets: secrets.clone(),
                secret_store: Default::default(),
                consul: Default::default(),
                health: Default::default(),
                sandbox: spec.sandbox,
                storage: storage.clone(),
                artifacts: spec.artifacts,
                caches: spec.caches,
                stages: spec.stages,
                concurrency: spec.concurrency,
                tags: spec.tags,
                executor: spec.executor,
                host_build_uids: Some(host_build_uids(spec.concurrency)),
                worker_id: Some(worker_id),
                cache_dir: Some(dir.path().join(format!("worker-{index}"))),
                max_attempts: 3,
                pull_timeout: Duration::from_secs(60),
                shutdown_grace: Duration::from_secs(5),
                job_ack_wait: Duration::from_secs(60),
                max_log_mib: spec.max_log_mib,
                max_log_lines: spec.max_log_lines,
                store_outage_budget: spec.store_outage_budget,
                min_free_disk_mib: spec.min_free_disk_mib,
                check_every: Duration::from_millis(500),
                sweep_every: Duration::from_millis(500),
            };
            let health = health_listener(format!("worker-{index}")).await?;
            tasks.push(tokio::spawn(ocelot_worker::run(
                settings,
                health,
                stop.clone().cancelled_owned(),
            )));
        }

        let mut hooks_url = None;
        if let Some(hooks) = spec.hookhandler {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let address = listener.local_addr()?;
            hooks_url = Some(format!("http://{address}"));
            let settings = ocelot_hookhandler::Settings {
                database: database_args.clone(),
                nats: nats.args(NatsUser::Hookhandler),
                log: log_args.clone(),
                secrets: secrets.clone(),
                secret_store: Default::default(),
                consul: Default::default(),
                listen: address,
                cache_dir: Some(dir.path().join("hooks-cache")),
                max_body_bytes: hooks.max_body_bytes,
                rate_limit: std::num::NonZeroU32::new(hooks.rate_limit)
                    .unwrap_or(std::num::NonZeroU32::MIN),
                rate_burst: std::num::NonZeroU32::new(hooks.rate_burst)
                    .unwrap_or(std::num::NonZeroU32::MIN),
                processors: 2,
            };
            tasks.push(tokio::spawn(ocelot_hookhandler::run(
                settings,
                listener,
                stop.clone().cancelled_owned(),
            )));
        }
        for index in 0..spec.pollers {
            let settings = ocelot_poller::Settings {
                database: database_args.clone(),
                nats: nats.args(NatsUser::Poller),
                log: log_args.clone(),
                secrets: secrets.clone(),
                secret_store: Default::default(),
                consul: Default::default(),
                health: Default::default(),
                cache_dir: Some(dir.path().join(format!("poller-{index}"))),
                concurrency: 4,
                tick: Duration::from_millis(200),
            };
            let health = health_listener(format!("poller-{index}")).await?;
            tasks.push(tokio::spawn(ocelot_poller::run(
                settings,
                health,
                stop.clone().cancelled_owned(),
            )));
        }

        let store = Store::connect(&database.url).await?;
        let instance = store.instance_id().await?;
        let token = store
            .create_token("test-admin", ocelot_core::auth::TokenScope::Admin)
            .await?;
        let admin_url = match &certificates {
            Some(_) => format!("https://{admin_addr}"),
            None => format!("http://{admin_addr}"),
        };
        let cluster = Cluster {
            database,
            postgres,
            nats,
            git,
            admin_url,
            tls_ca: certificates.as_ref().map(|c| c.ca.clone()),
            hooks_url,
            store,
            token,
            dir,
            worker_ids,
            instance,
            health_urls,
            storage,
            admin_http_url,
            stop,
            tasks,
        };
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// A gRPC channel to the admin (trusting the test CA when it serves TLS).
    pub async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(self.admin_url.clone())?;
        if let Some(ca) = &self.tls_ca {
            endpoint = endpoint.tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(ca)?)),
            )?;
        }
        Ok(endpoint.connect().await?)
    }

    /// Waits until the admin answers, failing early if a service task ended.
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if self.tasks.iter().any(|t| t.is_finished()) {
                anyhow::bail!(
                    "a service of the test cluster stopped during start-up (run with RUST_LOG=info to see why)"
                );
            }
            if let Ok(channel) = self.channel().await {
                let mut client = ocelot_proto::v1::admin_client::AdminClient::new(channel);
                // any answer of the API (it needs a token) means it is serving
                let answer = client
                    .list_repos(ocelot_proto::v1::ListReposRequest {})
                    .await;
                if answer.is_ok()
                    || answer.is_err_and(|status| status.code() == tonic::Code::Unauthenticated)
                {
                    return Ok(());
                }
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the admin did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn command(&self, dir: &Path, args: &[&str]) -> anyhow::Result<tokio::process::Command> {
        let mut command = tokio::process::Command::new(bin_dir()?.join("ocelot"));
        command
            .args(args)
            .current_dir(dir)
            .env("OCELOT_ADMIN", &self.admin_url)
            .env_remove("OCELOT_TLS_CA")
            .env("OCELOT_TOKEN", &self.token)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(ca) = &self.tls_ca {
            command.env("OCELOT_TLS_CA", ca);
        }
        Ok(command)
    }

    /// Runs `ocelot ARGS` with another API token (`""`: none).
    pub async fn ocelot_with_token(&self, token: &str, args: &[&str]) -> anyhow::Result<CliOutput> {
        let mut command = self.command(self.dir.path(), args)?;
        command
            .env("OCELOT_TOKEN", token)
            .env("XDG_CONFIG_HOME", self.dir.path());
        let output = tokio::time::timeout(Duration::from_secs(60), command.output())
            .await
            .context("ocelot did not end within 60 s")??;
        Ok(CliOutput {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs `ocelot ARGS` with `input` on its standard input.
    pub async fn ocelot_with_input(
        &self,
        args: &[&str],
        input: &[u8],
    ) -> anyhow::Result<CliOutput> {
        use tokio::io::AsyncWriteExt;
        let mut command = self.command(self.dir.path(), args)?;
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).await?;
        }
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .context("ocelot did not end within 60 s")??;
        Ok(CliOutput {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs `ocelot ARGS` in the cluster's directory.
    pub async fn ocelot(&self, args: &[&str]) -> anyhow::Result<CliOutput> {
        self.ocelot_in(self.dir.path(), args).await
    }

    /// Runs `ocelot ARGS` in `dir` (e.g. a checkout), with a 3-minute limit.
    pub async fn ocelot_in(&self, dir: &Path, args: &[&str]) -> anyhow::Result<CliOutput> {
        let output =
            tokio::time::timeout(Duration::from_secs(180), self.command(dir, args)?.output())
                .await
                .with_context(|| format!("ocelot {args:?} did not end within 3 minutes"))??;
        Ok(CliOutput {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Starts `ocelot ARGS` in `dir` with stdout and stderr piped, for a test that reads what
    /// it prints while it runs (killed when dropped).
    pub fn ocelot_spawn(&self, dir: &Path, args: &[&str]) -> anyhow::Result<tokio::process::Child> {
        let mut command = self.command(dir, args)?;
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Ok(command.spawn()?)
    }

    /// Registers a repository through the CLI; returns its webhook secret.
    pub async fn add_repo(&self, name: &str, url: &str) -> anyhow::Result<String> {
        let output = self.ocelot(&["repos", "add", name, url, "--json"]).await?;
        anyhow::ensure!(output.code == 0, "repos add failed: {}", output.both());
        let added: serde_json::Value = serde_json::from_str(&output.stdout)?;
        added["webhook_secret"]
            .as_str()
            .map(str::to_string)
            .context("repos add --json printed no webhook_secret")
    }

    /// Builds of the cluster, newest first (from Postgres).
    pub async fn builds(&self) -> anyhow::Result<Vec<ocelot_core::model::Build>> {
        Ok(self
            .store
            .list_builds(&ocelot_core::store::BuildFilter {
                limit: 1000,
                ..Default::default()
            })
            .await?)
    }

    /// Waits (up to 30 s) until no container of `build_id` is left: a finished build's
    /// container is removed right after its result is recorded. Panics if one stays.
    pub async fn wait_containers_gone(&self, build_id: BuildId) {
        let gone = crate::wait_until(
            &format!("build {build_id}'s container to be removed"),
            Duration::from_secs(30),
            || async {
                self.containers_of_build(build_id)
                    .await
                    .ok()?
                    .is_empty()
                    .then_some(())
            },
        )
        .await;
        if let Err(error) = gone {
            panic!("container left behind: {error}");
        }
    }

    /// Containers (running or not) of this cluster's workers named after `build_id` (as a
    /// build names its container, also a warm one it took).
    pub async fn containers_of_build(&self, build_id: BuildId) -> anyhow::Result<Vec<String>> {
        let docker = bollard::Docker::connect_with_local_defaults()?
            .negotiate_version()
            .await?;
        let mut found = Vec::new();
        for worker_id in &self.worker_ids {
            let filters = std::collections::HashMap::from([
                (
                    "label".to_string(),
                    vec![format!("io.ocelot.worker-id={worker_id}")],
                ),
                (
                    "name".to_string(),
                    vec![ocelot_worker::build_name_filter(build_id)],
                ),
            ]);
            let containers = docker
                .list_containers(Some(
                    bollard::query_parameters::ListContainersOptionsBuilder::new()
                        .all(true)
                        .filters(&filters)
                        .build(),
                ))
                .await?;
            found.extend(containers.into_iter().filter_map(|c| c.id));
        }
        Ok(found)
    }

    /// Workspaces left under the workers' cache directories.
    pub fn leftover_workspaces(&self) -> anyhow::Result<Vec<PathBuf>> {
        let mut left = Vec::new();
        for entry in std::fs::read_dir(self.dir.path())? {
            left.extend(workspaces_in(&entry?.path()));
        }
        Ok(left)
    }
}

/// The build workspaces under a worker's cache directory (`workspaces/INSTANCE/build-…`).
pub fn workspaces_in(cache_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(instances) = std::fs::read_dir(cache_dir.join("workspaces")) else {
        return found;
    };
    for instance in instances.filter_map(Result::ok) {
        if let Ok(entries) = std::fs::read_dir(instance.path()) {
            found.extend(entries.filter_map(Result::ok).map(|e| e.path()));
        }
    }
    found
}

/// Build uids for one host worker, apart from every other worker of every test process on
/// this machine (by process id and a counter): `--host-build-uids`.
pub fn host_build_uids(concurrency: usize) -> ocelot_worker::UidRange {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let slot = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 32;
    let size = u32::try_from(concurrency.clamp(1, 16)).unwrap_or(16);
    let first = 1_000_000 + (std::process::id() % 20_000) * 512 + slot * 16;
    ocelot_worker::UidRange {
        first,
        last: first + size - 1,
    }
}
