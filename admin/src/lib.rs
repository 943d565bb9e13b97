//! `ocelot-admin`: the gRPC server the `ocelot` CLI talks to. Stateless: any number can run
//! against one Postgres and one NATS.
//!
//! - [`run`]: connect, serve the API and health on a bound listener until shutdown.
//! - `grpc`: the tonic adapters (one per RPC group) and the router.
//! - `watch`: replays a build's log from its first line, then follows it live.
//! - `sweeper`: re-publishes queued builds whose job never reached NATS.
//! - [`retention`]: deletes the logs of builds that finished longer ago than `--keep-logs`,
//!   and expired artifacts (and the objects of removed ones) from the storage.
//! - `grpc::artifacts`: lists a build's artifacts, streams one from the storage.
//! - `cancel`: `ocelot kill`: cancel a queued build, or stop a running one and wait for it.
//! - `pending`: why a queued build waits (from the worker registry).
//! - `error`: the one mapping from admin errors to gRPC statuses.
//! - [`notifier`]: sends the outbox's notifications (Slack, webhooks, e-mail) and commit statuses.
//! - [`forge`]: the forges' APIs: commit statuses, webhooks.

mod auth;
mod cancel;
mod dashboard;
mod error;
pub mod forge;
mod grpc;
pub mod notifier;
mod pending;
pub mod retention;
mod state;
mod sweeper;
mod watch;

use anyhow::Context;
use clap::Parser;
use ocelot_core::connect::{Connections, cache_dir, connect};
use ocelot_core::discovery::consul::{ConsulArgs, ServiceDefinition, deregister};
use ocelot_core::env_vars;
use ocelot_core::secrets::select::SecretStoreArgs;
use ocelot_core::settings::{DatabaseArgs, LogArgs, NatsArgs, SecretsArgs};
use ocelot_core::storage::{Storage, StorageArgs};
use state::AppState;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// The admin's configuration: flags, or the environment variables named in `--help`.
#[derive(Debug, Clone, Parser)]
#[command(name = "ocelot-admin", version, about = "Ocelot's admin gRPC server")]
pub struct Settings {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub secrets: SecretsArgs,
    #[command(flatten)]
    pub secret_store: SecretStoreArgs,
    #[command(flatten)]
    pub consul: ConsulArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address to serve the gRPC API on
    #[arg(long, env = env_vars::OCELOT_ADMIN_LISTEN, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Address of the web dashboard (with `/metrics` and `/healthz`); not served when not set
    #[arg(long, env = env_vars::OCELOT_ADMIN_HTTP_LISTEN)]
    pub http_listen: Option<SocketAddr>,
    /// The public URL of the web dashboard (`https://ci.example`), as people reach it (behind
    /// a proxy, say); `ocelot version` shows it. Not set: none is shown
    #[arg(long, env = env_vars::OCELOT_DASHBOARD_URL, value_parser = parse_dashboard_url)]
    pub dashboard_url: Option<String>,
    /// PEM certificate chain: serve the API over TLS (needs --tls-key)
    #[arg(long, env = env_vars::OCELOT_TLS_CERT, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = env_vars::OCELOT_TLS_KEY, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Directory of the git mirrors used to resolve commits and read ocelot.yml
    /// (default: a folder under the system's temporary directory)
    #[arg(long, env = env_vars::OCELOT_CACHE_DIR)]
    pub cache_dir: Option<PathBuf>,
    /// How long the log of a finished build is kept (`90d`, `12h`): older logs are deleted
    /// in the background, in batches; the builds' rows and results stay. `0` or `forever`:
    /// keep every log
    #[arg(long, env = env_vars::OCELOT_KEEP_LOGS, value_parser = retention::parse_keep_logs, default_value = "90d")]
    pub keep_logs: retention::KeepLogs,
    #[command(flatten)]
    pub notify: notifier::NotifierArgs,
    /// Without a command: serve the API
    #[command(subcommand)]
    pub command: Option<AdminCommand>,
}

