//! JSON lines: one object per event on stdout, for scripts. The shape is the domain event:
//! `{"build_id", "attempt", "seq", "at_ms", "kind": {"type": "line" | "stage_started" |
//! "stage_finished" | "attempt_started" | "result", ...}}`.

use super::IntegrityCheck;
use ocelot_domain::BuildState;
use ocelot_domain::events::EventKind;
use ocelot_domain::ids::BuildId;
use ocelot_proto::v1 as pb;
use std::io::Write;

#[derive(Debug)]
pub(crate) struct JsonRenderer {
    build_id: BuildId,
    integrity: IntegrityCheck,
}

impl JsonRenderer {
    pub(crate) fn new(build_id: BuildId) -> Self {
        JsonRenderer {
            build_id,
            integrity: IntegrityCheck::default(),
        }
    }

    pub(crate) fn event(&mut self, event: &pb::BuildEvent) -> Option<BuildState> {
        self.integrity.observe(event);
        let domain = ocelot_domain::wire::event_from_proto(self.build_id, event)?;
        if let Ok(line) = serde_json::to_string(&domain) {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        }
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
