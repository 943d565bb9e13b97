//! Repository RPCs: add, list, remove.

use crate::error::AdminError;
use crate::forge::ForgeApi;
use crate::state::AppState;
use ocelot_core::forge::{Forge, resolve};
use ocelot_core::secrets::SecretStore;
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
    if request.forge.is_some() || request.forge_api_url.is_some() {
        let (forge, api_url) = forge_settings(
            &repo,
            request.forge.as_deref(),
            request.forge_api_url.as_deref(),
        )?;
        repo = state
            .store
            .set_repo_forge(&repo.name, forge.as_deref(), api_url.as_deref())
            .await
            .map_err(AdminError::from)?;
        tracing::info!(repo = %repo.name, forge = ?repo.forge, api_url = ?repo.forge_api_url,
            "forge set");
    }
    Ok(Response::new(redacted(&repo)))
}

/// The forge and API URL to store for `repo` from `repos set --forge F --api-url URL` (unset:
/// unchanged; `auto`: cleared, told by the URL's host / the forge's public API).
fn forge_settings(
    repo: &ocelot_core::model::Repo,
    forge: Option<&str>,
    api_url: Option<&str>,
) -> Result<(Option<String>, Option<String>), AdminError> {
    let auto = |value: &str| value.trim().eq_ignore_ascii_case("auto");
    let forge = match forge {
        None => repo.forge.clone(),
        Some(value) if auto(value) => None,
        Some(value) => Some(
            value
                .parse::<Forge>()
                .map_err(|e| AdminError::Invalid(format!("--forge: {e} (or auto)")))?
                .to_string(),
        ),
    };
    let api_url = match api_url {
        None => repo.forge_api_url.clone(),
        Some(value) if auto(value) => None,
        Some(value) => {
            let value = value.trim().trim_end_matches('/');
            if !(value.starts_with("https://") || value.starts_with("http://"))
                || value.contains(char::is_whitespace)
            {
                return Err(AdminError::Invalid(format!(
                    "--api-url `{value}`: expected an http(s):// URL such as https://gitea.example/api/v1"
                )));
            }
            ocelot_core::repo_url::check_no_credentials(value)
                .map_err(|e| AdminError::Invalid(format!("--api-url: {e}")))?;
            Some(value.to_string())
        }
    };
    match resolve(forge.as_deref(), api_url.as_deref(), &repo.url) {
        Ok(Some((forge, None))) => Err(AdminError::Invalid(format!(
            "repo {}: {forge} has no public API: give its API URL with --api-url (e.g. https://gitea.example/api/v1)",
            repo.name
        ))),
        Ok(None) if api_url.is_some() => Err(AdminError::Invalid(format!(
            "repo {}: its forge is not told by its URL: name it with --forge github|gitlab|bitbucket|gitea",
            repo.name
        ))),
        Ok(_) => Ok((forge, api_url)),
        Err(e) => Err(AdminError::Invalid(e.to_string())),
    }
}

/// `ocelot repos hook`: creates (or removes) the repo's webhook on its forge with the repo's
/// webhook secret and vcs credential; the forge's refusal is shown as it is.
pub(super) async fn hook(
    state: &AppState,
    request: pb::HookRepoRequest,
) -> Result<Response<pb::HookRepoResponse>, Status> {
    let repo = state
        .store
        .find_repo(&request.name)
        .await
        .map_err(AdminError::from)?;
    let base = request.hooks_url.trim().trim_end_matches('/');
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err(AdminError::Invalid(format!(
            "--hooks-url `{base}`: expected the hookhandler's public http(s):// URL"
        ))
        .into());
    }
    let Some((forge, Some(api_url))) = resolve(
        repo.forge.as_deref(),
        repo.forge_api_url.as_deref(),
        &repo.url,
    )
    .map_err(|e| AdminError::Invalid(e.to_string()))?
    else {
        return Err(AdminError::Invalid(format!(
            "repo {}: no known forge: set it with `ocelot repos set {} --forge github|gitlab|bitbucket|gitea --api-url URL`",
            repo.name, repo.name
        ))
        .into());
    };
    let Some(path) = ocelot_core::forge::repo_path(&repo.url) else {
        return Err(AdminError::Invalid(format!(
            "repo {}: its URL {} names no path on the forge",
            repo.name, repo.url
        ))
        .into());
    };
    let credentials = state
        .secrets
        .for_repo(&repo.name)
        .await
        .map_err(AdminError::from)?;
    let credentials = ocelot_core::secrets::BuildCredentials::new(credentials);
    let Some(credential) = credentials.all().iter().find(|c| {
        c.info.kind == ocelot_core::secrets::CredentialKind::Vcs
            && c.info.details.serves_url(&repo.url)
    }) else {
        return Err(AdminError::Invalid(format!(
            "repo {}: no vcs credential for the host of {}: add the forge token with `ocelot creds add vcs NAME -r {}`",
            repo.name, repo.url, repo.name
        ))
        .into());
    };
    let api = ForgeApi {
        forge,
        api_url,
        path,
        username: credential.info.details.username.clone(),
        token: credential.value.clone(),
    };
    let hook_url = format!("{base}/hooks/{forge}");
    let client = crate::notifier::http_client().map_err(|e| Status::internal(e.to_string()))?;
    let failed = |e: crate::forge::hooks::HookError| Status::failed_precondition(e.to_string());
    let mut removed = 0;
    if request.remove {
        let count = crate::forge::hooks::remove_hook(&client, &api, &hook_url)
            .await
            .map_err(failed)?;
        removed = u32::try_from(count).unwrap_or(u32::MAX);
        tracing::info!(repo = %repo.name, %forge, removed, "forge webhook removed");
    } else {
        let stored = state
            .store
            .webhook_secret(&repo.name)
            .await
            .map_err(AdminError::from)?
            .ok_or_else(|| {
                AdminError::Invalid(format!("repo {} has no webhook secret", repo.name))
            })?;
        let secret =
            ocelot_core::secrets::webhook::open(state.master_key.as_ref(), &repo.name, &stored)
                .map_err(AdminError::from)?;
        crate::forge::hooks::create_hook(&client, &api, &hook_url, &secret)
            .await
            .map_err(failed)?;
        tracing::info!(repo = %repo.name, %forge, "forge webhook created");
    }
    Ok(Response::new(pb::HookRepoResponse {
        forge: forge.to_string(),
        hook_url,
        removed,
    }))
}
