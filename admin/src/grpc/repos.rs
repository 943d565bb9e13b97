//! Repository RPCs: add, list, remove.

use crate::error::AdminError;
use crate::state::AppState;
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
    ocelot_core::repo_url::check_no_credentials(url)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    let known = ["git://", "http://", "https://", "file://", "ssh://"];
    if known.iter().any(|scheme| url.starts_with(scheme)) || url.contains('@') {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "invalid repo URL `{url}`: expected git://, http(s)://, ssh:// or file:// URL"
        )))
    }
}

/// A repo as shown: a URL registered with credentials in it (before they were refused) has
/// them replaced by `***`.
fn redacted(repo: &ocelot_core::model::Repo) -> pb::Repo {
    let mut wire = pb::Repo::from(repo);
    wire.url = ocelot_core::repo_url::redact_credentials(&wire.url).into_owned();
    wire
}

/// A random webhook secret: 64 hex characters.
fn generate_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub(super) async fn add(
    state: &AppState,
    request: pb::AddRepoRequest,
) -> Result<Response<pb::AddRepoResponse>, Status> {
    validate_name(&request.name)?;
    validate_url(&request.url)?;
    let branch = if request.default_branch.is_empty() {
        "main".to_string()
    } else {
        request.default_branch
    };
    let secret = if request.webhook_secret.is_empty() {
        generate_secret()
    } else if request.webhook_secret.len() < 16 {
        return Err(AdminError::Invalid(
            "the webhook secret is too short: use at least 16 characters (or let Ocelot generate one)".into(),
        )
        .into());
    } else {
        request.webhook_secret
    };
    // sealed like credentials; never stored in plain text
    let key = state
        .master_key
        .as_ref()
        .ok_or(ocelot_core::secrets::SecretError::NoMasterKey)
        .map_err(AdminError::from)?;
    let sealed = ocelot_core::secrets::webhook::seal(key, &request.name, &secret)
        .map_err(AdminError::from)?;
    let repo = state
        .store
        .add_repo(&request.name, &request.url, &branch, Some(&sealed))
        .await
        .map_err(AdminError::from)?;
    tracing::info!(repo = %repo.name, url = %repo.url, "repo added");
    Ok(Response::new(pb::AddRepoResponse {
        repo: Some(pb::Repo::from(&repo)),
        webhook_secret: secret,
    }))
}

pub(super) async fn list(
    state: &AppState,
    scope: &ocelot_core::auth::RepoScope,
    _request: pb::ListReposRequest,
) -> Result<Response<pb::ListReposResponse>, Status> {
    let repos = state.store.list_repos().await.map_err(AdminError::from)?;
    Ok(Response::new(pb::ListReposResponse {
        repos: repos
            .iter()
            .filter(|r| scope.allows(&r.name))
            .map(redacted)
            .collect(),
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

pub(super) async fn set_options(
    state: &AppState,
    request: pb::SetRepoOptionsRequest,
) -> Result<Response<pb::Repo>, Status> {
    let mut repo = state
        .store
        .find_repo(&request.name)
        .await
        .map_err(AdminError::from)?;
    if let Some(allowed) = request.secrets_for_forks {
        repo = state
            .store
            .set_repo_secrets_for_forks(&repo.name, allowed)
            .await
            .map_err(AdminError::from)?;
        tracing::info!(repo = %repo.name, allowed, "secrets for forks set");
    }
    if let Some(allowed) = request.allow_host {
        repo = state
            .store
            .set_repo_allow_host(&repo.name, allowed)
            .await
            .map_err(AdminError::from)?;
        tracing::info!(repo = %repo.name, allowed, "host execution set");
    }
    Ok(Response::new(redacted(&repo)))
}