/// `--dashboard-url`: an `http(s)://` URL, without a trailing `/`.
fn parse_dashboard_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{text}` is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{text}` is not an http:// or https:// URL"));
    }
    Ok(url.to_string())
}

/// What `ocelot-admin` does besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Manage API tokens in the database directly (for the first admin token)
    #[command(subcommand)]
    Token(TokenCommand),
    /// Re-encrypt every credential under a new master key (the current one comes from
    /// --master-key-file / OCELOT_MASTER_KEY_FILE / OCELOT_MASTER_KEY); all or nothing
    RotateKey {
        /// The new key (64 hex characters, mode 0600)
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

/// Runs `rotate-key`.
pub async fn rotate_key(settings: &Settings, new_key_file: &std::path::Path) -> anyhow::Result<()> {
    use ocelot_core::secrets::cipher::MasterKey;
    anyhow::ensure!(
        settings.secret_store.secret_store == ocelot_core::secrets::select::SecretBackend::Postgres,
        "rotate-key re-encrypts the Postgres credential store; Vault keeps its own encryption keys (`vault operator rotate`)"
    );
    let old = settings
        .secrets
        .load()
        .context("loading the current master key")?
        .context("no current master key: set OCELOT_MASTER_KEY_FILE or OCELOT_MASTER_KEY")?;
    let new = MasterKey::from_file(new_key_file).context("loading the new master key")?;
    anyhow::ensure!(old.id() != new.id(), "the new key is the current key");
    let store = settings
        .database
        .connect()
        .await
        .context("connecting to Postgres")?;
    // webhook secrets first: a rotation stopped between the two steps can be run again
    // (secrets already under the new key are skipped)
    let webhooks = ocelot_core::secrets::webhook::reseal(&store, &old, &new)
        .await
        .context("re-encrypting the webhook secrets (nothing was changed)")?;
    let count = ocelot_core::secrets::rotate_master_key(&store, &old, &new)
        .await
        .context("re-encrypting the credentials (nothing was changed; the webhook secrets are already under the new key: run rotate-key again)")?;
    eprintln!("re-encrypted {webhooks} webhook secret(s)");
    eprintln!(
        "re-encrypted {count} credential(s) under key {}; now give the admin and every worker OCELOT_MASTER_KEY_FILE={}",
        new.id(),
        new_key_file.display()
    );
    Ok(())
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown once)
    Create {
        #[arg(long)]
        name: String,
        /// read, trigger or admin
        #[arg(long, default_value = "admin")]
        scope: ocelot_core::auth::TokenScope,
        /// Limit the token to these repos: comma-separated glob patterns over repo names
        /// (`team/*,other/app`). Default: every repo
        #[arg(long)]
        repos: Option<String>,
    },
    /// List tokens (never their values)
    List,
    /// Revoke a token
    Revoke { name: String },
}

/// Runs a token command against the database.
pub async fn token_command(settings: &Settings, command: &TokenCommand) -> anyhow::Result<()> {
    let store = settings
        .database
        .connect()
        .await
        .context("connecting to Postgres")?;
    match command {
        TokenCommand::Create { name, scope, repos } => {
            let repos = match repos {
                Some(list) => ocelot_core::auth::RepoScope::parse_list(list)?,
                None => ocelot_core::auth::RepoScope::all(),
            };
            let token = store.create_scoped_token(name, *scope, &repos).await?;
            eprintln!("token `{name}` ({scope}) created; it is shown once:");
            #[allow(clippy::print_stdout)]
            {
                println!("{token}");
            }
        }
        TokenCommand::List => {
            for token in store.list_tokens().await? {
                let state = if token.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                eprintln!(
                    "{:<24} {:<8} {state:<8} {}",
                    token.name, token.scope, token.repos
                );
            }
        }
        TokenCommand::Revoke { name } => {
            store.revoke_token(name).await?;
            eprintln!("token `{name}` revoked");
        }
    }
    Ok(())
}

