//! An image pull drawn as a progress bar: the worker's `pulling IMAGE: 45.2 MB of 120.0 MB`
//! lines (stage `setup`, see `ocelot_domain::pull_progress`) move one bar on stderr instead
//! of filling the screen; once the log goes on, the bar goes and its last line is printed
//! as the log has it. Only when stdout and stderr are both terminals: a log saved to a file
//! keeps every line.

use super::stage_view::SETUP_STAGE;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ocelot_domain::pull_progress::PullProgress;
use ocelot_proto::v1 as pb;
use pb::build_event::Kind;

/// The progress an event tells, when it is one of the worker's pull lines.
pub(super) fn pull_line(event: &pb::BuildEvent) -> Option<(PullProgress, &str)> {
    let Some(Kind::Line(line)) = &event.kind else {
        return None;
    };
    let system = line.stream == pb::LogStream::System as i32;
    if !system || line.stage != SETUP_STAGE {
        return None;
    }
    PullProgress::parse(&line.text).map(|progress| (progress, line.text.as_str()))
}

/// The bar of the pull under way, and the line it stands for.
#[derive(Debug)]
pub(super) struct PullBar {
    bar: ProgressBar,
    /// The last pull line (safe to print), printed when the bar goes.
    last_line: String,
}

impl PullBar {
    pub(super) fn start(progress: &PullProgress, line: String) -> Self {
        let bar =
            ProgressBar::with_draw_target(Some(progress.total_bytes), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut pull = PullBar {
            bar,
            last_line: String::new(),
        };
        pull.update(progress, line);
        pull
    }

    pub(super) fn update(&mut self, progress: &PullProgress, line: String) {
        self.bar.set_message(format!("pulling {}", progress.image));
        self.bar.set_length(progress.total_bytes);
        self.bar.set_position(progress.done_bytes);
        self.last_line = line;
    }

    /// Clears the bar; the line the log has for where it ended.
    pub(super) fn finish(self) -> String {
        self.bar.finish_and_clear();
        self.last_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(stage: &str, stream: pb::LogStream, text: &str) -> pb::BuildEvent {
        pb::BuildEvent {
            attempt: 1,
            seq: 1,
            at_ms: 0,
            kind: Some(Kind::Line(pb::LogLine {
                stage: stage.into(),
                stream: stream as i32,
                text: text.into(),
            })),
        }
    }

    #[test]
    fn only_the_workers_setup_lines_are_pull_progress() {
        let text = "pulling app:1: 1.0 MB of 2.0 MB";
        let event = line("setup", pb::LogStream::System, text);
        let (progress, shown) = pull_line(&event).unwrap();
        assert_eq!(
            (progress.done_bytes, progress.total_bytes),
            (1_000_000, 2_000_000)
        );
        assert_eq!(shown, text);
        // a build printing the same text is a build's line
        assert!(pull_line(&line("setup", pb::LogStream::Stdout, text)).is_none());
        assert!(pull_line(&line("build", pb::LogStream::System, text)).is_none());
        assert!(pull_line(&line("setup", pb::LogStream::System, "checking out")).is_none());
    }
}
