//! `ocelot-core`: what every Ocelot service shares.
//!
//! - [`auth`]: API tokens: generation, hashing, scopes.
//! - [`pipeline`]: the `ocelot.yml` model and validator (original Ocelot format + timeouts).
//! - [`build_state`]: build and stage states, their transitions and their one text form.
//! - [`model`]: plain domain structs (repos, builds, stages, stored log lines, jobs).
//! - [`events`]: the events of a build's log (lines, stage transitions, result) and the
//!   log digest that proves a log arrived whole.
//! - [`wire`]: conversions between the domain types and the `ocelot.v1` protobuf types.
//! - [`store`]: the Postgres store (pool, embedded migrations under an advisory lock, one
//!   module per table).
//! - [`queue`]: NATS JetStream: the job work-queue (subject per tag) and the per-build log bus.
//! - [`git`]: ls-remote, a mirror cache, reading a file at a commit, checking a commit out.
//! - [`schedule`]: when polls are due (interval or cron), with jitter and back-off.
//! - [`secrets`]: credentials sealed at rest under a master key, and log masking; or kept in
//!   Vault KV v2.
//! - [`discovery`]: registration in Consul with a TTL check, and finding a service there.
//! - [`trigger`]: the one function that queues a build (CLI, and later webhooks and polls).
//! - [`settings`], [`env_vars`], [`telemetry`], [`shutdown`]: what every binary needs.

pub mod auth;
pub mod build_state;
pub mod discovery;
pub mod env_vars;
pub mod error_chain;
pub mod events;
pub mod git;
pub mod health;
pub mod model;
pub mod pipeline;
pub mod queue;
pub mod schedule;
pub mod secrets;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod trigger;
pub mod wire;

pub use build_state::{BuildState, StageState};
