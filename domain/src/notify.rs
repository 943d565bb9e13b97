//! Notifications of a build's result, with no I/O: the targets a build's `notify:` names
//! ([`targets`], stored with the build when it is queued), which of them a final state
//! fires ([`fires`]), and what the messages say ([`BuildReport`]: the e-mail's subject and
//! body, the Slack text, the webhook's JSON document).

use crate::build_state::BuildState;
use crate::pipeline::{Notify, NotifyOn};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How many of the failing stage's last lines a message quotes.
pub const LAST_LINES: usize = 20;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A Slack incoming webhook (the credential's value is its URL).
    Slack,
    /// A signed JSON document POSTed to the credential's `--url`.
    Webhook,
    /// A mail through the credential's SMTP server.
    Email,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Slack => "slack",
            TargetKind::Webhook => "webhook",
            TargetKind::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<TargetKind> {
        [TargetKind::Slack, TargetKind::Webhook, TargetKind::Email]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// One target of a build's `notify:`, as stored with the build (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTarget {
    pub kind: TargetKind,
    /// The `notify` credential's name.
    pub identifier: String,
    /// Slack: the channel (empty: the webhook's own).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// E-mail: the recipients asked for (empty: every one the credential allows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    pub on: Vec<NotifyOn>,
}

/// The targets of a `notify:` block, in a fixed order (Slack, webhook, e-mail); targets
/// whose `on` is empty are left out.
pub fn targets(notify: &Notify) -> Vec<NotifyTarget> {
    let mut out = Vec::new();
    if let Some(slack) = &notify.slack {
        out.push(NotifyTarget {
            kind: TargetKind::Slack,
            identifier: slack.identifier.clone(),
            channel: slack.channel.clone(),
            to: Vec::new(),
            on: slack.on.clone(),
        });
    }
    if let Some(webhook) = &notify.webhook {
        out.push(NotifyTarget {
            kind: TargetKind::Webhook,
            identifier: webhook.identifier.clone(),
            channel: String::new(),
            to: Vec::new(),
            on: webhook.on.clone(),
        });
    }
    if let Some(email) = &notify.email {
        out.push(NotifyTarget {
            kind: TargetKind::Email,
            identifier: email.identifier.clone(),
            channel: String::new(),
            to: email.to.clone(),
            on: email.on.clone(),
        });
    }
    out.retain(|target| !target.on.is_empty());
    out
}

/// Whether a result counts as passing for `CHANGE`; `None` for results that are no change
/// either way (cancelled, skipped, not final).
fn passing(state: BuildState) -> Option<bool> {
    match state {
        BuildState::Passed => Some(true),
        BuildState::Failed | BuildState::TimedOut | BuildState::Errored => Some(false),
        _ => None,
    }
}

/// Whether a build that ended `state` sends to a target with `on`; `previous`: the final
/// state of the branch's build before it (cancelled and skipped builds do not count).
pub fn fires(on: &[NotifyOn], state: BuildState, previous: Option<BuildState>) -> bool {
    on.iter().any(|on| match on {
        NotifyOn::Pass => state == BuildState::Passed,
        NotifyOn::Fail => matches!(state, BuildState::Failed | BuildState::TimedOut),
        NotifyOn::Error => state == BuildState::Errored,
        NotifyOn::Cancel => state == BuildState::Cancelled,
        NotifyOn::Change => match (passing(state), previous.and_then(passing)) {
            (Some(now), Some(before)) => now != before,
            _ => false,
        },
    })
}

/// The result in a message's words: `PASSED`, `FAILED`, `TIMED OUT`...
pub fn result_word(state: BuildState) -> &'static str {
    match state {
        BuildState::Passed => "PASSED",
        BuildState::Failed => "FAILED",
        BuildState::TimedOut => "TIMED OUT",
        BuildState::Errored => "ERRORED",
        BuildState::Cancelled => "CANCELLED",
        BuildState::Skipped => "SKIPPED",
        BuildState::Queued => "QUEUED",
        BuildState::Running => "RUNNING",
    }
}

