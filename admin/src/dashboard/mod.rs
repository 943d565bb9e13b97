//! The web dashboard: a read-only page of the builds, a build's stages and live log, and the
//! workers, served by the admin on `--http-listen` (with `/metrics` and `/healthz`).
//!
//! It lives in the admin rather than in a binary of its own because it is a second face of
//! the same API: it reads through the RPC handlers (the same queries, the same repo limits of
//! the token) and follows a live build through the admin's shared log subscriptions (`watch`),
//! so it adds no connection to Postgres or NATS and no code path of its own to keep in step.
//!
//! - `session`: who is looking (an API token from a cookie or an `Authorization` header).
//! - `api`: the JSON the page reads.
//! - `live`: a build's events as Server-Sent Events, resumable with `Last-Event-ID`.
//! - `page`: the page itself (HTML, script, style, compiled in) and the security headers.

mod api;
mod json;
mod live;
mod page;
mod session;

use crate::state::AppState;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

/// The dashboard's routes.
pub(crate) fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(ocelot_core::metrics::PATH, ocelot_core::metrics::route())
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/me", get(session::me))
        .route("/api/builds", get(api::builds))
        .route("/api/builds/{id}", get(api::build))
        .route("/api/builds/{id}/log", get(api::log_page))
        .route("/api/builds/{id}/events", get(live::events))
        .route("/api/workers", get(api::workers))
        .layer(axum::middleware::map_response(page::security_headers))
        .with_state(state)
}

/// The dashboard's URL when `--dashboard-url` is not given: its listening address, when that
/// is one a browser can open (not `0.0.0.0` or `::`).
pub(crate) fn address_url(listener: Option<&tokio::net::TcpListener>) -> Option<String> {
    let address = listener?.local_addr().ok()?;
    (!address.ip().is_unspecified()).then(|| format!("http://{address}"))
}

/// Serves the dashboard on `listener` until `stop`.
pub(crate) fn spawn(
    state: AppState,
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "dashboard listening (also /metrics, /healthz)");
    let app = router(state);
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the dashboard stopped");
        }
    }))
}
