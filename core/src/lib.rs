//! `ocelot-core`: the adapters every Ocelot service shares, around the I/O-free domain
//! (`ocelot-domain`, re-exported here so services name one crate).
//!
//! - [`store`]: the Postgres store (pool, embedded migrations under an advisory lock, one
//!   module per table).
//! - [`queue`]: NATS JetStream: the job work-queue (subject per tag), the per-build log bus,
//!   cancel requests and the worker registry.
//! - [`git`]: ls-remote, a mirror cache, reading a file at a commit, checking a commit out.
//! - [`secrets`]: credentials sealed at rest under a master key, and log masking; or kept in
//!   Vault KV v2.
//! - [`storage`]: the object store of artifacts (a local directory or S3).
//! - [`trigger`]: the one way a build is queued (CLI, webhooks, polls, reruns).
//! - [`metrics`]: the Prometheus metrics every service records and serves at `/metrics`.
//! - [`trace`]: the trace id that follows a build through the services' logs.
//! - [`connect`]: what every service connects to at start-up.
//! - [`health`], [`settings`], [`telemetry`], [`shutdown`]: what every service binary needs.
//!
//! Consul lives in `ocelot-discovery` (re-exported as [`discovery`]).

pub use ocelot_discovery as discovery;
pub use ocelot_domain::{
    BuildState, StageState, auth, build_params, build_state, cancel, env_vars, error_chain, events,
    forge, ids, model, notify, pipeline, repo_url, schedule, wire,
};

pub mod connect;
pub mod git;
pub mod health;
pub mod metrics;
pub mod queue;
pub mod secrets;
pub mod settings;
pub mod shutdown;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod trigger;
