//! Repository RPCs: add, list, remove.

use crate::AppState;
use crate::error::AdminError;
use ocelot_proto::v1 as pb;
use tonic::{Response, Status};

fn validate_name(name: &str) -> Result<(), AdminError> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "invalid repo name `{name}`: use letters, digits, `-`, `_`, `.` and `/`"
        )))
    }
}

fn validate_url(url: &str) -> Result<(), AdminError> {
    let known = ["git://", "http://", "https://", "file://", "ssh://"];
    if known.iter().any(|scheme| url.starts_with(scheme)) || url.contains('@') {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "invalid repo URL `{url}`: expected git://, http(s)://, ssh:// or file:// URL"
        )))
    }
}

pub(super) async fn add(
    state: &AppState,
    request: pb::AddRepoRequest,
) -> Result<Response<pb::Repo>, Status> {
    validate_name(&request.name)?;
    validate_url(&request.url)?;
    let branch = if request.default_branch.is_empty() {
        "main".to_string()
    } else {
        request.default_branch
    };
    let repo = state
        .store
        .add_repo(&request.name, &request.url, &branch)
        .await
        .map_err(AdminError::from)?;
    tracing::info!(repo = %repo.name, url = %repo.url, "repo added");
    Ok(Response::new(pb::Repo::from(&repo)))
}

pub(super) async fn list(
    state: &AppState,
    _request: pb::ListReposRequest,
) -> Result<Response<pb::ListReposResponse>, Status> {
    let repos = state.store.list_repos().await.map_err(AdminError::from)?;
    Ok(Response::new(pb::ListReposResponse {
        repos: repos.iter().map(pb::Repo::from).collect(),
    }))
}

pub(super) async fn remove(
    state: &AppState,
    request: pb::RemoveRepoRequest,
) -> Result<Response<pb::RemoveRepoResponse>, Status> {
    state
        .store
        .remove_repo(&request.name)
        .await
        .map_err(AdminError::from)?;
    tracing::info!(repo = %request.name, "repo removed");
    Ok(Response::new(pb::RemoveRepoResponse {}))
}
