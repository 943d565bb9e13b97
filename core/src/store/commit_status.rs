//! Commit statuses in the outbox: one row (kind `status`) per state a build reaches that a
//! forge shows (queued, running, its result), inserted in the transaction that records the
//! state. Rows of one build and commit share the coalescing key `status:<build>:<commit>`:
//! they go out one at a time and only the newest waiting one is sent (the last state wins).
//!
//! A row is queued only for a repo whose forge is known (set by `ocelot repos set --forge`,
//! else told by the URL's host) and that has a `vcs` credential for the repo URL's host
//! (the token that clones from github.com is the one that writes statuses through
//! api.github.com). The row's payload holds what the sender needs besides the credential:
//! the forge, its API's base URL, the repo's path there and the commit.

use super::StoreError;
use crate::build_state::BuildState;
use crate::ids::BuildId;
use deadpool_postgres::GenericClient;
use ocelot_domain::forge::{repo_path, resolve};
use ocelot_domain::repo_url::url_host;

/// The outbox kind of a commit status.
pub const STATUS_KIND: &str = "status";

/// The context (GitHub, Gitea), name (GitLab) or key (Bitbucket) of a repo's statuses.
pub fn status_context(repo: &str) -> String {
    format!("ocelot/{repo}")
}

/// Queues the commit status of `build_id`'s current state, when its repo has a known forge
/// and a `vcs` credential for its host; false when none is queued.
pub(super) async fn enqueue_status(
    client: &impl GenericClient,
    build_id: BuildId,
) -> Result<bool, StoreError> {
    let row = client
        .query_opt(
            "SELECT b.state, b.commit_sha, r.name, r.url, r.forge, r.forge_api_url
             FROM builds b JOIN repos r ON r.id = b.repo_id WHERE b.id = $1",
            &[&build_id.to_db()],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("build {build_id}")))?;
    let url: String = row.get("url");
    let forge = resolve(
        row.get::<_, Option<&str>>("forge"),
        row.get::<_, Option<&str>>("forge_api_url"),
        &url,
    )
    .map_err(|e| StoreError::Corrupt(format!("build {build_id}: {e}")))?;
    let Some((forge, Some(api_url))) = forge else {
        return Ok(false);
    };
    let (Some(path), Some(host)) = (repo_path(&url), url_host(&url)) else {
        return Ok(false);
    };
    let state: BuildState = row
        .get::<_, String>("state")
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("build {build_id}: state: {e}")))?;
    if forge.status_state(state).is_none() {
        return Ok(false);
    }
    let repo: String = row.get("name");
    let has_credential = client
        .query_opt(
            "SELECT 1 FROM credentials
             WHERE kind = 'vcs' AND details->>'host' = $2
               AND ((scope_kind = 'repo' AND scope = $1)
                    OR (scope_kind = 'prefix' AND starts_with($1, scope)))
             LIMIT 1",
            &[&repo, &host],
        )
        .await?
        .is_some();
    if !has_credential {
        return Ok(false);
    }
    let commit: String = row.get("commit_sha");
    let payload = serde_json::json!({
        "forge": forge.as_str(),
        "api_url": api_url,
        "path": path,
        "commit": commit,
    });
    client
        .execute(
            "INSERT INTO outbox (build_id, kind, target, payload, reports, coalesce_key)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &build_id.to_db(),
                &STATUS_KIND,
                &status_context(&repo),
                &payload,
                &state.as_str(),
                &format!("status:{build_id}:{commit}"),
            ],
        )
        .await?;
    Ok(true)
}
