//! `ocelot.yml`: the build file format of the original Ocelot CI, parsed
//! with line/column positions and validated, reporting every error at once.
//!
//! ```yaml
//! image: maven:3.5.2
//! branches: [master, "release/.*"]
//! stages:
//!   - name: build
//!     script: [mvn clean install]
//!   - name: deploy
//!     triggers:
//!       - \branch master||develop and \filepath src/main
//!     script: [./deploy.sh]
//! ```
//!
//! [`parse`] returns a [`Pipeline`] or [`PipelineErrors`];
//! [`Pipeline::branch_matches`] and [`Stage::should_run`] decide what runs.

mod artifacts;
mod cache;
mod condition;
mod error;
mod graph;
mod matrix;
mod model;
mod parse;
mod reader;
mod resources;
mod selection;
mod services;

#[cfg(test)]
mod tests;

pub use artifacts::{ArtifactPattern, ArtifactWhen, Artifacts};
pub use cache::{Cache, KeyPart, KeyTemplate, KeyValues, MAX_CACHES, MAX_KEY_BYTES};
pub use condition::{ConditionError, Join, SectionKind, TriggerExpr, TriggerSection};
pub use error::{PipelineError, PipelineErrors};
pub use matrix::{MAX_MATRIX_JOBS, MatrixJob, job_name};
pub use model::{
    BranchPattern, EmailNotify, EnvVar, Notify, NotifyOn, Pipeline, SlackNotify, Stage,
    StageCondition, TriggerContext, WebhookNotify,
};
pub use parse::parse;
pub use selection::UnknownStage;
pub use services::{
    DEFAULT_WAIT_TIMEOUT, MAX_SERVICES, Service, ServiceCommand, ServiceWait, check_service_name,
    share_limits,
};

/// The build file's name, at the root of the commit.
pub const FILE_NAME: &str = "ocelot.yml";
/// The largest build file any service reads (its size comes from the git object's header,
/// before its content): a bigger one is refused, never loaded.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
pub use resources::{
    Clamped, Limits, NANO_CPUS_PER_CPU, Resources, format_cpus, format_memory, parse_cpus,
    parse_memory, parse_pids,
};

/// Parses a duration as `ocelot.yml` writes them (`30m`, `1h 30m`, `90s`); zero is refused.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(duration) if duration.is_zero() => {
            Err(format!("`{text}` is zero; a duration must be positive"))
        }
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!(
            "`{text}` is not a duration like `30s`, `10m` or `1h 30m`: {error}"
        )),
    }
}
