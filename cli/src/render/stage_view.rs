//! Which stage the log lines on screen belong to. In a build whose stages form a graph
//! (`needs:`), or while more than one stage runs, lines of different stages interleave:
//! each line of a stage then starts with `[NAME] ` (in order within each stage; Ocelot's
//! own set-up lines carry none). `ocelot watch --stage NAME` shows one stage only, without
//! a prefix.

use ocelot_proto::v1 as pb;
use pb::build_event::Kind;

/// The pseudo-stage of the worker's own lines before the first stage and after the last.
pub(super) const SETUP_STAGE: &str = "setup";

#[derive(Debug, Default)]
pub(crate) struct StageView {
    /// `--stage NAME`: only this stage's lines and progress are shown.
    only: Option<String>,
    /// The attempt's stages form a graph.
    graph: bool,
    /// The stages running now, in the order they started.
    running: Vec<String>,
}

impl StageView {
    /// Shows every stage (`None`) or only `only`.
    pub(crate) fn new(only: Option<String>) -> Self {
        StageView {
            only,
            ..StageView::default()
        }
    }

    /// Follows the attempt's stages: call for every event, before showing it.
    pub(crate) fn observe(&mut self, event: &pb::BuildEvent) {
        match &event.kind {
            Some(Kind::AttemptStarted(started)) => {
                self.graph = !started.needs.is_empty();
                self.running.clear();
            }
            Some(Kind::StageStarted(stage)) => self.running.push(stage.name.clone()),
            Some(Kind::StageFinished(stage)) => self.running.retain(|name| *name != stage.name),
            _ => {}
        }
    }

    /// Whether the lines and progress of `stage` are shown.
    pub(crate) fn shows(&self, stage: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == stage)
    }

    /// What the lines of `stage` start with: `[NAME] ` when lines of several stages may
    /// interleave, else nothing.
    pub(crate) fn prefix(&self, stage: &str) -> Option<String> {
        let interleaved = self.graph || self.running.len() > 1;
        (interleaved && self.only.is_none() && stage != SETUP_STAGE).then(|| format!("[{stage}] "))
    }

    /// The stages running now, for the progress line.
    pub(crate) fn running(&self) -> &[String] {
        &self.running
    }
}

/// `text` (lines, each ending in `\n`) with `prefix` before every line.
pub(crate) fn prefixed(prefix: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + prefix.len() * 8);
    for line in text.split_inclusive('\n') {
        out.push_str(prefix);
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: Kind) -> pb::BuildEvent {
        pb::BuildEvent {
            attempt: 1,
            seq: 1,
            at_ms: 0,
            kind: Some(kind),
        }
    }

    fn started(needs: Vec<pb::StageNeeds>) -> pb::BuildEvent {
        event(Kind::AttemptStarted(pb::AttemptStarted {
            stages: vec!["a".into(), "b".into()],
            needs,
            ..Default::default()
        }))
    }

    fn stage_started(name: &str) -> pb::BuildEvent {
        event(Kind::StageStarted(pb::StageStarted {
            index: 0,
            name: name.into(),
        }))
    }

    #[test]
    fn stages_in_order_show_no_prefix_until_two_run_at_once() {
        let mut view = StageView::new(None);
        view.observe(&started(Vec::new()));
        view.observe(&stage_started("a"));
        assert_eq!(view.prefix("a"), None);
        view.observe(&stage_started("b"));
        assert_eq!(view.prefix("a").as_deref(), Some("[a] "));
        assert_eq!(view.prefix("setup"), None);
        assert_eq!(view.running(), ["a", "b"]);
    }

    #[test]
    fn a_graph_prefixes_every_stage_line_and_one_stage_shows_alone() {
        let needs = vec![
            pb::StageNeeds::default(),
            pb::StageNeeds {
                names: vec!["a".into()],
            },
        ];
        let mut view = StageView::new(None);
        view.observe(&started(needs.clone()));
        view.observe(&stage_started("a"));
        assert_eq!(view.prefix("a").as_deref(), Some("[a] "));
        assert!(view.shows("b"));

        let mut only = StageView::new(Some("b".into()));
        only.observe(&started(needs));
        assert!(only.shows("b") && !only.shows("a") && !only.shows("setup"));
        assert_eq!(only.prefix("b"), None);
        assert_eq!(prefixed("[a] ", "x\ny\n"), "[a] x\n[a] y\n");
    }
}
