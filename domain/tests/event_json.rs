//! The JSON of every build event kind, pinned with insta snapshots (`tests/snapshots/`).
//! It is a public format: the log bus carries it between workers and admins of different
//! versions, `ocelot build/watch --json` prints it for scripts. A change here must be
//! deliberate: review the `.snap` diff (`cargo insta review`, or `INSTA_UPDATE=always`
//! then read the files) and say so in the change.

#![allow(clippy::unwrap_used)]

use ocelot_domain::events::{BuildEvent, EventKind};
use ocelot_domain::ids::{Attempt, BuildId, Seq};
use ocelot_domain::model::LogStream;
use ocelot_domain::{BuildState, StageState};

/// The event kinds, by their position in [`kind_index`].
const KINDS: [&str; 6] = [
    "attempt_started",
    "line",
    "stage_started",
    "stage_finished",
    "result",
    "lines",
];

/// Where `kind` is in [`KINDS`]. No wildcard: a new kind does not compile until it is
/// listed here, in [`KINDS`] and in [`examples`] (and so pinned).
fn kind_index(kind: &EventKind) -> usize {
    match kind {
        EventKind::AttemptStarted { .. } => 0,
        EventKind::Line { .. } => 1,
        EventKind::StageStarted { .. } => 2,
        EventKind::StageFinished { .. } => 3,
        EventKind::Result { .. } => 4,
        EventKind::Lines { .. } => 5,
    }
}

/// One event of every kind, as one attempt of a build would have them.
fn examples() -> Vec<BuildEvent> {
    let kinds = vec![
        EventKind::AttemptStarted {
            worker: "worker-1".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            branch: "main".into(),
            stages: vec!["compile".into(), "test".into()],
            // stages in order: no `needs` in the JSON (as before graphs existed)
            needs: Vec::new(),
        },
        EventKind::Line {
            stage: "compile".into(),
            stream: LogStream::Stderr,
            text: "warning: \"quoted\" \u{1b}[1mbold\u{1b}[0m ünïcode\ttab".into(),
        },
        EventKind::StageStarted {
            index: 0,
            name: "compile".into(),
        },
        EventKind::StageFinished {
            index: 0,
            name: "compile".into(),
            state: StageState::Failed,
            exit_code: Some(3),
            duration_ms: 1250,
        },
        EventKind::Result {
            state: BuildState::Failed,
            reason: "stage compile failed: exit code 3".into(),
            duration_ms: 4321,
            line_count: 1,
            log_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        },
        // the bus's and the store's form of a script's output (`--json` shows one `line`
        // per line)
        EventKind::Lines {
            stage: "test".into(),
            stream: LogStream::Stdout,
            text: "running 2 tests\n\ttest a ... \u{1b}[32mok\u{1b}[0m\n".into(),
        },
    ];
    kinds
        .into_iter()
        .zip(1..)
        .map(|(kind, seq)| BuildEvent {
            build_id: BuildId::from(42),
            attempt: Attempt::FIRST,
            seq: Seq::from(seq),
            at_ms: 1_700_000_000_000 + i64::try_from(seq).unwrap() * 10,
            kind,
        })
        .collect()
}

fn example(name: &str) -> BuildEvent {
    examples()
        .into_iter()
        .find(|event| KINDS[kind_index(&event.kind)] == name)
        .unwrap_or_else(|| panic!("no example of `{name}`"))
}

/// Pins the event's JSON exactly as it is sent and printed (one line), and checks that
/// the line reads back as the same event.
fn pin(name: &str) {
    let event = example(name);
    let line = serde_json::to_string(&event).unwrap();
    assert_eq!(serde_json::from_str::<BuildEvent>(&line).unwrap(), event);
    insta::assert_snapshot!(name, line);
}

#[test]
fn every_kind_has_an_example_and_a_snapshot() {
    let mut covered = [false; KINDS.len()];
    for event in examples() {
        let index = kind_index(&event.kind);
        let json = serde_json::to_value(&event.kind).unwrap();
        assert_eq!(json["type"], KINDS[index], "KINDS is out of order");
        covered[index] = true;
    }
    for (name, covered) in KINDS.iter().zip(covered) {
        assert!(covered, "no example of `{name}`: add one to examples()");
    }
}

#[test]
fn attempt_started() {
    pin("attempt_started");
}

#[test]
fn line() {
    pin("line");
}

#[test]
fn stage_started() {
    pin("stage_started");
}

#[test]
fn stage_finished() {
    pin("stage_finished");
}

#[test]
fn result() {
    pin("result");
}

#[test]
fn lines() {
    pin("lines");
}

/// A stage that never ran has no exit code: `null`, not a missing field.
#[test]
fn stage_finished_without_an_exit_code() {
    let event = BuildEvent {
        build_id: BuildId::from(42),
        attempt: Attempt::from(2),
        seq: Seq::from(7),
        at_ms: 1_700_000_000_000,
        kind: EventKind::StageFinished {
            index: 1,
            name: "test".into(),
            state: StageState::Skipped,
            exit_code: None,
            duration_ms: 0,
        },
    };
    let line = serde_json::to_string(&event).unwrap();
    assert_eq!(serde_json::from_str::<BuildEvent>(&line).unwrap(), event);
    insta::assert_snapshot!(line);
}

/// The names every state and stream has in the events (`state`, `stream`).
#[test]
fn state_and_stream_names() {
    // no wildcards: a new variant does not compile until it is listed (and so pinned)
    let stage_states = [
        StageState::Pending,
        StageState::Running,
        StageState::Passed,
        StageState::Failed,
        StageState::Skipped,
        StageState::TimedOut,
        StageState::Cancelled,
    ];
    for state in stage_states {
        match state {
            StageState::Pending
            | StageState::Running
            | StageState::Passed
            | StageState::Failed
            | StageState::Skipped
            | StageState::TimedOut
            | StageState::Cancelled => {}
        }
    }
    let streams = [LogStream::Stdout, LogStream::Stderr, LogStream::System];
    for stream in streams {
        match stream {
            LogStream::Stdout | LogStream::Stderr | LogStream::System => {}
        }
    }
    let mut text = String::from("build states:\n");
    for state in BuildState::ALL {
        text += &format!("  {state:?} {}\n", serde_json::to_string(&state).unwrap());
    }
    text += "stage states:\n";
    for state in stage_states {
        text += &format!("  {state:?} {}\n", serde_json::to_string(&state).unwrap());
    }
    text += "log streams:\n";
    for stream in streams {
        text += &format!("  {stream:?} {}\n", serde_json::to_string(&stream).unwrap());
    }
    insta::assert_snapshot!(text);
}
