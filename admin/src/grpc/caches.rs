//! Cache RPCs: a repo's saved caches (from Postgres), and clearing them (their objects go
//! with the retention task's next pass, through the deletion queue).

use crate::error::AdminError;
use crate::state::AppState;
use ocelot_core::auth::RepoScope;
use ocelot_core::model::unix_ms;
use ocelot_core::store::CacheEntry;
use ocelot_proto::v1 as pb;
use tonic::{Response, Status};

fn to_pb(entry: &CacheEntry) -> pb::CacheEntry {
    pb::CacheEntry {
        key: entry.key.clone(),
        branch: entry.scope.clone(),
        from_fork: entry.from_fork,
        size: entry.size,
        sha256: entry.sha256.clone(),
        build_id: entry.build_id.map(|id| id.get()).unwrap_or_default(),
        created_at_ms: unix_ms(entry.created_at),
        used_at_ms: unix_ms(entry.used_at),
        expires_at_ms: unix_ms(entry.expires_at),
    }
}

pub(super) async fn list(
    state: &AppState,
    scope: &RepoScope,
    request: pb::ListCachesRequest,
) -> Result<Response<pb::ListCachesResponse>, Status> {
    let repo = super::scope::repo(state, scope, &request.repo).await?;
    let caches = state
        .store
        .caches(repo.id)
        .await
        .map_err(AdminError::from)?;
    Ok(Response::new(pb::ListCachesResponse {
        caches: caches.iter().map(to_pb).collect(),
    }))
}

pub(super) async fn clear(
    state: &AppState,
    scope: &RepoScope,
    request: pb::ClearCachesRequest,
) -> Result<Response<pb::ClearCachesResponse>, Status> {
    let repo = super::scope::repo(state, scope, &request.repo).await?;
    let branch = (!request.branch.is_empty()).then_some(request.branch.as_str());
    let cleared = state
        .store
        .clear_caches(repo.id, &request.key_prefix, branch)
        .await
        .map_err(AdminError::from)?;
    tracing::info!(repo = %repo.name, cleared, key_prefix = %request.key_prefix, ?branch, "caches cleared");
    Ok(Response::new(pb::ClearCachesResponse { cleared }))
}
