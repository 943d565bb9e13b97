//! API token RPCs (admin scope): create (shown once), list (never values), revoke.

use crate::error::AdminError;
use crate::state::AppState;
use ocelot_core::auth::{RepoScope, TokenScope};
use ocelot_core::model::unix_ms;
use ocelot_proto::v1 as pb;
use tonic::{Response, Status};

pub(super) async fn create(
    state: &AppState,
    request: pb::CreateTokenRequest,
) -> Result<Response<pb::CreateTokenResponse>, Status> {
    let scope: TokenScope = request
        .scope
        .parse()
        .map_err(|e: ocelot_core::auth::UnknownScope| Status::invalid_argument(e.to_string()))?;
    if request.name.trim().is_empty() {
        return Err(Status::invalid_argument("a token needs a name"));
    }
    // no patterns: every repo; patterns that are all blank are a mistake, not "every repo"
    let repos = if request.repos.is_empty() {
        RepoScope::all()
    } else {
        RepoScope::parse_list(&request.repos.join(","))
            .map_err(|e| Status::invalid_argument(e.to_string()))?
    };
    let token = state
        .store
        .create_scoped_token(request.name.trim(), scope, &repos)
        .await
        .map_err(AdminError::from)?;
    tracing::info!(name = %request.name, %scope, %repos, "API token created");
    Ok(Response::new(pb::CreateTokenResponse { token }))
}

pub(super) async fn list(state: &AppState) -> Result<Response<pb::ListTokensResponse>, Status> {
    let tokens = state.store.list_tokens().await.map_err(AdminError::from)?;
    Ok(Response::new(pb::ListTokensResponse {
        tokens: tokens
            .iter()
            .map(|t| pb::ApiToken {
                name: t.name.clone(),
                scope: t.scope.as_str().to_string(),
                created_at_ms: unix_ms(t.created_at),
                last_used_at_ms: t.last_used_at.map(unix_ms).unwrap_or(0),
                revoked_at_ms: t.revoked_at.map(unix_ms).unwrap_or(0),
                repos: t.repos.patterns().to_vec(),
            })
            .collect(),
    }))
}

pub(super) async fn revoke(
    state: &AppState,
    request: pb::RevokeTokenRequest,
) -> Result<Response<pb::RevokeTokenResponse>, Status> {
    state
        .store
        .revoke_token(&request.name)
        .await
        .map_err(AdminError::from)?;
    tracing::info!(name = %request.name, "API token revoked");
    Ok(Response::new(pb::RevokeTokenResponse {}))
}
