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
        /// For a graph (`needs:`): what each stage of `stages` needs, in the same order;
        /// empty when the stages run in order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        needs: Vec<Vec<String>>,
    },
    Line {
        stage: String,
        stream: LogStream,
        text: String,
    },
    /// Consecutive lines of one stage and stream, each followed by `\n` in `text` (so no
    /// line holds a `\n`): the first is numbered by the event's `seq`, the next `seq + 1`,
    /// and so on. How a script's output travels and is stored: one event per run of lines,
    /// not per line, while every line keeps its number.
    Lines {
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
            EventKind::Lines { .. } => "lines",
            EventKind::StageStarted { .. } => "stage_started",
            EventKind::StageFinished { .. } => "stage_finished",
            EventKind::Result { .. } => "result",
        }
    }
}

/// How many lines a [`EventKind::Lines`] text holds: its `\n`s.
pub fn run_line_count(text: &str) -> u64 {
    // a plain byte count: the compiler vectorises it
    let count = text
        .as_bytes()
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count();
    u64::try_from(count).unwrap_or(u64::MAX)
}

/// The part of a run's `text` whose first line is numbered `first` that lies strictly
/// between `after` and `before`: `(its first seq, its text)`, `None` when nothing does.
pub fn run_slice(text: &str, first: u64, after: u64, before: u64) -> Option<(u64, &str)> {
    let mut start = 0;
    let mut seq = first;
    // skip the lines up to `after`
    while seq <= after {
        let end = text[start..].find('\n')?;
        start += end + 1;
        seq += 1;
    }
    let from = seq;
    let mut end = start;
    while seq < before && end < text.len() {
        match text[end..].find('\n') {
            Some(at) => end += at + 1,
            None => break,
        }
        seq += 1;
    }
    (end > start).then(|| (from, &text[start..end]))
}

impl BuildEvent {
    pub fn is_result(&self) -> bool {
        matches!(self.kind, EventKind::Result { .. })
    }

    /// Where the event starts: its first line for a run of lines.
    pub fn position(&self) -> Position {
        Position {
            attempt: self.attempt,
            seq: self.seq,
        }
    }

    /// The sequence number of the event's last line (its own for any other event).
    pub fn last_seq(&self) -> Seq {
        match &self.kind {
            EventKind::Lines { text, .. } => Seq::from(
                self.seq
                    .get()
                    .saturating_add(run_line_count(text).saturating_sub(1)),
            ),
            _ => self.seq,
        }
    }

    /// Where the event ends: a reader that has it has everything up to here.
    pub fn last_position(&self) -> Position {
        Position {
            attempt: self.attempt,
            seq: self.last_seq(),
        }
    }

    /// The part of the event strictly between `after` and `before` (sequence numbers of its
    /// attempt): a run of lines is cut to its lines there, another event is whole or `None`.
    pub fn between(&self, after: Seq, before: Seq) -> Option<BuildEvent> {
        match &self.kind {
            EventKind::Lines {
                stage,
                stream,
                text,
            } => {
                if self.seq > after && self.last_seq() < before {
                    return Some(self.clone());
                }
                let (first, text) = run_slice(text, self.seq.get(), after.get(), before.get())?;
                Some(BuildEvent {
                    build_id: self.build_id,
                    attempt: self.attempt,
                    seq: Seq::from(first),
                    at_ms: self.at_ms,
                    kind: EventKind::Lines {
                        stage: stage.clone(),
                        stream: *stream,
                        text: text.to_string(),
                    },
                })
            }
            _ => (self.seq > after && self.seq < before).then(|| self.clone()),
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

    /// Adds the lines of a run ([`EventKind::Lines`]): each is followed by `\n` already.
    pub fn add_run(&mut self, text: &str) {
        self.count += run_line_count(text);
        self.hasher.update(text.as_bytes());
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

    fn run(seq: u64, text: &str) -> BuildEvent {
        BuildEvent {
            build_id: BuildId::from(7),
            attempt: Attempt::FIRST,
            seq: Seq::from(seq),
            at_ms: 42,
            kind: EventKind::Lines {
                stage: "build".into(),
                stream: LogStream::Stdout,
                text: text.into(),
            },
        }
    }

    fn run_text(event: &BuildEvent) -> (u64, &str) {
        match &event.kind {
            EventKind::Lines { text, .. } => (event.seq.get(), text),
            _ => panic!("not a run: {event:?}"),
        }
    }

    #[test]
    fn a_run_digests_as_its_lines_one_by_one() {
        let mut lines = LogDigest::new();
        for text in ["a", "", "c c"] {
            lines.add_line(text);
        }
        let mut runs = LogDigest::new();
        runs.add_run("a\n\n");
        runs.add_run("c c\n");
        assert_eq!((runs.count(), runs.hex()), (lines.count(), lines.hex()));
    }

    #[test]
    fn a_run_numbers_each_line_and_is_cut_between_sequence_numbers() {
        let event = run(10, "a\nb\nc\nd\n");
        assert_eq!(event.last_seq(), Seq::from(13));
        assert_eq!(event.last_position().seq, Seq::from(13));
        let s = Seq::from;
        // whole
        let whole = event.between(s(9), s(14)).unwrap();
        assert_eq!(run_text(&whole), (10, "a\nb\nc\nd\n"));
        // after a line in the middle (a resume there)
        let tail = event.between(s(11), s(u64::MAX)).unwrap();
        assert_eq!(run_text(&tail), (12, "c\nd\n"));
        // before a line in the middle (a gap up to there)
        let head = event.between(s(0), s(12)).unwrap();
        assert_eq!(run_text(&head), (10, "a\nb\n"));
        let middle = event.between(s(10), s(13)).unwrap();
        assert_eq!(run_text(&middle), (11, "b\nc\n"));
        // nothing left
        assert!(event.between(s(13), s(u64::MAX)).is_none());
        assert!(event.between(s(0), s(10)).is_none());
        assert!(event.between(s(20), s(30)).is_none());
        // another event is whole or nothing
        let mut line = event.clone();
        line.kind = EventKind::StageStarted {
            index: 0,
            name: "x".into(),
        };
        assert_eq!(line.last_seq(), s(10));
        assert!(line.between(s(9), s(11)).is_some());
        assert!(line.between(s(10), s(11)).is_none());
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