/// The stage that ended the build, with the end of its (masked) log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailingStage {
    pub name: String,
    pub state: String,
    pub exit_code: Option<i32>,
    /// Its last lines (at most [`LAST_LINES`]), as stored: secrets already masked.
    pub last_lines: Vec<String>,
}

/// What a message says about a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    pub build_id: i64,
    pub repo: String,
    pub number: i64,
    pub branch: String,
    pub commit: String,
    pub trigger: String,
    pub state: BuildState,
    pub reason: Option<String>,
    pub duration: Option<Duration>,
    pub failing_stage: Option<FailingStage>,
    /// The build's page (the admin's `--build-url` template filled in), if configured.
    pub link: Option<String>,
}

/// The `--build-url` template filled in: `{id}`, `{repo}` and `{number}` are replaced.
pub fn build_link(template: &str, build_id: i64, repo: &str, number: i64) -> String {
    template
        .replace("{id}", &build_id.to_string())
        .replace("{repo}", repo)
        .replace("{number}", &number.to_string())
}

fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

impl BuildReport {
    /// `[ocelot] team/app main: FAILED (#12)`.
    pub fn subject(&self) -> String {
        format!(
            "[ocelot] {} {}: {} (#{})",
            self.repo,
            self.branch,
            result_word(self.state),
            self.number
        )
    }

    /// Where to see the build: its link, else the command that shows it.
    pub fn where_to_see(&self) -> String {
        self.link
            .clone()
            .unwrap_or_else(|| format!("ocelot status {}", self.build_id))
    }

    /// The plain-text body of an e-mail (and the base of the Slack text).
    pub fn text_body(&self) -> String {
        let mut out = format!(
            "{} #{} of {} ({}) at {}: {}",
            self.repo,
            self.number,
            self.branch,
            self.trigger,
            short_commit(&self.commit),
            result_word(self.state)
        );
        if let Some(duration) = self.duration {
            out.push_str(&format!(" in {}", seconds(duration)));
        }
        out.push('\n');
        if let Some(reason) = self.reason.as_deref().filter(|r| !r.is_empty()) {
            out.push_str(&format!("reason: {reason}\n"));
        }
        if let Some(stage) = &self.failing_stage {
            out.push_str(&format!("stage `{}` {}", stage.name, stage.state));
            if let Some(code) = stage.exit_code {
                out.push_str(&format!(" (exit code {code})"));
            }
            out.push('\n');
            if !stage.last_lines.is_empty() {
                out.push_str(&format!("last lines of `{}`:\n", stage.name));
                for line in &stage.last_lines {
                    out.push_str(&format!("    {line}\n"));
                }
            }
        }
        out.push_str(&format!(
            "build {}: {}\n",
            self.build_id,
            self.where_to_see()
        ));
        out
    }

    /// The `text` of a Slack message.
    pub fn slack_text(&self) -> String {
        let mut out = format!(
            "*{}* {} `{}` #{} at `{}`",
            result_word(self.state),
            self.repo,
            self.branch,
            self.number,
            short_commit(&self.commit)
        );
        if let Some(duration) = self.duration {
            out.push_str(&format!(" in {}", seconds(duration)));
        }
        out.push('\n');
        if let Some(reason) = self.reason.as_deref().filter(|r| !r.is_empty()) {
            out.push_str(&format!("reason: {reason}\n"));
        }
        if let Some(stage) = &self.failing_stage {
            out.push_str(&format!("stage `{}` {}\n", stage.name, stage.state));
            if !stage.last_lines.is_empty() {
                out.push_str("```\n");
                for line in &stage.last_lines {
                    out.push_str(&line.replace("```", "'''"));
                    out.push('\n');
                }
                out.push_str("```\n");
            }
        }
        out.push_str(&self.where_to_see());
        out
    }

