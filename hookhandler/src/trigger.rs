//! What a delivery asks to build, as stored with it (JSON) until a processor queues it.

use crate::providers::{HookEvent, PullRequestEvent, PushEvent, RefKind};
use ocelot_core::model::{PullRequestRef, TriggerKind};
use ocelot_core::trigger::TriggerRequest;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum StoredTrigger {
    Push {
        branch: String,
        commit: String,
        before: Option<String>,
    },
    Tag {
        tag: String,
        commit: String,
    },
    PullRequest {
        number: u64,
        commit: String,
        head_branch: String,
        base_branch: String,
        /// Deliveries stored before forks were told apart read as not from a fork.
        #[serde(default)]
        from_fork: bool,
    },
}

impl StoredTrigger {
    /// The build a push or pull request event asks for; `None` for other events.
    pub(crate) fn from_event(event: &HookEvent) -> Option<StoredTrigger> {
        match event {
            HookEvent::Push(PushEvent {
                kind: RefKind::Branch,
                name,
                before,
                after,
                ..
            }) => Some(StoredTrigger::Push {
                branch: name.clone(),
                commit: after.clone(),
                before: before.clone(),
            }),
            HookEvent::Push(PushEvent {
                kind: RefKind::Tag,
                name,
                after,
                ..
            }) => Some(StoredTrigger::Tag {
                tag: name.clone(),
                commit: after.clone(),
            }),
            HookEvent::PullRequest(PullRequestEvent {
                number,
                head_commit,
                head_branch,
                base_branch,
                from_fork,
                ..
            }) => Some(StoredTrigger::PullRequest {
                number: *number,
                commit: head_commit.clone(),
                head_branch: head_branch.clone(),
                base_branch: base_branch.clone(),
                from_fork: *from_fork,
            }),
            HookEvent::Ping | HookEvent::Ignored { .. } => None,
        }
    }

    pub(crate) fn event_name(&self) -> &'static str {
        match self {
            StoredTrigger::Push { .. } => "push",
            StoredTrigger::Tag { .. } => "tag",
            StoredTrigger::PullRequest { .. } => "pull_request",
        }
    }

    /// The request `core::trigger::queue_build` takes for the repo named `repo`.
    pub(crate) fn into_request(self, repo: String) -> TriggerRequest {
        let base = TriggerRequest::manual(repo, None, None);
        match self {
            StoredTrigger::Push {
                branch,
                commit,
                before,
            } => TriggerRequest {
                branch: Some(branch),
                commit: Some(commit),
                kind: TriggerKind::Push,
                previous_commit: before,
                ..base
            },
            StoredTrigger::Tag { tag, commit } => TriggerRequest {
                branch: Some(tag.clone()),
                commit: Some(commit),
                kind: TriggerKind::Tag,
                git_tag: Some(tag),
                ..base
            },
            StoredTrigger::PullRequest {
                number,
                commit,
                head_branch,
                base_branch,
                from_fork,
            } => TriggerRequest {
                branch: Some(head_branch),
                commit: Some(commit),
                kind: TriggerKind::PullRequest,
                pull_request: Some(PullRequestRef {
                    number: i64::try_from(number).unwrap_or(i64::MAX),
                    base_branch,
                    from_fork,
                }),
                ..base
            },
        }
    }
}
