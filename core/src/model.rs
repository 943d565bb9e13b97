//! Plain domain structs: what the store returns and the services pass around.

use crate::build_state::{BuildState, StageState};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// A repository Ocelot builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub default_branch: String,
    pub created_at: SystemTime,
}

/// How a build came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    /// `ocelot build` (or the API directly).
    Manual,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Manual => "manual",
        }
    }
}

/// One build of one commit of one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub id: i64,
    pub repo_id: i64,
    pub repo_name: String,
    pub repo_url: String,
    /// The build's number within its repository (1, 2, ...).
    pub number: i64,
    pub commit: String,
    pub branch: String,
    pub trigger: String,
    pub state: BuildState,
    /// 0 until a worker claims the build; each claim adds one (the fence of later writes).
    pub attempt: i32,
    pub worker: Option<String>,
    /// The routing tag its job went to (`jobs.<tag>`).
    pub tag: String,
    pub reason: Option<String>,
    pub queued_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub line_count: Option<i64>,
    pub log_sha256: Option<String>,
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
    pub start_seq: Option<i64>,
    pub end_seq: Option<i64>,
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

impl LogStream {
    pub fn as_i16(self) -> i16 {
        match self {
            LogStream::Stdout => 1,
            LogStream::Stderr => 2,
            LogStream::System => 3,
        }
    }

    pub fn from_i16(value: i16) -> LogStream {
        match value {
            1 => LogStream::Stdout,
            2 => LogStream::Stderr,
            _ => LogStream::System,
        }
    }
}

/// A log line as stored in Postgres.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    pub seq: i64,
    pub stage: String,
    pub stream: LogStream,
    pub text: String,
    pub at: SystemTime,
}

/// The message on the job queue: a pointer to the build row, which holds the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub build_id: i64,
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
