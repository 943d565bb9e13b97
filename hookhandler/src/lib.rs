//! `ocelot-hookhandler`: the HTTP endpoint for VCS webhooks. A request is rate-limited,
//! matched to its repo (from the few fields that name it), verified over its raw body with
//! the repo's secret, then parsed, recorded once (by delivery id) and answered as soon as the
//! record is committed (deliveries arriving together share one commit); the recorded
//! deliveries are the durable queue that the processors turn into builds through
//! `core::trigger::queue_build`, off the request path.
//! Stateless: any number can run against one Postgres.
//!
//! - [`run`]: connect, serve on a bound listener and process deliveries until shutdown.
//! - [`app`]: the axum router (`POST /hooks/{provider}`, `GET /badge/REPO/BRANCH.svg`,
//!   `GET /healthz`, `GET /readyz`, `GET /metrics`: Prometheus, [`ocelot_core::metrics`]).
//!
//! A delivery's build gets its trace id at the delivery's receipt ("webhook accepted"
//! `trace_id=…`), kept with the delivery and given to the trigger ([`ocelot_core::trace`]).
//! - `badge`: a branch's latest result as an SVG badge.
//! - `providers`: parsing and signature verification per provider.
//! - `handler`: one request, from bytes to status code.
//! - `trigger`: what a delivery asks to build, as stored.
//! - `record`: deliveries recorded by group commit, answered once durable (`group_commit`).
//! - `processor`: recorded deliveries → builds, with retries.
//! - `rate_limit`: per-source limits.
//! - `secret`: the secret a delivery is verified with (a random stand-in for unknown repos).

mod badge;
mod group_commit;
mod handler;
mod processor;
pub mod providers;
mod rate_limit;
mod record;
mod secret;
mod state;
mod trigger;

use anyhow::Context;
use clap::Parser;
use ocelot_core::connect::{Connections, cache_dir, connect};
use ocelot_core::discovery::consul::{ConsulArgs, ServiceDefinition, deregister};
use ocelot_core::env_vars;
use ocelot_core::secrets::select::SecretStoreArgs;
use ocelot_core::settings::{DatabaseArgs, LogArgs, NatsArgs, SecretsArgs};
use state::AppState;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use providers::Provider;

/// The hookhandler's configuration: flags, or the environment variables named in `--help`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ocelot-hookhandler",
    version,
    about = "Ocelot's webhook endpoint"
)]
pub struct Settings {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// The master key: reading ocelot.yml from private repos needs their credentials
    #[command(flatten)]
    pub secrets: SecretsArgs,
    #[command(flatten)]
    pub secret_store: SecretStoreArgs,
    #[command(flatten)]
    pub consul: ConsulArgs,
    /// Address to serve webhooks on
    #[arg(long, env = env_vars::OCELOT_HOOKS_LISTEN, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the git mirrors used to read ocelot.yml (default: under the temp dir)
    #[arg(long, env = env_vars::OCELOT_CACHE_DIR)]
    pub cache_dir: Option<PathBuf>,
    /// Largest accepted request body in bytes (larger: 413)
    #[arg(long, env = env_vars::OCELOT_MAX_BODY_BYTES, default_value_t = 5 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Requests per second allowed from one source address (more: 429 with Retry-After)
    #[arg(long, env = env_vars::OCELOT_RATE_LIMIT, default_value = "50")]
    pub rate_limit: NonZeroU32,
    /// Requests one source may send in a burst
    #[arg(long, env = env_vars::OCELOT_RATE_BURST, default_value = "200")]
    pub rate_burst: NonZeroU32,
    /// Deliveries turned into builds at once (0: only record deliveries, for an ingest-only
    /// node whose deliveries other hookhandlers process)
    #[arg(long, env = env_vars::OCELOT_PROCESSORS, default_value_t = 4)]
    pub processors: usize,
}

/// `/readyz`: 200 while Postgres and NATS answer, else 503 naming what is down (a load
/// balancer stops sending deliveries; providers retry them later).
async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (http::StatusCode, String) {
    let problems =
        ocelot_core::health::dependency_problems(&state.store, &state.bus, Duration::from_secs(2))
            .await;
    if problems.is_empty() {
        (http::StatusCode::OK, "ready\n".to_string())
    } else {
        (
            http::StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
    }
}

/// The axum router for `state`.
pub(crate) fn app(state: AppState, max_body_bytes: usize) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/hooks/{provider}", post(handler::receive))
        .route("/badge/{*path}", get(badge::serve))
        .route_layer(axum::middleware::from_fn_with_state(
            state.limiter.clone(),
            rate_limit::limit,
        ))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route(ocelot_core::metrics::PATH, ocelot_core::metrics::route())
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .with_state(state)
}

/// Connects to Postgres and NATS, then serves webhooks on `listener` and turns recorded
/// deliveries into builds until `shutdown` resolves.
pub async fn run(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let connections = connect(
        &settings.database,
        &settings.secrets,
        &settings.secret_store,
        &settings.nats,
        ocelot_core::queue::Setup::PublishOnly,
    )
    .await?;
    let trigger = connections.trigger(cache_dir(settings.cache_dir.clone(), "hookhandler"));
    let Connections { store, bus, .. } = connections;
    let master_key = settings.secrets.load().context("loading the master key")?;
    match &master_key {
        Some(key) => {
            ocelot_core::secrets::webhook::seal_plain_secrets(&store, key)
                .await
                .context("sealing the webhook secrets stored in plain text")?;
        }
        None => tracing::warn!(
            "no master key: deliveries for repos whose webhook secret is sealed are refused (set OCELOT_MASTER_KEY_FILE)"
        ),
    }
    let secrets =
        Arc::new(secret::HookSecrets::new(master_key).context("preparing webhook verification")?);
    // the deliveries' group commits have connections of their own: they never wait behind
    // the requests' repo lookups for one of the pool
    let recorder = record::start(
        settings
            .database
            .connect()
            .await
            .context("connecting to Postgres to record deliveries")?,
    );
    let state = AppState {
        store: store.clone(),
        bus: bus.clone(),
        limiter: Arc::new(rate_limit::SourceLimiter::new(
            settings.rate_limit,
            settings.rate_burst,
        )),
        recorded: Arc::new(Notify::new()),
        recorder,
        secrets,
    };
    let stop = CancellationToken::new();
    let mut processors = tokio::task::JoinSet::new();
    for _ in 0..settings.processors {
        processors.spawn(processor::run(
            processor::Processor {
                store: store.clone(),
                trigger: trigger.clone(),
                recorded: state.recorded.clone(),
            },
            stop.clone(),
        ));
    }
    let address = listener
        .local_addr()
        .context("reading the listener's address")?;
    tracing::info!(%address, "hookhandler listening");
    let registration = settings
        .consul
        .register(ServiceDefinition::listening("ocelot-hookhandler", address))
        .await
        .context("registering in Consul")?;
    let router =
        app(state, settings.max_body_bytes).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving webhooks");
    stop.cancel();
    while processors.join_next().await.is_some() {}
    deregister(registration).await;
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
}
