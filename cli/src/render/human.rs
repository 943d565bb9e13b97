//! Human output: log lines on stdout as the build wrote them, less any escape sequence but
//! colours ([`terminal`]: a build must not drive the watcher's terminal); on stderr a spinner per
//! running stage (on a terminal), a line per finished stage and the result line. Colours only
//! on a terminal and without `NO_COLOR`. Before its log begins, why a queued build waits: a
//! spinner whose line follows the reason on a terminal, else a line each time it changes.
//! An image pull's progress lines move one bar when stdout and stderr are terminals.

use super::IntegrityCheck;
use super::pull_bar::{PullBar, pull_line};
use super::service_lines::ServiceLines;
use super::stage_view::{SETUP_STAGE, StageView, prefixed};
use super::terminal;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ocelot_domain::BuildState;
use ocelot_domain::env_vars;
use ocelot_domain::ids::Attempt;
use ocelot_domain::wire;
use ocelot_proto::v1 as pb;
use pb::build_event::Kind;
use std::io::{IsTerminal, Write};
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct HumanRenderer {
    color: bool,
    spinner: Option<ProgressBar>,
    integrity: IntegrityCheck,
    attempts_seen: u32,
    /// Held back until the result (shown when the build did not pass).
    service_lines: ServiceLines,
    /// Which stages are shown, and whose lines carry their stage.
    view: StageView,
    /// Whether stderr is a terminal (spinners; else plain lines).
    terminal: bool,
    /// Why the queued build waits, as last shown (`None`: not shown, or the log has begun).
    waiting: Option<String>,
    /// An event of the build's log was shown: the build left the queue.
    log_begun: bool,
    /// Whether pull progress is drawn as a bar (stdout and stderr are terminals).
    pull_bars: bool,
    /// The bar of an image pull under way.
    pull: Option<PullBar>,
}

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn seconds(ms: i64) -> String {
    format!("{:.1}s", ms.max(0) as f64 / 1000.0)
}

impl HumanRenderer {
    pub(crate) fn new(services: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let color = terminal && std::env::var_os(env_vars::NO_COLOR).is_none();
        HumanRenderer {
            color,
            terminal,
            waiting: None,
            log_begun: false,
            pull_bars: terminal && std::io::stdout().is_terminal(),
            pull: None,
            spinner: None,
            integrity: IntegrityCheck::default(),
            attempts_seen: 0,
            service_lines: ServiceLines::new(services),
            view: StageView::default(),
        }
    }

    /// `--stage NAME`: shows only that stage's lines and progress.
    pub(crate) fn only_stage(&mut self, stage: String) {
        self.view = StageView::new(Some(stage));
    }

    /// A spinner for the stages running now (shown ones), if any.
    fn start_spinner(&mut self) {
        let names: Vec<String> = self
            .view
            .running()
            .iter()
            .filter(|name| self.view.shows(name))
            .map(|name| terminal::plain(name).into_owned())
            .collect();
        if names.is_empty() {
            return;
        }
        let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        spinner.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        spinner.set_message(names.join(", "));
        spinner.enable_steady_tick(Duration::from_millis(120));
        self.spinner = Some(spinner);
    }

