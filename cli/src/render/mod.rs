//! How build events are shown: [`human`] (log lines on stdout; stage progress and the result
//! on stderr, with spinners on a terminal) or [`json`] (one JSON object per event on stdout).
//! Both check the log they printed against the line count and checksum of the result.

mod human;
mod json;
mod pull_bar;
mod service_lines;
mod stage_view;
pub(crate) mod terminal;

use ocelot_domain::BuildState;
use ocelot_domain::events::{LogDigest, run_line_count};
use ocelot_domain::ids::{Attempt, BuildId, Seq};
use ocelot_proto::v1 as pb;
use pb::build_event::Kind;

/// Receives the events of one build, in order.
#[derive(Debug)]
pub(crate) enum Renderer {
    Human(human::HumanRenderer),
    Json(json::JsonRenderer),
}

impl Renderer {
    /// `services`: show the lines of the build's services even when it passes.
    pub(crate) fn new(json: bool, build_id: BuildId, services: bool) -> Self {
        if json {
            Renderer::Json(json::JsonRenderer::new(build_id))
        } else {
            Renderer::Human(human::HumanRenderer::new(services))
        }
    }

    /// `--stage NAME`: only that stage's lines and progress (or, as JSON, events).
    pub(crate) fn only_stage(&mut self, stage: String) {
        match self {
            Renderer::Human(renderer) => renderer.only_stage(stage),
            Renderer::Json(renderer) => renderer.only_stage(stage),
        }
    }

    /// Shows one event; returns the build's final state when the event is its result.
    pub(crate) fn event(&mut self, event: &pb::BuildEvent) -> Option<BuildState> {
        match self {
            Renderer::Human(renderer) => renderer.event(event),
            Renderer::Json(renderer) => renderer.event(event),
        }
    }

    /// Why the build, still queued, waits (each time it is read; people see it when it
    /// changes, scripts never).
    pub(crate) fn waiting(&mut self, reason: &str) {
        if let Renderer::Human(renderer) = self {
            renderer.waiting(reason);
        }
    }

    /// Called when the stream broke before the result.
    pub(crate) fn interrupted(&mut self) {
        if let Renderer::Human(renderer) = self {
            renderer.interrupted();
        }
    }
}

/// The log as this client printed it, per attempt, to compare with the result's digest.
#[derive(Debug, Default)]
pub(crate) struct IntegrityCheck {
    attempt: Option<Attempt>,
    digest: LogDigest,
    last_seq: Seq,
    /// Sequence numbers that did not follow their predecessor (gaps or repeats).
    out_of_order: u64,
}

impl IntegrityCheck {
    pub(crate) fn observe(&mut self, event: &pb::BuildEvent) {
        let (attempt, seq) = (Attempt::from(event.attempt), Seq::from(event.seq));
        if self.attempt != Some(attempt) {
            *self = IntegrityCheck {
                attempt: Some(attempt),
                ..IntegrityCheck::default()
            };
        } else if seq != self.last_seq.next() {
            self.out_of_order += 1;
        }
        self.last_seq = seq;
        match &event.kind {
            Some(Kind::Line(line)) => self.digest.add_line(&line.text),
            Some(Kind::Lines(lines)) => {
                self.digest.add_run(&lines.text);
                // the next event follows the run's last line
                let more = run_line_count(&lines.text).saturating_sub(1);
                self.last_seq = Seq::from(seq.get().saturating_add(more));
            }
            _ => {}
        }
    }

    /// A warning when what was printed differs from the build's log.
    pub(crate) fn verdict(&self, result: &pb::BuildResult) -> Option<String> {
        if result.log_sha256.is_empty() {
            return None;
        }
        let printed = self.digest.count();
        if printed == result.line_count
            && self.digest.hex() == result.log_sha256
            && self.out_of_order == 0
        {
            return None;
        }
        Some(format!(
            "warning: the log shown here ({printed} lines) differs from the build's log ({} lines, sha256 {}): \
             lines were lost or repeated on the way; `ocelot watch` replays the stored log",
            result.line_count,
            &result.log_sha256[..result.log_sha256.len().min(12)]
        ))
    }
}
