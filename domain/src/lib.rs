//! `ocelot-domain`: what Ocelot *is*, with no I/O (no database, bus, git or network), so the
//! CLI, every service and a local `ocelot exec` share one definition.
//!
//! - [`pipeline`]: the `ocelot.yml` model, parser and validator (original Ocelot format + timeouts).
//! - [`build_state`]: build and stage states, their transitions and their one text form.
//! - [`cancel`]: what a cancel request did.
//! - [`build_params`]: what a build is given from the shell (`--env`, `--force`, `--stage`).
//! - [`model`]: plain domain structs (repos, builds, stages, stored log lines, jobs).
//! - [`events`]: the events of a build's log (lines, stage transitions, result) and the
//!   log digest that proves a log arrived whole.
//! - [`ids`]: a build's attempt, an event's sequence number and the ids of builds and repos,
//!   with their one wire and database mapping each.
//! - [`wire`]: conversions between the domain types and the `ocelot.v1` protobuf types.
//! - [`auth`]: API tokens: format, hashing, scopes.
//! - [`schedule`]: when polls are due (interval or cron), with jitter and back-off.
//! - [`repo_url`]: the one comparable form of a repository URL.
//! - [`forge`]: the forge of a repo (GitHub, GitLab, Bitbucket, Gitea) and its status states.
//! - [`pull_progress`]: an image pull's progress as a line of the build's log.
//! - [`env_vars`], [`error_chain`]: names of environment variables; an error with its causes.

pub mod auth;
pub mod build_params;
pub mod build_state;
pub mod cancel;
pub mod env_vars;
pub mod error_chain;
pub mod events;
pub mod forge;
pub mod ids;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod pull_progress;
pub mod repo_url;
pub mod schedule;
pub mod wire;

pub use build_state::{BuildState, StageState};
