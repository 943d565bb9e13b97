//! Prometheus metrics: every service records through the functions of [`catalog`] (one place
//! names every metric, its labels and its help text) and serves them in the Prometheus text
//! format at `/metrics` ([`route`]): the worker and the poller on `--health-listen`
//! ([`crate::health`]), the hookhandler on its own address, the admin on its HTTP listener.
//!
//! Built on the `metrics` facade and `metrics-exporter-prometheus` as a renderer only (no HTTP
//! listener, no push gateway). Why these rather than `prometheus-client`: the facade's
//! recorder is global, so a metric is recorded from wherever its event happens (the store's
//! error mapping, the worker's log writer, a webhook handler) without a registry threaded
//! through every service's state, and the exporter's renderer drops into the services' own
//! axum routers. Both crates are maintained by the metrics-rs project.
//!
//! The recorder is installed once per process ([`install`], idempotent: the tests start many
//! services in one process, and every recording function installs it first, so a service
//! needs no start-up call). A recorder installed by someone else is left alone: then nothing
//! is recorded here and `/metrics` says so.
//!
//! Labels are bounded: states, trigger kinds, providers, HTTP status codes, routing tags (set
//! by the operator), check and error kinds; never a build id, a branch or a repository.

pub mod catalog;

pub use catalog::*;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Where every service serves its metrics.
pub const PATH: &str = "/metrics";

/// The buckets of every `*_seconds` histogram: from a tenth of a second to an hour.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// How often histograms are folded into their buckets when nobody scrapes (a scrape folds
/// them too), so that samples never pile up in memory.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder, once; later calls (another service in the same process)
/// return at once. `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(install_recorder).as_ref()
}

fn install_recorder() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new();
    let builder = match builder
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), &DURATION_BUCKETS)
    {
        Ok(builder) => builder,
        Err(error) => {
            tracing::warn!(%error, "metrics: duration buckets refused; durations are summaries");
            PrometheusBuilder::new()
        }
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(error) = metrics::set_global_recorder(recorder) {
        tracing::warn!(%error, "metrics: another recorder is installed; /metrics stays empty");
        return None;
    }
    catalog::describe_all();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_string())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "metrics: no upkeep thread; histograms are folded at each scrape only");
    }
    Some(handle)
}

/// Every metric recorded so far in this process, in the Prometheus text format.
pub fn render() -> String {
    match install() {
        Some(handle) => handle.render(),
        None => {
            "# another metrics recorder is installed in this process: nothing to show\n".to_string()
        }
    }
}

/// The `/metrics` handler: [`render`] with the Prometheus content type.
pub async fn handler() -> impl axum::response::IntoResponse {
    ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], render())
}

/// `GET` [`handler`], to mount at [`PATH`] on any router:
/// `router.route(metrics::PATH, metrics::route())`.
pub fn route<S>() -> axum::routing::MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    axum::routing::get(handler)
}
