//! JSON lines: one object per event on stdout, for scripts. The shape is the domain event:
//! `{"build_id", "attempt", "seq", "at_ms", "kind": {"type": "line" | "stage_started" |
//! "stage_finished" | "attempt_started" | "result", ...}}`. A run of lines is shown as one
//! `line` object per line, each with its own `seq`.

use super::IntegrityCheck;
use ocelot_domain::BuildState;
use ocelot_domain::events::{BuildEvent, EventKind};
use ocelot_domain::ids::BuildId;
use ocelot_proto::v1 as pb;
use std::borrow::Cow;
use std::io::Write;

#[derive(Debug)]
pub(crate) struct JsonRenderer {
    build_id: BuildId,
    integrity: IntegrityCheck,
    /// `--stage NAME`: only that stage's lines and stage events.
    only: Option<String>,
}

impl JsonRenderer {
    pub(crate) fn new(build_id: BuildId) -> Self {
        JsonRenderer {
            build_id,
            integrity: IntegrityCheck::default(),
            only: None,
        }
    }

    /// Shows only the lines and stage events of `stage` (and the attempt's and result).
    pub(crate) fn only_stage(&mut self, stage: String) {
        self.only = Some(stage);
    }

    /// Whether `event` is shown (`--stage`).
    fn shows(&self, event: &BuildEvent) -> bool {
        let stage = match &event.kind {
            EventKind::Line { stage, .. } | EventKind::Lines { stage, .. } => stage,
            EventKind::StageStarted { name, .. } | EventKind::StageFinished { name, .. } => name,
            EventKind::AttemptStarted { .. } | EventKind::Result { .. } => return true,
        };
        self.only.as_deref().is_none_or(|only| only == stage)
    }

    pub(crate) fn event(&mut self, event: &pb::BuildEvent) -> Option<BuildState> {
        self.integrity.observe(event);
        let domain = ocelot_domain::wire::event_from_proto(self.build_id, event)?;
        if !self.shows(&domain) {
            return None;
        }
        let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
        for shown in one_per_line(&domain) {
            if let Ok(json) = serde_json::to_string(&shown) {
                let _ = writeln!(stdout, "{json}");
            }
        }
        let _ = stdout.flush();
        if let (EventKind::Result { state, .. }, Some(pb::build_event::Kind::Result(result))) =
            (&domain.kind, &event.kind)
        {
            if let Some(warning) = self.integrity.verdict(result) {
                eprintln!("{warning}");
            }
            return Some(*state);
        }
        None
    }
}

/// `event` as the JSON shows it: a run of lines as one `line` event per line.
fn one_per_line(event: &BuildEvent) -> Vec<Cow<'_, BuildEvent>> {
    let EventKind::Lines {
        stage,
        stream,
        text,
    } = &event.kind
    else {
        return vec![Cow::Borrowed(event)];
    };
    let mut seq = event.seq;
    text.split_terminator('\n')
        .map(|text| {
            let line = BuildEvent {
                build_id: event.build_id,
                attempt: event.attempt,
                seq,
                at_ms: event.at_ms,
                kind: EventKind::Line {
                    stage: stage.clone(),
                    stream: *stream,
                    text: text.to_string(),
                },
            };
            seq = seq.next();
            Cow::Owned(line)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocelot_domain::ids::{Attempt, Seq};
    use ocelot_domain::model::LogStream;

    #[test]
    fn a_run_shows_as_one_line_event_per_line() {
        let run = BuildEvent {
            build_id: BuildId::from(3),
            attempt: Attempt::FIRST,
            seq: Seq::from(7),
            at_ms: 9,
            kind: EventKind::Lines {
                stage: "build".into(),
                stream: LogStream::Stderr,
                text: "a\n\nc\n".into(),
            },
        };
        let shown: Vec<(u64, String)> = one_per_line(&run)
            .iter()
            .map(|e| match &e.kind {
                EventKind::Line { text, stream, .. } => {
                    assert_eq!(*stream, LogStream::Stderr);
                    (e.seq.get(), text.clone())
                }
                other => panic!("not a line: {other:?}"),
            })
            .collect();
        assert_eq!(
            shown,
            vec![(7, "a".into()), (8, String::new()), (9, "c".into())]
        );
    }
}
