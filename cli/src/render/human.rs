//! Human output: log lines on stdout as the build wrote them, less any escape sequence but
//! colours ([`terminal`]: a build must not drive the watcher's terminal); on stderr a spinner per
//! running stage (on a terminal), a line per finished stage and the result line. Colours only
//! on a terminal and without `NO_COLOR`.

use super::IntegrityCheck;
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
    pub(crate) fn new() -> Self {
        let color =
            std::io::stderr().is_terminal() && std::env::var_os(env_vars::NO_COLOR).is_none();
        HumanRenderer {
            color,
            spinner: None,
            integrity: IntegrityCheck::default(),
            attempts_seen: 0,
        }
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
    }

    pub(crate) fn event(&mut self, event: &pb::BuildEvent) -> Option<BuildState> {
        self.integrity.observe(event);
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
            Kind::Line(line) => {
                let print = || {
                    let mut stdout = std::io::stdout().lock();
                    let _ = writeln!(stdout, "{}", terminal::log_line(&line.text));
                    let _ = stdout.flush();
                };
                match &self.spinner {
                    Some(spinner) => spinner.suspend(print),
                    None => print(),
                }
            }
            Kind::Lines(lines) => {
                // the whole run in one write
                let text = terminal::log_lines(&lines.text);
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
            Kind::StageStarted(stage) => {
                self.stop_spinner();
                let name = terminal::plain(&stage.name).into_owned();
                self.status(paint(self.color, "1;36", &format!("▶ {name}")));
                let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                spinner.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                spinner.set_message(name);
                spinner.enable_steady_tick(Duration::from_millis(120));
                self.spinner = Some(spinner);
            }
            Kind::StageFinished(stage) => {
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
            }
            Kind::Result(result) => {
                self.stop_spinner();
                let state = wire::build_state_from_i32(result.state).ok()?;
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