    /// The webhook's JSON document.
    pub fn document(&self, delivery: &str) -> serde_json::Value {
        serde_json::json!({
            "delivery": delivery,
            "build": {
                "id": self.build_id,
                "repo": self.repo,
                "number": self.number,
                "branch": self.branch,
                "commit": self.commit,
                "trigger": self.trigger,
                "state": self.state.as_str(),
                "result": result_word(self.state),
                "reason": self.reason,
                "duration_ms": self.duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                "url": self.link,
            },
            "failing_stage": self.failing_stage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{EmailNotify, SlackNotify, WebhookNotify};
    use BuildState::*;
    use NotifyOn::*;

    #[test]
    fn results_fire_their_own_targets() {
        assert!(fires(&[Pass], Passed, None));
        assert!(!fires(&[Pass], Failed, None));
        assert!(fires(&[Fail], Failed, None));
        assert!(fires(&[Fail], TimedOut, None));
        assert!(!fires(&[Fail], Errored, None));
        assert!(fires(&[Error], Errored, None));
        assert!(fires(&[Cancel], Cancelled, None));
        assert!(!fires(&[], Passed, None));
    }

    #[test]
    fn change_fires_when_the_branch_breaks_or_is_fixed() {
        assert!(fires(&[Change], Failed, Some(Passed)));
        assert!(fires(&[Change], Passed, Some(Errored)));
        assert!(fires(&[Change], Errored, Some(Passed)));
        assert!(!fires(&[Change], Passed, Some(Passed)));
        assert!(!fires(&[Change], Failed, Some(TimedOut)));
        // the first build of a branch, and a cancelled one, are no change
        assert!(!fires(&[Change], Failed, None));
        assert!(!fires(&[Change], Cancelled, Some(Passed)));
    }

    #[test]
    fn targets_follow_the_file_in_a_fixed_order() {
        let notify = Notify {
            slack: Some(SlackNotify {
                identifier: "chat".into(),
                channel: "#ci".into(),
                on: vec![Fail],
            }),
            webhook: Some(WebhookNotify {
                identifier: "hook".into(),
                on: vec![],
            }),
            email: Some(EmailNotify {
                identifier: "mail".into(),
                to: vec!["dev@example.com".into()],
                on: vec![Pass, Change],
            }),
        };
        let found = targets(&notify);
        // a target with `on: []` sends nothing and is dropped
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].kind, TargetKind::Slack);
        assert_eq!(found[0].channel, "#ci");
        assert_eq!(found[1].kind, TargetKind::Email);
        assert_eq!(found[1].to, vec!["dev@example.com".to_string()]);
        let json = serde_json::to_string(&found).unwrap();
        let back: Vec<NotifyTarget> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, found);
    }

    fn report() -> BuildReport {
        BuildReport {
            build_id: 41,
            repo: "team/app".into(),
            number: 12,
            branch: "main".into(),
            commit: "0123456789abcdef0123".into(),
            trigger: "push".into(),
            state: Failed,
            reason: None,
            duration: Some(Duration::from_millis(3_250)),
            failing_stage: Some(FailingStage {
                name: "test".into(),
                state: "failed".into(),
                exit_code: Some(2),
                last_lines: vec!["running".into(), "assertion failed".into()],
            }),
            link: None,
        }
    }

    #[test]
    fn messages_say_what_happened_and_where_to_look() {
        let report = report();
        assert_eq!(report.subject(), "[ocelot] team/app main: FAILED (#12)");
        let body = report.text_body();
        assert!(
            body.starts_with("team/app #12 of main (push) at 0123456789ab: FAILED in 3.2s\n"),
            "{body}"
        );
        assert!(body.contains("stage `test` failed (exit code 2)"), "{body}");
        assert!(body.contains("    assertion failed\n"), "{body}");
        assert!(body.ends_with("build 41: ocelot status 41\n"), "{body}");
        let linked = BuildReport {
            link: Some(build_link(
                "https://ci.example/{repo}/{number}?b={id}",
                41,
                "team/app",
                12,
            )),
            ..report.clone()
        };
        assert!(
            linked
                .slack_text()
                .ends_with("https://ci.example/team/app/12?b=41")
        );
        let document = linked.document("d-1");
        assert_eq!(document["build"]["state"], "failed");
        assert_eq!(document["build"]["duration_ms"], 3250);
        assert_eq!(
            document["failing_stage"]["last_lines"][1],
            "assertion failed"
        );
        assert_eq!(document["delivery"], "d-1");
    }
}
