//! The events of a build's log, as published on the log bus and replayed to watchers: the
//! attempt's start, its lines, stage transitions and the result. Every event of an attempt
//! carries a sequence number (1, 2, ...), and the result carries the [`LogDigest`] of the
//! attempt's lines so a reader can prove it saw the whole log.

use crate::build_state::{BuildState, StageState};
use crate::ids::{Attempt, BuildId, Seq};
use crate::model::LogStream;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildEvent {
    pub build_id: BuildId,
    pub attempt: Attempt,
    pub seq: Seq,
    pub at_ms: i64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    AttemptStarted {
        worker: String,
        commit: String,
        branch: String,
        stages: Vec<String>,
    },
    Line {
        stage: String,
        stream: LogStream,
        text: String,
    },
    StageStarted {
        index: u32,
        name: String,
    },
    StageFinished {
        index: u32,
        name: String,
        state: StageState,
        exit_code: Option<i32>,
        duration_ms: i64,
    },
    Result {
        state: BuildState,
        reason: String,
        duration_ms: i64,
        line_count: u64,
        log_sha256: String,
    },
}

impl EventKind {
    /// The event's `type` tag, as in its JSON form (`line`, `stage_started`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::AttemptStarted { .. } => "attempt_started",
            EventKind::Line { .. } => "line",
            EventKind::StageStarted { .. } => "stage_started",
            EventKind::StageFinished { .. } => "stage_finished",
            EventKind::Result { .. } => "result",
        }
    }
}

impl BuildEvent {
    pub fn is_result(&self) -> bool {
        matches!(self.kind, EventKind::Result { .. })
    }

    pub fn position(&self) -> Position {
        Position {
            attempt: self.attempt,
            seq: self.seq,
        }
    }
}

/// Where an event stands in a build's log: attempts in order, events in order within one.
/// A watcher that lost its stream resumes after the position of the last event it got;
/// `(0, 0)` is before the first event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub attempt: Attempt,
    pub seq: Seq,
}

/// Line count and SHA-256 of a log: each line's text followed by `\n`, in sequence order.
#[derive(Debug, Clone, Default)]
pub struct LogDigest {
    count: u64,
    hasher: Sha256,
}

impl LogDigest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_line(&mut self, text: &str) {
        self.count += 1;
        self.hasher.update(text.as_bytes());
        self.hasher.update(b"\n");
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The hex SHA-256 of the lines added so far.
    pub fn hex(&self) -> String {
        let digest = self.hasher.clone().finalize();
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_no_lines_is_sha256_of_nothing() {
        let digest = LogDigest::new();
        assert_eq!(digest.count(), 0);
        assert_eq!(
            digest.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digest_depends_on_order_and_line_breaks() {
        let mut ab = LogDigest::new();
        ab.add_line("a");
        ab.add_line("b");
        let mut ba = LogDigest::new();
        ba.add_line("b");
        ba.add_line("a");
        let mut joined = LogDigest::new();
        joined.add_line("a\nb");
        assert_ne!(ab.hex(), ba.hex());
        assert_eq!(ab.count(), 2);
        assert_eq!(joined.count(), 1);
        assert_eq!(ab.hex(), joined.hex(), "same bytes, different line count");
    }

    #[test]
    fn events_round_trip_as_json() {
        let event = BuildEvent {
            build_id: BuildId::from(7),
            attempt: Attempt::FIRST,
            seq: Seq::from(3),
            at_ms: 42,
            kind: EventKind::StageFinished {
                index: 0,
                name: "build".into(),
                state: StageState::Failed,
                exit_code: Some(2),
                duration_ms: 10,
            },
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<BuildEvent>(&json).unwrap(), event);
    }
}
