//! Plain domain structs: what the store returns and the services pass around.

use crate::build_state::{BuildState, StageState};
use crate::ids::{Attempt, BuildId, RepoId, Seq};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// A repository Ocelot builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub id: RepoId,
    pub name: String,
    pub url: String,
    pub default_branch: String,
    /// Whether builds of pull requests from forks get the repo's build secrets.
    pub secrets_for_forks: bool,
    /// Whether builds that name no image may run directly on `--executor host` workers
    /// (set by an admin; never for pull requests).
    pub allow_host: bool,
    /// The forge an admin set (`ocelot repos set --forge`); `None`: told by the URL's host.
    pub forge: Option<String>,
    /// The forge API's base URL an admin set; `None`: the forge's public API.
    pub forge_api_url: Option<String>,
    pub created_at: SystemTime,
}

/// How a build came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    /// `ocelot build` (or the API directly): always a new build.
    Manual,
    /// A webhook push to a branch.
    Push,
    /// A webhook push of a tag.
    Tag,
    /// A webhook pull (merge) request opened, updated or reopened.
    PullRequest,
    /// The poller saw a branch head move.
    Poll,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Manual => "manual",
            TriggerKind::Push => "push",
            TriggerKind::Tag => "tag",
            TriggerKind::PullRequest => "pull_request",
            TriggerKind::Poll => "poll",
        }
    }

    /// Automatic triggers are idempotent and honour `[skip ci]`; manual ones are neither.
    pub fn is_automatic(self) -> bool {
        self != TriggerKind::Manual
    }
}

/// The pull request a build is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestRef {
    pub number: i64,
    /// The branch it would merge into (the one `branches` filters on).
    pub base_branch: String,
    /// Whether its head comes from another repository (a fork): such a build gets no
    /// build secrets unless the repo opts in.
    pub from_fork: bool,
}

/// One build of one commit of one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub id: BuildId,
    pub repo_id: RepoId,
    pub repo_name: String,
    pub repo_url: String,
    /// The build's number within its repository (1, 2, ...).
    pub number: i64,
    pub commit: String,
    pub branch: String,
    pub trigger: String,
    pub state: BuildState,
    /// 0 until a worker claims the build; each claim adds one (the fence of later writes).
    pub attempt: Attempt,
    pub worker: Option<String>,
    /// The routing tag its job went to (`jobs.<tag>`).
    pub tag: String,
    pub reason: Option<String>,
    pub queued_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub line_count: Option<i64>,
    pub log_sha256: Option<String>,
    /// The branch head before the push or poll that triggered the build, when known.
    pub previous_commit: Option<String>,
    pub pull_request: Option<PullRequestRef>,
    /// The tag a tag push built.
    pub git_tag: Option<String>,
    /// A pull request from a fork, and its repo does not give forks its secrets: the worker
    /// injects no `env` or `registry` credentials.
    pub withhold_secrets: bool,
    /// Set by `ocelot kill` of a running build: who asked.
    pub cancel_requested_by: Option<String>,
    /// What it was given from the shell or the API (`--env`, `--force`, `--stage`).
    pub params: crate::build_params::BuildParams,
    /// Follows the build through the services' logs (`trace_id=…`); `None` for builds of
    /// earlier releases.
    pub trace_id: Option<String>,
}

/// A repository's webhook secret (shown once, when set or generated).
pub type WebhookSecret = String;

/// A polling entry: which branches of a repo to watch and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    pub id: i64,
    pub repo_id: RepoId,
    pub repo_name: String,
    pub repo_url: String,
    /// Glob patterns of branch names (`main`, `release/*`).
    pub branches: Vec<String>,
    pub schedule: PollSchedule,
    pub build_now: bool,
    pub next_due: SystemTime,
    pub last_polled_at: Option<SystemTime>,
    pub last_error: Option<String>,
    pub failures: i32,
    /// Branch → commit seen at the last poll; `None` before the first poll.
    pub heads: Option<std::collections::BTreeMap<String, String>>,
}

/// When a poll is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollSchedule {
    Every(std::time::Duration),
    /// A standard 5-field cron expression.
    Cron(String),
}

/// A stage of one attempt of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRecord {
    pub index: i32,
    pub name: String,
    pub state: StageState,
    pub exit_code: Option<i32>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Sequence numbers of the stage's started and finished events in the attempt's log.
    pub start_seq: Option<Seq>,
    pub end_seq: Option<Seq>,
    /// The stages it needs (`needs:`); empty when the stages ran in order.
    pub needs: Vec<String>,
}

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Written by Ocelot itself (checkout, errors, skipped stages).
    System,
}

/// A log line as stored in Postgres.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    pub seq: Seq,
    pub stage: String,
    pub stream: LogStream,
    pub text: String,
    pub at: SystemTime,
}

/// The message on the job queue: a pointer to the build row, which holds the rest, and the
/// build's trace id (for the worker's log from the moment it pulls the job, before the
/// claim reads the row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub build_id: BuildId,
    /// Absent in jobs queued by earlier releases (the worker reads the row's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the Unix epoch (the epoch itself for negative values).
pub fn from_unix_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod job_tests {
    use super::*;

    /// Jobs queued by an earlier release (no trace id) are still read, and a job without a
    /// trace id is written as before.
    #[test]
    fn job_messages_stay_wire_compatible() {
        let old: Job = serde_json::from_str(r#"{"build_id":7}"#).unwrap();
        assert_eq!(old.build_id, BuildId::from(7));
        assert_eq!(old.trace_id, None);
        assert_eq!(serde_json::to_string(&old).unwrap(), r#"{"build_id":7}"#);
        let new = Job {
            build_id: BuildId::from(7),
            trace_id: Some("0123456789abcdef".into()),
        };
        let text = serde_json::to_string(&new).unwrap();
        assert_eq!(text, r#"{"build_id":7,"trace_id":"0123456789abcdef"}"#);
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), new);
    }
}