/// Connects to Postgres (applying migrations) and NATS (creating the streams), then serves
/// the API on `listener`, and the dashboard on `--http-listen` when set, until `shutdown`
/// resolves.
pub async fn run(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let http = match settings.http_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (--http-listen)"))?,
        ),
        None => None,
    };
    run_with_http(settings, listener, http, shutdown).await
}

/// [`run`], with the dashboard's listener bound by the caller (tests bind port 0).
pub async fn run_with_http(
    settings: Settings,
    listener: tokio::net::TcpListener,
    http: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = grpc::tls_identity(settings.tls_cert.as_deref(), settings.tls_key.as_deref())?;
    let connections = connect(
        &settings.database,
        &settings.secrets,
        &settings.secret_store,
        &settings.nats,
        ocelot_core::queue::Setup::Streams,
    )
    .await?;
    let trigger = connections.trigger(cache_dir(settings.cache_dir, "admin"));
    let Connections {
        store,
        secrets,
        bus,
    } = connections;
    let storage_args = settings
        .storage
        .clone()
        .with_credential(&secrets)
        .await
        .context("reading the storage's key")?;
    let storage = Storage::open(&storage_args).context("opening the artifact storage")?;
    tracing::info!(storage = storage.location(), "artifact storage");
    let master_key = settings.secrets.load().context("loading the master key")?;
    if let Some(key) = &master_key {
        ocelot_core::secrets::webhook::seal_plain_secrets(&store, key)
            .await
            .context("sealing the webhook secrets stored in plain text")?;
    }
    let state = AppState {
        dashboard_url: settings
            .dashboard_url
            .clone()
            .or_else(|| dashboard::address_url(http.as_ref())),
        store,
        live: std::sync::Arc::new(watch::live::LiveLogs::new(bus.clone())),
        bus,
        secrets,
        trigger,
        master_key,
        storage,
    };
    let address = listener
        .local_addr()
        .context("reading the listener's address")?;
    tracing::info!(%address, "admin listening");
    let sweeper_stop = CancellationToken::new();
    let sweeper = tokio::spawn(sweeper::run(state.clone(), sweeper_stop.clone()));
    let retention = tokio::spawn(retention::run(
        state.store.clone(),
        settings.keep_logs,
        sweeper_stop.clone(),
    ));
    let artifact_retention = tokio::spawn(retention::run_artifacts(
        state.store.clone(),
        state.storage.clone(),
        sweeper_stop.clone(),
    ));
    let notifier = tokio::spawn(notifier::run(
        state.store.clone(),
        state.secrets.clone(),
        settings.notify.clone(),
        sweeper_stop.clone(),
    ));
    let registration = settings
        .consul
        .register(ServiceDefinition::listening("ocelot-admin", address))
        .await
        .context("registering in Consul")?;
    let dashboard = match http {
        Some(http) => Some(dashboard::spawn(state.clone(), http, sweeper_stop.clone())?),
        None => None,
    };
    let served = grpc::serve(state, listener, tls, shutdown).await;
    deregister(registration).await;
    sweeper_stop.cancel();
    if let Some(dashboard) = dashboard {
        let _ = dashboard.await;
    }
    let _ = sweeper.await;
    let _ = retention.await;
    let _ = artifact_retention.await;
    let _ = notifier.await;
    served
}

#[cfg(test)]
mod flag_tests {
    /// Every flag has its own name and its own environment variable (clap checks it when
    /// the binary starts: a clash would stop the service before it does anything).
    #[test]
    fn the_flags_are_consistent() {
        <super::Settings as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn the_dashboard_url_is_an_http_url() {
        assert_eq!(
            super::parse_dashboard_url("https://ci.example/").as_deref(),
            Ok("https://ci.example")
        );
        assert_eq!(
            super::parse_dashboard_url("http://127.0.0.1:8081/ocelot").as_deref(),
            Ok("http://127.0.0.1:8081/ocelot")
        );
        for bad in ["ci.example", "ftp://ci.example", "https://", "https://a b"] {
            assert!(super::parse_dashboard_url(bad).is_err(), "{bad}");
        }
    }
}
