//! Build RPCs: trigger, get (with why a queued build waits), list, rerun.

use crate::error::AdminError;
use crate::state::AppState;
use ocelot_core::BuildState;
use ocelot_core::auth::RepoScope;
use ocelot_core::build_params::{self, BuildParams};
use ocelot_core::model::TriggerKind;
use ocelot_core::store::BuildFilter;
use ocelot_core::trigger::TriggerRequest;
use ocelot_core::wire;
use ocelot_proto::v1 as pb;
use tonic::{Response, Status};

// the repo may be a URL: logged without any credentials in it
#[tracing::instrument(skip_all, fields(repo = %ocelot_core::repo_url::redact_credentials(&request.repo), branch = %request.branch, commit = %request.commit))]
pub(super) async fn trigger(
    state: &AppState,
    scope: &RepoScope,
    request: pb::TriggerBuildRequest,
) -> Result<Response<pb::TriggerBuildResponse>, Status> {
    if request.repo.trim().is_empty() {
        return Err(AdminError::Invalid("repo is required (a name or a URL)".into()).into());
    }
    let params = BuildParams {
        env: wire::env_params_from_pb(&request.env)
            .map_err(|e| AdminError::Invalid(e.to_string()))?,
        force: request.force,
        stage: build_params::stage_param(&request.stage),
    };
    if !scope.is_all() {
        super::scope::repo(state, scope, &request.repo).await?;
    }
    let inserted = state
        .trigger
        .queue(TriggerRequest {
            params,
            ..TriggerRequest::manual(request.repo, Some(request.branch), Some(request.commit))
        })
        .await
        .map_err(AdminError::from)?;
    Ok(Response::new(pb::TriggerBuildResponse {
        build: Some(pb::Build::from(&inserted.build)),
    }))
}

pub(crate) async fn get(
    state: &AppState,
    scope: &RepoScope,
    request: pb::GetBuildRequest,
) -> Result<Response<pb::BuildDetail>, Status> {
    let build = super::scope::build(state, scope, request.id.into()).await?;
    let stages = state
        .store
        .stages(build.id, build.attempt)
        .await
        .map_err(AdminError::from)?;
    let pending_reason = if build.state == BuildState::Queued {
        crate::pending::reason(state, &build.tag).await
    } else {
        String::new()
    };
    let deliveries = state
        .store
        .deliveries(build.id)
        .await
        .map_err(AdminError::from)?;
    Ok(Response::new(pb::BuildDetail {
        build: Some(pb::Build::from(&build)),
        stages: stages.iter().map(pb::Stage::from).collect(),
        pending_reason,
        deliveries: deliveries.iter().map(super::deliveries::to_wire).collect(),
    }))
}

/// A new build of the same repo, branch and commit (and pull request or tag) as `build_id`,
/// with its parameters unless the request gives others (`--env` replaces them, `--force`
/// adds to them, `--stage` replaces the selection).
pub(super) async fn rerun(
    state: &AppState,
    scope: &RepoScope,
    request: pb::RerunBuildRequest,
) -> Result<Response<pb::TriggerBuildResponse>, Status> {
    let env = if request.replace_env {
        Some(
            wire::env_params_from_pb(&request.env)
                .map_err(|e| AdminError::Invalid(e.to_string()))?,
        )
    } else if request.env.is_empty() {
        None
    } else {
        return Err(AdminError::Invalid(
            "env given without replace_env: set replace_env to replace the original build's parameters".into(),
        )
        .into());
    };
    let original = super::scope::build(state, scope, request.build_id.into()).await?;
    let params = BuildParams {
        env: env.unwrap_or_else(|| original.params.env.clone()),
        force: request.force || original.params.force,
        stage: build_params::stage_param(&request.stage).or_else(|| original.params.stage.clone()),
    };
    let inserted = state
        .trigger
        .queue(TriggerRequest {
            repo: original.repo_name.clone(),
            branch: Some(original.branch.clone()),
            commit: Some(original.commit.clone()),
            kind: TriggerKind::Manual,
            previous_commit: original.previous_commit.clone(),
            pull_request: original.pull_request.clone(),
            git_tag: original.git_tag.clone(),
            params,
            trace_id: None,
        })
        .await
        .map_err(AdminError::from)?;
    tracing::info!(
        original = original.id.get(),
        build_id = inserted.build.id.get(),
        "build rerun"
    );
    Ok(Response::new(pb::TriggerBuildResponse {
        build: Some(pb::Build::from(&inserted.build)),
    }))
}

pub(crate) async fn list(
    state: &AppState,
    scope: &RepoScope,
    request: pb::ListBuildsRequest,
) -> Result<Response<pb::ListBuildsResponse>, Status> {
    let repo_id = if request.repo.is_empty() {
        None
    } else {
        Some(super::scope::repo(state, scope, &request.repo).await?.id)
    };
    // a named repo was checked; otherwise only the token's repos
    let repo_ids = match repo_id {
        Some(_) => None,
        None => super::scope::repo_ids(state, scope).await?,
    };
    let build_state = if request.state == 0 {
        None
    } else {
        Some(
            ocelot_core::wire::build_state_from_i32(request.state)
                .map_err(|e| AdminError::Invalid(e.to_string()))?,
        )
    };
    let commit_prefix = commit_prefix(&request.commit_prefix)?;
    let builds = state
        .store
        .list_builds(&BuildFilter {
            repo_id,
            branch: (!request.branch.is_empty()).then_some(request.branch),
            state: build_state,
            limit: i64::from(request.limit),
            repo_ids,
            commit_prefix,
        })
        .await
        .map_err(AdminError::from)?;
    Ok(Response::new(pb::ListBuildsResponse {
        builds: builds.iter().map(pb::Build::from).collect(),
    }))
}

/// The shortest commit prefix `ListBuilds` takes: fewer digits match too many commits.
const MIN_COMMIT_PREFIX: usize = 4;

/// A `ListBuilds` commit prefix (`None`: empty, any commit): 4 to 40 hex digits, lower-cased
/// as commits are stored.
fn commit_prefix(text: &str) -> Result<Option<String>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    let valid = (MIN_COMMIT_PREFIX..=40).contains(&text.len())
        && text.chars().all(|c| c.is_ascii_hexdigit());
    if !valid {
        return Err(AdminError::Invalid(format!(
            "commit_prefix `{}` is not {MIN_COMMIT_PREFIX} to 40 hex digits",
            text.chars().take(48).collect::<String>()
        ))
        .into());
    }
    Ok(Some(text.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::commit_prefix;

    #[test]
    fn a_commit_prefix_is_4_to_40_hex_digits() {
        assert_eq!(commit_prefix("").unwrap(), None);
        assert_eq!(commit_prefix("AbC1").unwrap().as_deref(), Some("abc1"));
        assert!(commit_prefix(&"f".repeat(40)).unwrap().is_some());
        for bad in ["abc", "abcg", "12 4", "%abc", &"f".repeat(41)] {
            let status = commit_prefix(bad).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad}");
        }
    }
}
