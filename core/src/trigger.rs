//! Queues a build: the one path every trigger takes (CLI now; webhooks and polls later).
//!
//! Resolve the commit (ls-remote when only a branch is given), read `ocelot.yml` at it to
//! route the job (`machineTag`) and apply the branch filter, insert the build row, publish
//! the job. A publish that fails leaves the build `queued` with its job unpublished: the
//! admin's sweeper publishes it later, so no build is lost between the two steps.

use crate::build_state::BuildState;
use crate::git::{GitError, MirrorCache};
use crate::model::{Build, Job, TriggerKind};
use crate::pipeline;
use crate::queue::{self, Bus, DEFAULT_TAG};
use crate::store::{NewBuild, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// How long resolving the commit and reading `ocelot.yml` may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// What to build.
#[derive(Debug, Clone)]
pub struct TriggerRequest {
    /// The repository's name or URL.
    pub repo: String,
    /// `None`: the repository's default branch.
    pub branch: Option<String>,
    /// `None`: the branch's head.
    pub commit: Option<String>,
    pub kind: TriggerKind,
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the build's `ocelot.yml` says about routing, before any worker reads it.
#[derive(Debug, PartialEq, Eq)]
struct Routing {
    tag: String,
    /// Set when the build must not run (branch filter).
    skip_reason: Option<String>,
    /// Set when the build cannot run (e.g. an invalid tag).
    error_reason: Option<String>,
}

fn route(config: Option<&str>, branch: &str) -> Routing {
    let default = Routing {
        tag: DEFAULT_TAG.to_string(),
        skip_reason: None,
        error_reason: None,
    };
    // a missing or invalid file still goes to a worker, which reports every error in the log
    let Some(Ok(pipeline)) = config.map(pipeline::parse) else {
        return default;
    };
    let tag = pipeline
        .machine_tag
        .clone()
        .unwrap_or_else(|| DEFAULT_TAG.to_string());
    if let Err(error) = queue::validate_tag(&tag) {
        return Routing {
            error_reason: Some(format!("ocelot.yml: machineTag: {error}")),
            ..default
        };
    }
    let skip_reason = (!pipeline.branch_matches(branch))
        .then(|| format!("branch `{branch}` does not match the `branches` of ocelot.yml"));
    Routing {
        tag,
        skip_reason,
        error_reason: None,
    }
}

/// Queues a build as `request` says and returns it (queued, or skipped/errored when it
/// cannot run).
pub async fn queue_build(
    store: &Store,
    bus: &Bus,
    mirrors: &Arc<MirrorCache>,
    request: TriggerRequest,
) -> Result<Build, TriggerError> {
    let repo = store.find_repo(&request.repo).await?;
    let branch = request
        .branch
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| repo.default_branch.clone());
    let url = repo.url.clone();
    let mirrors = mirrors.clone();
    let wanted_commit = request.commit.filter(|c| !c.is_empty());
    let git_task = {
        let branch = branch.clone();
        tokio::task::spawn_blocking(move || -> Result<(String, Option<String>), GitError> {
            let rev = match wanted_commit {
                Some(commit) => commit,
                None => crate::git::resolve_branch(&url, &branch)?,
            };
            let mirror = mirrors.fetch(&url)?;
            let commit = mirrors.resolve_commit(&url, &mirror, &rev)?;
            let config = mirrors.read_file(&url, &mirror, &commit, "ocelot.yml")?;
            Ok((commit, config))
        })
    };
    let (commit, config) = tokio::time::timeout(GIT_TIMEOUT, git_task)
        .await
        .map_err(|_| GitError::Unreachable {
            url: repo.url.clone(),
            message: format!("no answer within {} s", GIT_TIMEOUT.as_secs()),
        })?
        .map_err(|e| TriggerError::Internal(format!("git task failed: {e}")))??;
    let routing = route(config.as_deref(), &branch);
    let (state, reason) = match (&routing.error_reason, &routing.skip_reason) {
        (Some(error), _) => (BuildState::Errored, Some(error.clone())),
        (None, Some(skip)) => (BuildState::Skipped, Some(skip.clone())),
        (None, None) => (BuildState::Queued, None),
    };
    let build = store
        .insert_build(&NewBuild {
            repo_id: repo.id,
            commit,
            branch,
            trigger: request.kind.as_str().to_string(),
            tag: routing.tag,
            state,
            reason,
        })
        .await?;
    tracing::info!(build_id = build.id, repo = %build.repo_name, number = build.number,
        commit = %build.commit, branch = %build.branch, state = %build.state, "build created");
    if build.state == BuildState::Queued {
        publish(store, bus, &build).await;
    }
    Ok(build)
}

/// Publishes a queued build's job and records that it was; failures are left to the sweeper.
pub async fn publish(store: &Store, bus: &Bus, build: &Build) -> bool {
    match bus
        .publish_job(&build.tag, &Job { build_id: build.id })
        .await
    {
        Ok(()) => match store.mark_job_published(build.id).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(build_id = build.id, %error, "job published but not recorded; the sweeper re-publishes it (deduplicated)");
                false
            }
        },
        Err(error) => {
            tracing::warn!(build_id = build.id, %error, "job publish failed; the sweeper will retry");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_follows_machine_tag_and_branch_filter() {
        let yml = "machineTag: mac\nbranches: [main]\nstages:\n  - name: a\n    script: [x]\n";
        let on_main = route(Some(yml), "main");
        assert_eq!(on_main.tag, "mac");
        assert_eq!(on_main.skip_reason, None);
        assert!(route(Some(yml), "other").skip_reason.is_some());
        assert_eq!(route(None, "main").tag, DEFAULT_TAG);
        assert_eq!(route(Some("image: [oops"), "main").tag, DEFAULT_TAG);
        let bad_tag = "machineTag: a.b\nstages:\n  - name: a\n    script: [x]\n";
        assert!(route(Some(bad_tag), "main").error_reason.is_some());
    }
}
