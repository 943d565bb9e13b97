//! Readiness: whether the dependencies every service needs answer now. The admin's gRPC
//! health service, the hookhandler's `/readyz` and the worker's back-pressure report it.

use crate::queue::Bus;
use crate::store::Store;
use std::time::Duration;

/// What is wrong with Postgres and NATS now, one entry per problem (empty: ready).
pub async fn dependency_problems(store: &Store, bus: &Bus, timeout: Duration) -> Vec<String> {
    dependency_problems_by_kind(store, bus, timeout)
        .await
        .into_iter()
        .map(|(_, problem)| problem)
        .collect()
}

/// A dependency every service needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Postgres,
    Nats,
}

/// [`dependency_problems`], each with the dependency it is about.
pub async fn dependency_problems_by_kind(
    store: &Store,
    bus: &Bus,
    timeout: Duration,
) -> Vec<(Dependency, String)> {
    let mut problems = Vec::new();
    match tokio::time::timeout(timeout, store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => problems.push((
            Dependency::Postgres,
            format!("Postgres unreachable: {error}"),
        )),
        Err(_) => problems.push((
            Dependency::Postgres,
            format!("Postgres does not answer within {timeout:?}"),
        )),
    }
    if !bus.is_connected() {
        problems.push((Dependency::Nats, "NATS disconnected".to_string()));
    }
    problems
}

/// What a service says about its readiness: the problems now (empty: ready).
pub type Probe = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send>>
        + Send
        + Sync,
>;

/// `--health-listen`: where a service without an API of its own (worker, poller) serves
/// `/healthz` (liveness: 200 while the process runs), `/readyz` (200, or 503 naming what
/// is wrong) and `/metrics` (Prometheus, [`crate::metrics`]).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HealthArgs {
    /// Address of the health and metrics endpoints (`/healthz`, `/readyz`, `/metrics`);
    /// none when not set
    #[arg(long, env = crate::env_vars::OCELOT_HEALTH_LISTEN)]
    pub health_listen: Option<std::net::SocketAddr>,
}

impl HealthArgs {
    /// Binds the health address, when one is set: the binaries bind it before the service
    /// starts and hand the listener to its `run` (tests hand over one bound to port 0).
    pub async fn bind(&self) -> std::io::Result<Option<tokio::net::TcpListener>> {
        let Some(address) = self.health_listen else {
            return Ok(None);
        };
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => Ok(Some(listener)),
            Err(error) => Err(std::io::Error::new(
                error.kind(),
                format!("cannot listen on {address} (--health-listen): {error}"),
            )),
        }
    }
}

/// Serves the health endpoints on `listener`, when there is one, until `stop`.
pub fn spawn(
    listener: Option<tokio::net::TcpListener>,
    probe: Probe,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(listener) = listener else {
        return Ok(None);
    };
    let address = listener.local_addr()?;
    tracing::info!(%address, "health endpoints: /healthz, /readyz, /metrics");
    Ok(Some(tokio::spawn(serve(listener, probe, stop))))
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    probe: Probe,
    stop: tokio_util::sync::CancellationToken,
) {
    use axum::routing::get;
    crate::metrics::install();
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(crate::metrics::PATH, crate::metrics::route())
        .route(
            "/readyz",
            get(move || {
                let probe = probe.clone();
                async move {
                    let problems = probe().await;
                    if problems.is_empty() {
                        (http::StatusCode::OK, "ready\n".to_string())
                    } else {
                        (
                            http::StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: {}\n", problems.join("; ")),
                        )
                    }
                }
            }),
        );
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await;
    if let Err(error) = served {
        tracing::warn!(%error, "the health endpoints stopped");
    }
}