    /// Prints on stderr without tearing the spinner.
    fn status(&self, text: String) {
        match &self.spinner {
            Some(spinner) => spinner.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn stop_spinner(&mut self) {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
    }

    pub(crate) fn interrupted(&mut self) {
        self.stop_spinner();
        self.end_pull();
    }

    /// Shows an image pull's progress line on the bar; `false` when `event` is not one (or
    /// bars are not drawn, or `--stage` hides the set-up lines).
    fn pull_progress(&mut self, event: &pb::BuildEvent) -> bool {
        if !self.pull_bars {
            return false;
        }
        let Some((progress, text)) = pull_line(event) else {
            return false;
        };
        if !self.view.shows(SETUP_STAGE) {
            return false;
        }
        let text = terminal::plain(text).into_owned();
        match &mut self.pull {
            Some(bar) => bar.update(&progress, text),
            None => self.pull = Some(PullBar::start(&progress, text)),
        }
        true
    }

    /// The pull's bar goes; its last line stays in the log on screen.
    fn end_pull(&mut self) {
        if let Some(bar) = self.pull.take() {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", bar.finish());
            let _ = stdout.flush();
        }
    }

    /// Why the queued build waits: on a terminal the line of a spinner, updated in place;
    /// else a line on stderr each time the reason changes. Nothing once the log has begun.
    pub(crate) fn waiting(&mut self, reason: &str) {
        if self.log_begun || self.waiting.as_deref() == Some(reason) {
            return;
        }
        let text = paint(
            self.color,
            "33",
            &format!("queued: {}", terminal::plain(reason)),
        );
        if !self.terminal {
            eprintln!("{text}");
        } else if let Some(spinner) = &self.spinner {
            spinner.set_message(text);
        } else {
            let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.set_message(text);
            spinner.enable_steady_tick(Duration::from_millis(120));
            self.spinner = Some(spinner);
        }
        self.waiting = Some(reason.to_string());
    }

    /// The build's log has begun: the waiting spinner (if any) goes.
    fn log_begins(&mut self) {
        self.log_begun = true;
        if self.waiting.take().is_some() {
            self.stop_spinner();
        }
    }

    /// Prints a line or a run of lines on stdout.
    fn print_log(&self, event: &pb::BuildEvent) {
        let (stage, text) = match &event.kind {
            Some(Kind::Line(line)) => {
                (&line.stage, format!("{}\n", terminal::log_line(&line.text)))
            }
            // the whole run in one write
            Some(Kind::Lines(lines)) => {
                (&lines.stage, terminal::log_lines(&lines.text).into_owned())
            }
            _ => return,
        };
        if !self.view.shows(stage) {
            return;
        }
        let text = match self.view.prefix(stage) {
            Some(prefix) => prefixed(&terminal::plain(&prefix), &text),
            None => text,
        };
        let print = || {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        };
        match &self.spinner {
            Some(spinner) => spinner.suspend(print),
            None => print(),
        }
    }

    pub(crate) fn event(&mut self, event: &pb::BuildEvent) -> Option<BuildState> {
        self.log_begins();
        self.integrity.observe(event);
        self.view.observe(event);
        if self.service_lines.hold(event) {
            return None;
        }
        if self.pull_progress(event) {
            return None;
        }
        self.end_pull();
        match event.kind.as_ref()? {
            Kind::AttemptStarted(started) => {
                self.attempts_seen += 1;
                if self.attempts_seen > 1 || Attempt::from(event.attempt) > Attempt::FIRST {
                    self.stop_spinner();
                    self.status(paint(
                        self.color,
                        "33",
                        &format!(
                            "↻ attempt {} on worker {} (an earlier attempt was lost)",
                            event.attempt,
                            terminal::plain(&started.worker)
                        ),
                    ));
                }
            }
            Kind::Line(_) | Kind::Lines(_) => self.print_log(event),
            Kind::StageStarted(stage) if self.view.shows(&stage.name) => {
                self.stop_spinner();
                let name = terminal::plain(&stage.name).into_owned();
                self.status(paint(self.color, "1;36", &format!("▶ {name}")));
                self.start_spinner();
            }
            Kind::StageFinished(stage) if self.view.shows(&stage.name) => {
                self.stop_spinner();
                let state = wire::stage_state_from_i32(stage.state);
                let took = seconds(stage.duration_ms);
                let name = terminal::plain(&stage.name);
                let line = match state {
                    ocelot_domain::StageState::Passed => {
                        paint(self.color, "32", &format!("✔ {name} passed ({took})"))
                    }
                    ocelot_domain::StageState::Skipped => {
                        paint(self.color, "2", &format!("⊘ {name} skipped"))
                    }
                    ocelot_domain::StageState::TimedOut => {
                        paint(self.color, "31", &format!("⏱ {name} timed out ({took})"))
                    }
                    _ => {
                        let code = stage
                            .exit_code
                            .map(|c| format!(": exit code {c}"))
                            .unwrap_or_default();
                        paint(self.color, "31", &format!("✘ {name} failed{code} ({took})"))
                    }
                };
                self.status(line);
                // the stages still running (of a graph)
                self.start_spinner();
            }
            // another stage than the one asked for (`--stage`)
            Kind::StageStarted(_) | Kind::StageFinished(_) => {}
            Kind::Result(result) => {
                self.stop_spinner();
                let state = wire::build_state_from_i32(result.state).ok()?;
                for held in self.service_lines.release(state) {
                    self.print_log(&held);
                }
                let took = seconds(result.duration_ms);
                let reason = if result.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", terminal::plain(&result.reason))
                };
                let (code, word) = match state {
                    BuildState::Passed => ("1;32", "PASSED"),
                    BuildState::Skipped => ("1;2", "SKIPPED"),
                    BuildState::Failed => ("1;31", "FAILED"),
                    BuildState::TimedOut => ("1;31", "FAILED (timed out)"),
                    BuildState::Errored => ("1;31", "ERRORED"),
                    BuildState::Cancelled => ("1;33", "CANCELLED"),
                    BuildState::Queued | BuildState::Running => ("1", "UNFINISHED"),
                };
                self.status(format!(
                    "{} in {took}{reason}",
                    paint(self.color, code, word)
                ));
                if let Some(warning) = self.integrity.verdict(result) {
                    self.status(paint(self.color, "33", &warning));
                }
                return Some(state);
            }
        }
        None
    }
}
