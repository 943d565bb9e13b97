//! Credential RPCs: add (sealed with the master key), list (never values), remove.

use crate::error::AdminError;
use crate::state::AppState;
use ocelot_core::model::unix_ms;
use ocelot_core::secrets::{
    CredentialDetails, CredentialInfo, CredentialKind, Scope, SecretError, SecretStore,
    SecretValue, normalize_host,
};
use ocelot_proto::v1 as pb;
use pb::credential_scope::Scope as WireScope;
use tonic::{Response, Status};

fn scope_from_wire(scope: Option<pb::CredentialScope>) -> Result<Scope, Status> {
    match scope.and_then(|s| s.scope) {
        Some(WireScope::Repo(repo)) => Ok(Scope::Repo(repo)),
        Some(WireScope::Prefix(prefix)) => Ok(Scope::Prefix(prefix)),
        None => Err(Status::invalid_argument(
            "a credential needs a scope: a repo or a prefix",
        )),
    }
}

/// A token limited to some repos manages only credentials of one repo among them (a prefix
/// may cover repos outside them); one of another repo is answered as a missing repo.
pub(super) fn check_scope(
    repos: &ocelot_core::auth::RepoScope,
    scope: Option<&pb::CredentialScope>,
) -> Result<(), Status> {
    if repos.is_all() {
        return Ok(());
    }
    match scope.and_then(|s| s.scope.as_ref()) {
        Some(WireScope::Repo(repo)) => super::scope::check_repo(repos, repo, repo),
        Some(WireScope::Prefix(_)) => Err(Status::permission_denied(format!(
            "this token is limited to the repos `{repos}`; credentials for a prefix need a token for every repo"
        ))),
        None => Ok(()),
    }
}

/// Whether a token limited to `repos` sees a credential: one of a repo among them.
fn visible(repos: &ocelot_core::auth::RepoScope, scope: &Scope) -> bool {
    match scope {
        Scope::Repo(repo) => repos.allows(repo),
        Scope::Prefix(_) => repos.is_all(),
    }
}

fn scope_to_wire(scope: &Scope) -> pb::CredentialScope {
    pb::CredentialScope {
        scope: Some(match scope {
            Scope::Repo(repo) => WireScope::Repo(repo.clone()),
            Scope::Prefix(prefix) => WireScope::Prefix(prefix.clone()),
        }),
    }
}

fn to_wire(info: &CredentialInfo) -> pb::Credential {
    pb::Credential {
        name: info.name.clone(),
        kind: info.kind.as_str().to_string(),
        scope: Some(scope_to_wire(&info.scope)),
        created_at_ms: unix_ms(info.created_at),
        updated_at_ms: unix_ms(info.updated_at),
        username: info.details.username.clone().unwrap_or_default(),
        registry: info.details.registry.clone().unwrap_or_default(),
        checks_host_key: info.details.known_hosts.is_some(),
        host: info.details.host.clone().unwrap_or_default(),
        path: info.details.path.clone().unwrap_or_default(),
        url: info.details.url.clone().unwrap_or_default(),
    }
}

/// The host a `vcs` token is bound to: the one given (normalised), else the host of its
/// repo's URL. Other kinds keep what was given (validation refuses a host for them).
fn vcs_host(
    kind: CredentialKind,
    given: &str,
    repo: Option<&ocelot_core::model::Repo>,
) -> Result<Option<String>, Status> {
    let given = given.trim();
    if !given.is_empty() {
        if kind != CredentialKind::Vcs {
            return Ok(Some(given.to_string()));
        }
        return normalize_host(given).map(Some).ok_or_else(|| {
            Status::invalid_argument(format!(
                "`{given}` is not a host (e.g. `github.com` or `10.0.0.5`, without scheme or path)"
            ))
        });
    }
    if kind != CredentialKind::Vcs {
        return Ok(None);
    }
    Ok(repo.and_then(|repo| ocelot_core::repo_url::url_host(&repo.url)))
}

fn secret_status(error: SecretError) -> Status {
    AdminError::from(error).into()
}

pub(super) async fn add(
    state: &AppState,
    request: pb::AddCredentialRequest,
) -> Result<Response<pb::Credential>, Status> {
    let kind: CredentialKind = request.kind.parse().map_err(secret_status)?;
    let scope = scope_from_wire(request.scope)?;
    let repo = match &scope {
        Scope::Repo(repo) => Some(
            state
                .store
                .find_repo(repo)
                .await
                .map_err(AdminError::from)?,
        ),
        Scope::Prefix(_) => None,
    };
    let value = String::from_utf8(request.value).map_err(|_| {
        Status::invalid_argument(match kind {
            CredentialKind::File => "the file is not UTF-8 text: a file credential holds text (a kubeconfig, a PEM key, settings.xml); store a binary file base64-encoded and decode it in the script (`base64 -d`)",
            _ => "the value is not UTF-8 text",
        })
    })?;
    // a file is kept as it is (an SSH key needs its last line break); other values lose
    // the line break `echo` adds
    let value = SecretValue::new(match kind {
        CredentialKind::File => value,
        _ => value
            .strip_suffix('\n')
            .map(str::to_string)
            .unwrap_or(value),
    });
    let optional = |text: String| Some(text.trim().to_string()).filter(|t| !t.is_empty());
    let details = CredentialDetails {
        username: optional(request.username),
        registry: optional(request.registry),
        known_hosts: optional(request.known_hosts),
        host: vcs_host(kind, &request.host, repo.as_ref())?,
        path: optional(request.path),
        url: optional(request.url),
    };
    state
        .secrets
        .add(&request.name, kind, &scope, &details, &value)
        .await
        .map_err(secret_status)?;
    tracing::info!(name = %request.name, kind = kind.as_str(), %scope, "credential stored");
    let listed = state.secrets.list().await.map_err(secret_status)?;
    let info = listed
        .iter()
        .find(|c| c.name == request.name && c.kind == kind && c.scope == scope)
        .ok_or_else(|| Status::internal("the credential vanished"))?;
    Ok(Response::new(to_wire(info)))
}

pub(super) async fn list(
    state: &AppState,
    repos: &ocelot_core::auth::RepoScope,
) -> Result<Response<pb::ListCredentialsResponse>, Status> {
    let listed = state.secrets.list().await.map_err(secret_status)?;
    Ok(Response::new(pb::ListCredentialsResponse {
        credentials: listed
            .iter()
            .filter(|c| visible(repos, &c.scope))
            .map(to_wire)
            .collect(),
    }))
}

pub(super) async fn remove(
    state: &AppState,
    request: pb::RemoveCredentialRequest,
) -> Result<Response<pb::RemoveCredentialResponse>, Status> {
    let kind: CredentialKind = request.kind.parse().map_err(secret_status)?;
    let scope = scope_from_wire(request.scope)?;
    state
        .secrets
        .remove(&request.name, kind, &scope)
        .await
        .map_err(secret_status)?;
    Ok(Response::new(pb::RemoveCredentialResponse {}))
}
