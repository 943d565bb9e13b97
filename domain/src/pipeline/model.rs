//! The validated build definition read from `ocelot.yml`, and the branch and
//! stage matching used to decide what runs.

use std::time::Duration;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::artifacts::Artifacts;
use super::cache::Cache;
use super::condition::TriggerExpr;
use super::matrix::MatrixJob;
use super::resources::Resources;
use super::services::Service;

/// Compiled size limit for branch regexes, so a hostile pattern fails
/// validation instead of using a lot of memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A whole, valid `ocelot.yml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    /// `image`: Docker image the build runs in.
    pub image: Option<String>,
    /// `machineTag`: tag of the machine the build runs on.
    pub machine_tag: Option<String>,
    /// `buildTool`: informational only (e.g. `maven`).
    pub build_tool: Option<String>,
    /// `branches`: branches that build; empty means every branch.
    pub branches: Vec<BranchPattern>,
    /// `env`: variables for every stage.
    pub env: Vec<EnvVar>,
    /// `stages`: never empty.
    pub stages: Vec<Stage>,
    /// `timeout`: limit for the whole build.
    pub timeout: Option<Duration>,
    /// `notify`.
    pub notify: Option<Notify>,
    /// `resources`: limits below the worker's for this build's container.
    #[serde(default)]
    pub resources: Resources,
    /// `cache`: what is kept between builds of the repository.
    #[serde(default)]
    pub cache: Vec<Cache>,
    /// `services`: containers started beside the build (a database), removed with it.
    #[serde(default)]
    pub services: Vec<Service>,
}

impl Pipeline {
    /// True when a push to `branch` should build: `branches` is empty, holds
    /// `ALL`, or holds a regex matching the whole branch name.
    pub fn branch_matches(&self, branch: &str) -> bool {
        self.branches.is_empty() || self.branches.iter().any(|p| p.matches(branch))
    }
}

/// One `KEY=value` entry of an `env` list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvVar {
    /// A shell variable name: `[A-Za-z_][A-Za-z0-9_]*`.
    pub key: String,
    /// Everything after the first `=`; may itself contain `=`.
    pub value: String,
}

impl EnvVar {
    /// Splits `KEY=value` at the first `=` and checks the key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((key, value)) = text.split_once('=') else {
            return Err(format!("`{text}` is not of the form KEY=value"));
        };
        if key.is_empty() {
            return Err(format!("`{text}` has an empty variable name"));
        }
        if !is_shell_name(key) {
            return Err(format!(
                "`{key}` is not a valid variable name (letters, digits and `_`, not starting with a digit)"
            ));
        }
        Ok(Self {
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

/// True for a valid shell variable name.
pub(crate) fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A branch filter: `ALL`, or a regex that must match the whole branch name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BranchPattern {
    /// `ALL`: every branch.
    All,
    /// A regex, matched as `^(?:pattern)$`.
    Regex(String),
}

impl BranchPattern {
    /// Reads one entry: `ALL` or a regex, which must compile.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "ALL" {
            return Ok(Self::All);
        }
        compile_anchored(text).map_err(|e| regex_message(text, &e))?;
        Ok(Self::Regex(text.to_string()))
    }

    /// True when this pattern accepts the whole of `branch`. A pattern that
    /// does not compile (only possible when built by hand) matches nothing.
    pub fn matches(&self, branch: &str) -> bool {
        match self {
            Self::All => true,
            Self::Regex(pattern) => compile_anchored(pattern).is_ok_and(|re| re.is_match(branch)),
        }
    }
}

impl std::fmt::Display for BranchPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("ALL"),
            Self::Regex(p) => f.write_str(p),
        }
    }
}

fn compile_anchored(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// A one-line description of a regex error (the crate's own is multi-line).
fn regex_message(pattern: &str, err: &regex::Error) -> String {
    let detail = match err {
        regex::Error::Syntax(text) => text
            .lines()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or_else(|| text.lines().next().unwrap_or("syntax error"))
            .to_string(),
        regex::Error::CompiledTooBig(_) => "pattern is too large".to_string(),
        other => other.to_string(),
    };
    format!("invalid branch regex `{pattern}`: {detail}")
}

/// One entry of `stages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// Unique, non-empty.
    pub name: String,
    /// Shell commands, run in order; never empty.
    pub script: Vec<String>,
    /// Variables for this stage only.
    pub env: Vec<EnvVar>,
    /// Limit for this stage.
    pub timeout: Option<Duration>,
    /// When the stage runs.
    pub condition: StageCondition,
    /// `artifacts`: files kept after the stage.
    #[serde(default)]
    pub artifacts: Option<Artifacts>,
    /// `needs`: the stages this one waits for (names of other stages, no repeats, no
    /// cycle); `needs: []` is written as an empty list. Any stage with `needs` (even an
    /// empty one) makes the file a graph: see [`Pipeline::is_graph`].
    #[serde(default)]
    pub needs: Option<Vec<String>>,
    /// Set on each job a `matrix:` made of a stage: its stage as written and its values.
    #[serde(default)]
    pub matrix: Option<MatrixJob>,
}

