//! The JSON shapes the page reads, from the API's protobuf messages (one mapping, shared by
//! the pages of a log and its live stream).

use ocelot_proto::v1 as pb;
use serde_json::{Value, json};

/// `BUILD_STATE_TIMED_OUT` → `timed_out`.
fn short_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix)
        .unwrap_or(full)
        .to_ascii_lowercase()
}

pub(super) fn build_state(value: i32) -> String {
    pb::BuildState::try_from(value)
        .map(|state| short_name(state.as_str_name(), "BUILD_STATE_"))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn stage_state(value: i32) -> String {
    pb::StageState::try_from(value)
        .map(|state| short_name(state.as_str_name(), "STAGE_STATE_"))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn log_stream(value: i32) -> String {
    pb::LogStream::try_from(value)
        .map(|stream| short_name(stream.as_str_name(), "LOG_STREAM_"))
        .unwrap_or_else(|_| "stdout".to_string())
}

pub(super) fn build(build: &pb::Build) -> Value {
    json!({
        "id": build.id,
        "repo": build.repo,
        "number": build.number,
        "commit": build.commit,
        "branch": build.branch,
        "trigger": build.trigger,
        "state": build_state(build.state),
        "attempt": build.attempt,
        "worker": build.worker,
        "tag": build.tag,
        "reason": build.reason,
        "queued_at_ms": build.queued_at_ms,
        "started_at_ms": build.started_at_ms,
        "finished_at_ms": build.finished_at_ms,
        "pr_number": build.pr_number,
        "git_tag": build.git_tag,
    })
}

pub(super) fn stage(stage: &pb::Stage) -> Value {
    json!({
        "index": stage.index,
        "name": stage.name,
        "state": stage_state(stage.state),
        "exit_code": stage.exit_code,
        "started_at_ms": stage.started_at_ms,
        "finished_at_ms": stage.finished_at_ms,
        "needs": stage.needs,
    })
}

/// The sequence number of an event's last line (a run of lines numbers each of its lines).
pub(super) fn last_seq(event: &pb::BuildEvent) -> u64 {
    match &event.kind {
        Some(pb::build_event::Kind::Lines(lines)) => {
            let count = lines.text.bytes().filter(|b| *b == b'\n').count() as u64;
            event.seq + count.saturating_sub(1)
        }
        _ => event.seq,
    }
}

/// An event of a build's log: `kind` says which, the rest depends on it.
pub(super) fn event(event: &pb::BuildEvent) -> Value {
    use pb::build_event::Kind;
    let mut value = json!({
        "attempt": event.attempt,
        "seq": event.seq,
        "last_seq": last_seq(event),
        "at_ms": event.at_ms,
    });
    let details = match &event.kind {
        Some(Kind::AttemptStarted(started)) => json!({
            "kind": "attempt_started",
            "worker": started.worker,
            "commit": started.commit,
            "branch": started.branch,
            "stages": started.stages,
        }),
        Some(Kind::Line(line)) => json!({
            "kind": "lines",
            "stage": line.stage,
            "stream": log_stream(line.stream),
            "lines": [line.text],
        }),
        Some(Kind::Lines(lines)) => json!({
            "kind": "lines",
            "stage": lines.stage,
            "stream": log_stream(lines.stream),
            "lines": lines.text.strip_suffix('\n').unwrap_or(&lines.text).split('\n').collect::<Vec<_>>(),
        }),
        Some(Kind::StageStarted(started)) => json!({
            "kind": "stage_started",
            "index": started.index,
            "name": started.name,
        }),
        Some(Kind::StageFinished(finished)) => json!({
            "kind": "stage_finished",
            "index": finished.index,
            "name": finished.name,
            "state": stage_state(finished.state),
            "exit_code": finished.exit_code,
            "duration_ms": finished.duration_ms,
        }),
        Some(Kind::Result(result)) => json!({
            "kind": "result",
            "state": build_state(result.state),
            "reason": result.reason,
            "duration_ms": result.duration_ms,
            "line_count": result.line_count,
        }),
        None => json!({ "kind": "unknown" }),
    };
    if let (Some(target), Value::Object(extra)) = (value.as_object_mut(), details) {
        target.extend(extra);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_lines_is_split_and_numbered() {
        let message = pb::BuildEvent {
            attempt: 1,
            seq: 10,
            at_ms: 0,
            kind: Some(pb::build_event::Kind::Lines(pb::LogLines {
                stage: "test".into(),
                stream: pb::LogStream::Stderr.into(),
                text: "a\nb\n\x1b[31mc\n".into(),
            })),
        };
        let value = event(&message);
        assert_eq!(value["kind"], "lines");
        assert_eq!(value["stream"], "stderr");
        assert_eq!(value["seq"], 10);
        assert_eq!(value["last_seq"], 12);
        assert_eq!(value["lines"], json!(["a", "b", "\u{1b}[31mc"]));
    }

    #[test]
    fn states_have_short_names() {
        assert_eq!(build_state(pb::BuildState::TimedOut.into()), "timed_out");
        assert_eq!(stage_state(pb::StageState::Passed.into()), "passed");
        assert_eq!(build_state(999), "unknown");
    }
}
