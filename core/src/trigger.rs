//! Queues a build: the one path every trigger takes (`ocelot build`, webhooks, the poller).
//!
//! Resolve the commit (ls-remote when only a branch is given), read `ocelot.yml` at it to
//! route the job (`machineTag`) and apply the branch filter (for a pull request: its base
//! branch; none for `--force`), check a `--stage` names a stage of the file, honour
//! `[skip ci]` on automatic triggers, insert the build row, publish the job.
//! Automatic triggers are idempotent: one build per repo, branch (or pull request, or tag)
//! and commit.
//!
//! A commit is built "on a branch" only when that branch's head is the commit or descends
//! from it (a tag build: only the tag's own commit), so a `trigger` token cannot run another
//! branch's (or a fork's) code under `main`'s name, `\branch main` stages and secrets. A
//! pull request is built under its own name, `pull/N`, never its source branch's: a fork's
//! branch called `main` is not `main`. A publish that fails leaves the build `queued` with its job unpublished: the
//! admin's sweeper publishes it later, so no build is lost between the two steps.

use crate::build_params::BuildParams;
use crate::build_state::BuildState;
use crate::git::{GitError, MirrorCache};
use crate::ids::RepoId;
use crate::model::{Build, Job, PullRequestRef, TriggerKind};
use crate::pipeline;
use crate::queue::{self, Bus, DEFAULT_TAG};
use crate::secrets::{BuildCredentials, SecretError, SecretStore};
use crate::store::{Inserted, NewBuild, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How long resolving the commit and reading `ocelot.yml` may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// What to build.
#[derive(Debug, Clone)]
pub struct TriggerRequest {
    /// The repository's name or URL.
    pub repo: String,
    /// `None`: the repository's default branch. For a tag push: the tag's name. Ignored for
    /// a pull request, which is built as [`pull_request_branch`] (`pull/N`).
    pub branch: Option<String>,
    /// `None`: the branch's head.
    pub commit: Option<String>,
    pub kind: TriggerKind,
    /// The branch head before the push (its commits and changed paths feed the stage
    /// triggers); `None` for a new branch or when unknown.
    pub previous_commit: Option<String>,
    pub pull_request: Option<PullRequestRef>,
    /// The tag a tag push built.
    pub git_tag: Option<String>,
    /// `--env`, `--force`, `--stage` (checked by the caller; none for automatic triggers).
    pub params: BuildParams,
    /// The build's trace id when the trigger made one already (a webhook's receipt, a
    /// poll); `None`: made here. Anything but a trace id is replaced ([`crate::trace`]).
    pub trace_id: Option<String>,
}

impl TriggerRequest {
    /// An `ocelot build` of `repo`.
    pub fn manual(repo: impl Into<String>, branch: Option<String>, commit: Option<String>) -> Self {
        TriggerRequest {
            repo: repo.into(),
            branch,
            commit,
            kind: TriggerKind::Manual,
            previous_commit: None,
            pull_request: None,
            git_tag: None,
            params: BuildParams::default(),
            trace_id: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("cannot read the repository's credentials: {0}")]
    Secrets(#[from] SecretError),
    #[error("the git task failed")]
    GitTask(#[from] tokio::task::JoinError),
    /// The commit is not on the branch (or is not the tag) it was asked to be built as.
    #[error(
        "commit {commit} is not on {what} `{name}` of {url}: a build of a branch must be its head or one of its ancestors (push the commit to the branch, or build the branch it is on)"
    )]
    NotOnBranch {
        url: String,
        commit: String,
        /// `branch` or `tag`.
        what: &'static str,
        name: String,
    },
}

/// The name a pull request is built under (`GIT_BRANCH`, `\branch` conditions, the previous
/// successful commit): `pull/N`, never its source branch's name.
pub fn pull_request_branch(number: i64) -> String {
    format!("pull/{number}")
}

/// The name a tag is built under (`GIT_BRANCH`, `\branch` conditions, the previous
/// successful commit): `tags/NAME`, never the bare name, so that a tag called `main` is not
/// built as branch `main` (`GIT_TAG` has the bare name).
pub fn tag_branch(tag: &str) -> String {
    format!("tags/{tag}")
}

/// What the build's `ocelot.yml` and commit say before any worker reads them.
#[derive(Debug, PartialEq, Eq)]
struct Routing {
    tag: String,
    /// Set when the build must not run (branch filter, skip marker).
    skip_reason: Option<String>,
    /// Set when the build cannot run (e.g. an invalid tag).
    error_reason: Option<String>,
}

/// `[skip ci]` or `[ci skip]`, in any case.
fn has_skip_marker(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("[skip ci]") || lower.contains("[ci skip]")
}

/// `filter_branch`: the branch `branches` must match (`None`: no filter, e.g. `--force`);
/// `stage`: the one `--stage` asked for, which the file must have.
fn route(
    config: Option<&str>,
    filter_branch: Option<&str>,
    skip_marker: Option<&str>,
    stage: Option<&str>,
) -> Routing {
    let mut routing = Routing {
        tag: DEFAULT_TAG.to_string(),
        skip_reason: skip_marker.map(|marker| format!("the commit message says {marker}")),
        error_reason: None,
    };
    // a missing or invalid file still goes to a worker, which reports every error in the log
    let Some(Ok(pipeline)) = config.map(pipeline::parse) else {
        return routing;
    };
    let tag = pipeline
        .machine_tag
        .clone()
        .unwrap_or_else(|| DEFAULT_TAG.to_string());
    if let Err(error) = queue::validate_tag(&tag) {
        routing.error_reason = Some(format!("ocelot.yml: machineTag: {error}"));
        return routing;
    }
    routing.tag = tag;
    if let Some(Err(unknown)) = stage.map(|stage| pipeline.select_stage(stage)) {
        routing.error_reason = Some(unknown.to_string());
        return routing;
    }
    if let Some(filter_branch) = filter_branch
        && routing.skip_reason.is_none()
        && !pipeline.branch_matches(filter_branch)
    {
        routing.skip_reason = Some(format!(
            "branch `{filter_branch}` does not match the `branches` of ocelot.yml"
        ));
    }
    routing
}

/// The targets of the file's `notify:` (none when the file is missing or invalid: such a
/// build errors and tells no one).
fn notify_targets(config: Option<&str>) -> Vec<ocelot_domain::notify::NotifyTarget> {
    config
        .and_then(|text| pipeline::parse(text).ok())
        .and_then(|pipeline| pipeline.notify)
        .map(|notify| ocelot_domain::notify::targets(&notify))
        .unwrap_or_default()
}

/// The key that makes an automatic trigger idempotent.
fn dedupe_key(
    repo_id: RepoId,
    request: &TriggerRequest,
    branch: &str,
    commit: &str,
) -> Option<String> {
    if !request.kind.is_automatic() {
        return None;
    }
    Some(match (&request.pull_request, &request.git_tag) {
        (Some(pr), _) => format!("{repo_id}:pr:{}:{commit}", pr.number),
        (None, Some(tag)) => format!("{repo_id}:tag:{tag}:{commit}"),
        (None, None) => format!("{repo_id}:branch:{branch}:{commit}"),
    })
}

/// What git says about the commit to build.
struct Resolved {
    commit: String,
    /// Whether the commit is on the branch (or is the tag) it is built as.
    on_branch: bool,
    config: Option<String>,
    message: String,
}

/// The one way a build is queued: what a trigger needs (the store, the bus, the mirrors
/// that resolve and read commits, the credentials that reach private repos). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Trigger {
    store: Store,
    bus: Bus,
    mirrors: Arc<MirrorCache>,
    secrets: crate::secrets::select::Secrets,
}

impl Trigger {
    pub fn new(
        store: Store,
        bus: Bus,
        mirrors: Arc<MirrorCache>,
        secrets: crate::secrets::select::Secrets,
    ) -> Self {
        Trigger {
            store,
            bus,
            mirrors,
            secrets,
        }
    }

    /// Queues a build as `request` says and returns it (queued, or skipped/errored when it
    /// cannot run); for an automatic trigger already seen, the existing build
    /// (`created: false`). Logs in a span with the new build's trace id.
    pub async fn queue(&self, request: TriggerRequest) -> Result<Inserted, TriggerError> {
        let trace_id = request
            .trace_id
            .clone()
            .filter(|id| crate::trace::is_trace_id(id))
            .unwrap_or_else(crate::trace::new_trace_id);
        let span = tracing::info_span!("trigger", trace_id = %trace_id);
        queue_build(
            &self.store,
            &self.bus,
            &self.mirrors,
            &self.secrets,
            request,
            trace_id,
        )
        .instrument(span)
        .await
    }
}

async fn queue_build(
    store: &Store,
    bus: &Bus,
    mirrors: &Arc<MirrorCache>,
    secrets: &impl SecretStore,
    request: TriggerRequest,
    trace_id: String,
) -> Result<Inserted, TriggerError> {
    let repo = store.find_repo(&request.repo).await?;
    let auth = BuildCredentials::new(secrets.for_repo(&repo.name).await?).git_auth(&repo.url);
    let branch = match (&request.pull_request, &request.git_tag) {
        (Some(pr), _) => pull_request_branch(pr.number),
        (None, Some(tag)) => tag_branch(tag),
        (None, None) => request
            .branch
            .clone()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| repo.default_branch.clone()),
    };
    // a given commit must be on the branch (a tag build: be the tag); a branch's own head is;
    // a pull request's head is on no branch of this repo
    let reachable_from = match (&request.pull_request, &request.git_tag) {
        (Some(_), _) => None,
        (None, Some(tag)) => Some((format!("refs/tags/{tag}"), false)),
        (None, None) => Some((format!("refs/heads/{branch}"), true)),
    };
    let url = repo.url.clone();
    let mirrors = mirrors.clone();
    let wanted_commit = request.commit.clone().filter(|c| !c.is_empty());
    let git_task = {
        let branch = branch.clone();
        tokio::task::spawn_blocking(move || -> Result<Resolved, GitError> {
            let (rev, check) = match wanted_commit {
                Some(commit) => (commit, reachable_from),
                None => (
                    crate::git::resolve_branch(&url, &branch, auth.as_ref())?,
                    None,
                ),
            };
            let mirror = mirrors.fetch(&url, auth.as_ref())?;
            let commit = mirrors.resolve_commit(&url, &mirror, &rev)?;
            let on_branch = match check {
                Some((git_ref, ancestors)) => {
                    mirrors.is_reachable(&url, &mirror, &commit, &git_ref, ancestors)?
                }
                None => true,
            };
            // never loaded past the limit nor through a link: the worker reports those
            let config = match mirrors.read_regular_file(
                &url,
                &commit,
                pipeline::FILE_NAME,
                pipeline::MAX_FILE_BYTES,
            ) {
                Ok(text) => Some(text),
                Err(crate::git::TreeFileError::Git(error)) => return Err(error),
                Err(_) => None,
            };
            let message = mirrors.commit_message(&url, &mirror, &commit)?;
            Ok(Resolved {
                commit,
                on_branch,
                config,
                message,
            })
        })
    };
    let resolved = tokio::time::timeout(GIT_TIMEOUT, git_task)
        .await
        .map_err(|_| GitError::Unreachable {
            url: repo.url.clone(),
            message: format!("no answer within {} s", GIT_TIMEOUT.as_secs()),
        })?
        .map_err(TriggerError::GitTask)??;
    if !resolved.on_branch {
        let (what, name) = match &request.git_tag {
            Some(tag) => ("tag", tag.clone()),
            None => ("branch", branch.clone()),
        };
        tracing::warn!(repo = %repo.name, commit = %resolved.commit, what, %name,
            trigger = request.kind.as_str(), "refused: the commit is not on the branch it names");
        return Err(TriggerError::NotOnBranch {
            url: repo.url.clone(),
            commit: resolved.commit,
            what,
            name,
        });
    }
    // pushes and polls honour `[skip ci]`; explicit builds and pull requests do not
    let honours_marker = matches!(
        request.kind,
        TriggerKind::Push | TriggerKind::Tag | TriggerKind::Poll
    );
    let skip_marker = (honours_marker && has_skip_marker(&resolved.message)).then_some(
        if resolved.message.to_ascii_lowercase().contains("[ci skip]") {
            "[ci skip]"
        } else {
            "[skip ci]"
        },
    );
    // a pull request is filtered by the branch it merges into, as in the original; a tag is
    // no branch, so `branches` does not filter it
    // `--force` builds whatever `branches` says
    let filter_branch = match (&request.pull_request, &request.git_tag) {
        _ if request.params.force => None,
        (Some(pr), _) => Some(pr.base_branch.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(branch.clone()),
    };
    let routing = route(
        resolved.config.as_deref(),
        filter_branch.as_deref(),
        skip_marker,
        request.params.stage.as_deref(),
    );
    let (state, reason) = match (&routing.error_reason, &routing.skip_reason) {
        (Some(error), _) => (BuildState::Errored, Some(error.clone())),
        (None, Some(skip)) => (BuildState::Skipped, Some(skip.clone())),
        (None, None) => (BuildState::Queued, None),
    };
    let dedupe_key = dedupe_key(repo.id, &request, &branch, &resolved.commit);
    let config = resolved.config;
    let inserted = store
        .insert_build(&NewBuild {
            repo_id: repo.id,
            commit: resolved.commit,
            branch,
            trigger: request.kind.as_str().to_string(),
            tag: routing.tag,
            state,
            reason,
            previous_commit: request.previous_commit.filter(|c| !c.is_empty()),
            pull_request: request.pull_request,
            git_tag: request.git_tag,
            dedupe_key,
            params: request.params,
            notify: notify_targets(config.as_deref()),
            trace_id: Some(trace_id),
        })
        .await?;
    let build = &inserted.build;
    if inserted.created {
        tracing::info!(build_id = build.id.get(), repo = %build.repo_name, number = build.number,
            commit = %build.commit, branch = %build.branch, trigger = %build.trigger,
            state = %build.state, "build created");
        crate::metrics::build_triggered(&build.trigger);
        if build.state.is_final() {
            crate::metrics::build_finished(build.state, &build.trigger);
        }
        if build.state == BuildState::Queued {
            publish(store, bus, build).await;
        }
    } else {
        tracing::info!(
            build_id = build.id.get(),
            build_trace_id = %build.trace_id.as_deref().unwrap_or("-"),
            "trigger already built: no new build"
        );
    }
    Ok(inserted)
}

/// Publishes a queued build's job (with its trace id) and records that it was; failures are
/// left to the sweeper.
pub async fn publish(store: &Store, bus: &Bus, build: &Build) -> bool {
    let job = Job {
        build_id: build.id,
        trace_id: build.trace_id.clone(),
    };
    let trace_id = build.trace_id.as_deref().unwrap_or("-");
    match bus.publish_job(&build.tag, &job).await {
        Ok(()) => match store.mark_job_published(build.id).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(build_id = build.id.get(), %trace_id, %error, "job published but not recorded; the sweeper re-publishes it (deduplicated)");
                false
            }
        },
        Err(error) => {
            crate::metrics::bus_error(crate::metrics::BusOperation::PublishJob);
            tracing::warn!(build_id = build.id.get(), %trace_id, %error, "job publish failed; the sweeper will retry");
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
        let on_main = route(Some(yml), Some("main"), None, None);
        assert_eq!(on_main.tag, "mac");
        assert_eq!(on_main.skip_reason, None);
        assert!(
            route(Some(yml), Some("other"), None, None)
                .skip_reason
                .is_some()
        );
        // tags are not filtered by `branches`
        assert!(route(Some(yml), None, None, None).skip_reason.is_none());
        assert!(
            route(Some(yml), Some("main"), Some("[skip ci]"), None)
                .skip_reason
                .is_some()
        );
        assert_eq!(route(None, Some("main"), None, None).tag, DEFAULT_TAG);
        assert_eq!(
            route(Some("image: [oops"), Some("main"), None, None).tag,
            DEFAULT_TAG
        );
        let bad_tag = "machineTag: a.b\nstages:\n  - name: a\n    script: [x]\n";
        assert!(
            route(Some(bad_tag), Some("main"), None, None)
                .error_reason
                .is_some()
        );
    }

    #[test]
    fn an_unknown_stage_errors_the_build_and_a_known_one_routes() {
        let yml = "image: alpine\nbranches: [main]\nstages:\n  - name: build\n    script: [x]\n  - name: test\n    script: [y]\n";
        let unknown = route(Some(yml), Some("main"), None, Some("tests"));
        let reason = unknown.error_reason.unwrap_or_default();
        assert!(
            reason.contains("`tests`") && reason.contains("build, test"),
            "{reason}"
        );
        let known = route(Some(yml), Some("main"), None, Some("test"));
        assert_eq!(known.error_reason, None);
        assert_eq!(known.skip_reason, None);
        // a file the trigger cannot read goes to the worker, which checks the stage
        assert_eq!(
            route(Some("image: [oops"), Some("main"), None, Some("x")).error_reason,
            None
        );
    }

    #[test]
    fn skip_markers_are_found_in_any_case() {
        assert!(has_skip_marker("fix typo [skip ci]"));
        assert!(has_skip_marker("docs\n\n[CI SKIP]"));
        assert!(!has_skip_marker("skip ci"));
    }

    #[test]
    fn only_automatic_triggers_are_deduplicated() {
        let manual = TriggerRequest::manual("r", None, None);
        assert_eq!(dedupe_key(RepoId::from(1), &manual, "main", "abc"), None);
        let push = TriggerRequest {
            kind: TriggerKind::Push,
            ..manual.clone()
        };
        let poll = TriggerRequest {
            kind: TriggerKind::Poll,
            ..manual.clone()
        };
        assert_eq!(
            dedupe_key(RepoId::from(1), &push, "main", "abc"),
            dedupe_key(RepoId::from(1), &poll, "main", "abc")
        );
        let pr = TriggerRequest {
            kind: TriggerKind::PullRequest,
            pull_request: Some(PullRequestRef {
                number: 7,
                base_branch: "main".into(),
                from_fork: false,
            }),
            ..manual
        };
        assert_eq!(
            dedupe_key(RepoId::from(1), &pr, "feature", "abc").as_deref(),
            Some("1:pr:7:abc")
        );
    }
}