impl Stage {
    /// Whether the stage runs for this push; a skipped stage is not an error.
    pub fn should_run(&self, ctx: &TriggerContext<'_>) -> bool {
        self.condition.holds(ctx)
    }

    /// The names in its `needs` (none when it has no `needs`).
    pub fn needed(&self) -> &[String] {
        self.needs.as_deref().unwrap_or_default()
    }
}

/// When a stage runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StageCondition {
    /// No `trigger` nor `triggers`.
    Always,
    /// Legacy `trigger: { branches: [...] }`: runs when any pattern matches.
    Branches(Vec<BranchPattern>),
    /// `triggers: [...]`: runs when any line holds.
    Triggers(Vec<TriggerExpr>),
}

impl StageCondition {
    /// Evaluates the condition.
    pub fn holds(&self, ctx: &TriggerContext<'_>) -> bool {
        match self {
            Self::Always => true,
            Self::Branches(patterns) => patterns.iter().any(|p| p.matches(ctx.branch)),
            Self::Triggers(exprs) => exprs.iter().any(|e| e.matches(ctx)),
        }
    }
}

/// What a push looks like, for deciding which stages run.
#[derive(Debug, Clone, Copy)]
pub struct TriggerContext<'a> {
    /// The branch being built.
    pub branch: &'a str,
    /// Messages of the commits in the push.
    pub commit_messages: &'a [String],
    /// Paths of the files the push changed.
    pub changed_paths: &'a [String],
}

/// `notify`: where a build's result is sent. Every target is named only by the identifier
/// of a `notify` credential; the file never holds an address of its own (but `email.to`,
/// which may only narrow the credential's recipients).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    /// `notify.slack`.
    pub slack: Option<SlackNotify>,
    /// `notify.webhook`.
    #[serde(default)]
    pub webhook: Option<WebhookNotify>,
    /// `notify.email`.
    #[serde(default)]
    pub email: Option<EmailNotify>,
}

/// `notify.slack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackNotify {
    /// Name of the `notify` credential holding the Slack incoming webhook URL.
    pub identifier: String,
    /// Channel to post to; empty means the webhook's default channel.
    pub channel: String,
    /// Results that send a message.
    pub on: Vec<NotifyOn>,
}

/// `notify.webhook`: a signed JSON document of the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookNotify {
    /// Name of the `notify` credential holding the receiver's URL and the signing secret.
    pub identifier: String,
    /// Results that send the document.
    pub on: Vec<NotifyOn>,
}

/// `notify.email`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailNotify {
    /// Name of the `notify` credential holding the SMTP server, sender and recipients.
    pub identifier: String,
    /// Recipients: only addresses the credential allows (empty: all of the credential's).
    pub to: Vec<String>,
    /// Results that send a mail.
    pub on: Vec<NotifyOn>,
}

/// A build result that sends a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotifyOn {
    /// `PASS`: the build passed.
    #[serde(rename = "PASS")]
    Pass,
    /// `FAIL`: the build failed or timed out.
    #[serde(rename = "FAIL")]
    Fail,
    /// `ERROR`: the build errored (it could not run its stages to the end).
    #[serde(rename = "ERROR")]
    Error,
    /// `CANCEL`: the build was cancelled.
    #[serde(rename = "CANCEL")]
    Cancel,
    /// `CHANGE`: the result changed: failed after passed, or passed (fixed) after not.
    #[serde(rename = "CHANGE")]
    Change,
}

impl NotifyOn {
    /// Every spelling `on` accepts, as written in `ocelot.yml`.
    pub const ALL: [NotifyOn; 5] = [
        NotifyOn::Pass,
        NotifyOn::Fail,
        NotifyOn::Error,
        NotifyOn::Cancel,
        NotifyOn::Change,
    ];

    /// What `on` means when it is left out: every result (not `CHANGE`, which is implied).
    pub const DEFAULT: [NotifyOn; 4] = [
        NotifyOn::Pass,
        NotifyOn::Fail,
        NotifyOn::Error,
        NotifyOn::Cancel,
    ];

    /// The spelling used in `ocelot.yml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Error => "ERROR",
            Self::Cancel => "CANCEL",
            Self::Change => "CHANGE",
        }
    }

    /// `PASS`, `pass`, `Change`...: the result `text` names, in any case.
    pub fn parse(text: &str) -> Option<NotifyOn> {
        NotifyOn::ALL
            .into_iter()
            .find(|on| on.as_str().eq_ignore_ascii_case(text.trim()))
    }
}
