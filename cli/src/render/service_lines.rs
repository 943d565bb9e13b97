//! The lines of a build's service containers (stages `service:NAME`, which the worker adds at
//! the end of a build): held back until the result, then shown when the build did not pass,
//! and dropped when it passed, unless asked for (`ocelot watch --services`: shown as they
//! come). `--json` shows every event.

use ocelot_domain::BuildState;
use ocelot_proto::v1 as pb;
use pb::build_event::Kind;

/// The stage of a service's lines: `service:NAME`.
const SERVICE_STAGE_PREFIX: &str = "service:";

/// The service lines of one build, held until its result.
#[derive(Debug, Default)]
pub(crate) struct ServiceLines {
    /// Shown as they come (`--services`).
    always: bool,
    held: Vec<pb::BuildEvent>,
}

impl ServiceLines {
    pub(crate) fn new(always: bool) -> Self {
        ServiceLines {
            always,
            held: Vec::new(),
        }
    }

    /// Whether `event` is a service's line to hold back (then it is kept until the result).
    pub(crate) fn hold(&mut self, event: &pb::BuildEvent) -> bool {
        let stage = match &event.kind {
            Some(Kind::Line(line)) => &line.stage,
            Some(Kind::Lines(lines)) => &lines.stage,
            // a new attempt: what a lost one left is not its log
            Some(Kind::AttemptStarted(_)) => {
                self.held.clear();
                return false;
            }
            _ => return false,
        };
        if self.always || !stage.starts_with(SERVICE_STAGE_PREFIX) {
            return false;
        }
        self.held.push(event.clone());
        true
    }

    /// At the build's result: the lines held back to show now (those of a build that did not
    /// pass), in order.
    pub(crate) fn release(&mut self, state: BuildState) -> Vec<pb::BuildEvent> {
        let held = std::mem::take(&mut self.held);
        if state == BuildState::Passed {
            Vec::new()
        } else {
            held
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64, stage: &str, text: &str) -> pb::BuildEvent {
        pb::BuildEvent {
            attempt: 1,
            seq,
            at_ms: 0,
            kind: Some(Kind::Line(pb::LogLine {
                stage: stage.into(),
                stream: 1,
                text: text.into(),
            })),
        }
    }

    fn run(seq: u64, stage: &str, text: &str) -> pb::BuildEvent {
        pb::BuildEvent {
            attempt: 1,
            seq,
            at_ms: 0,
            kind: Some(Kind::Lines(pb::LogLines {
                stage: stage.into(),
                stream: 1,
                text: text.into(),
            })),
        }
    }

    #[test]
    fn service_lines_wait_for_the_result_and_show_when_it_did_not_pass() {
        let mut lines = ServiceLines::new(false);
        assert!(!lines.hold(&line(1, "build", "compiling")));
        assert!(!lines.hold(&line(2, "setup", "service `db` ready after 1.0 s")));
        let service = [
            line(3, "service:db", "ready"),
            run(4, "service:db", "a\nb\n"),
        ];
        for event in &service {
            assert!(lines.hold(event));
        }
        assert_eq!(lines.release(BuildState::Failed), service.to_vec());
        // released once
        assert!(lines.release(BuildState::Failed).is_empty());
        for event in &service {
            assert!(lines.hold(event));
        }
        assert!(lines.release(BuildState::Passed).is_empty());
    }

    #[test]
    fn with_services_asked_for_they_are_shown_as_they_come() {
        let mut lines = ServiceLines::new(true);
        assert!(!lines.hold(&line(3, "service:db", "ready")));
        assert!(lines.release(BuildState::Passed).is_empty());
    }
}
