//! Holding a token limited to some repos (`--repos team/*`) to them, in the handlers
//! (`auth::repo_rule` says which rule each RPC follows). A repo or build outside the token's
//! repos gets exactly the answer of one that does not exist, so a limited token cannot learn
//! which other repos or builds there are.

use crate::error::AdminError;
use crate::state::AppState;
use ocelot_core::auth::RepoScope;
use ocelot_core::ids::{BuildId, RepoId};
use ocelot_core::model::{Build, Repo};
use ocelot_core::store::StoreError;
use tonic::Status;

/// The answer for a repo that does not exist (as the store gives it).
pub(super) fn no_such_repo(asked: &str) -> Status {
    AdminError::from(StoreError::NotFound(format!("repo `{asked}`"))).into()
}

/// The answer for a build that does not exist (as the store gives it).
fn no_such_build(id: BuildId) -> Status {
    AdminError::from(StoreError::NotFound(format!("build {id}"))).into()
}

/// The caller's repo limit.
pub(super) fn of<T>(request: &tonic::Request<T>) -> Result<RepoScope, Status> {
    Ok(crate::auth::caller(request)?.repos.clone())
}

/// `Ok` when the repo named `name` is in scope; else the answer for a missing repo named
/// `asked` (what the caller typed: a name or a URL).
pub(super) fn check_repo(scope: &RepoScope, name: &str, asked: &str) -> Result<(), Status> {
    if scope.allows(name) {
        Ok(())
    } else {
        Err(no_such_repo(asked))
    }
}

/// The repo named (or at the URL) `asked`, when it exists and is in scope.
pub(super) async fn repo(state: &AppState, scope: &RepoScope, asked: &str) -> Result<Repo, Status> {
    let repo = state
        .store
        .find_repo(asked)
        .await
        .map_err(AdminError::from)?;
    check_repo(scope, &repo.name, asked)?;
    Ok(repo)
}

/// Checks the repo named (or at the URL) `asked` for a limited token (an unlimited one needs
/// no lookup: the handler's own answers stay as they were).
pub(super) async fn check_named_repo(
    state: &AppState,
    scope: &RepoScope,
    asked: &str,
) -> Result<(), Status> {
    if scope.is_all() {
        return Ok(());
    }
    repo(state, scope, asked).await.map(|_| ())
}

/// Build `id`, when it exists and its repo is in scope.
pub(crate) async fn build(
    state: &AppState,
    scope: &RepoScope,
    id: BuildId,
) -> Result<Build, Status> {
    let build = state.store.get_build(id).await.map_err(AdminError::from)?;
    if scope.allows(&build.repo_name) {
        Ok(build)
    } else {
        Err(no_such_build(id))
    }
}

/// Checks build `id` for a limited token (an unlimited one needs no lookup).
pub(super) async fn check_build(
    state: &AppState,
    scope: &RepoScope,
    id: BuildId,
) -> Result<(), Status> {
    if scope.is_all() {
        return Ok(());
    }
    build(state, scope, id).await.map(|_| ())
}

/// The ids of the repos in scope, for filtering lists; `None` for an unlimited token.
pub(super) async fn repo_ids(
    state: &AppState,
    scope: &RepoScope,
) -> Result<Option<Vec<RepoId>>, Status> {
    if scope.is_all() {
        return Ok(None);
    }
    let repos = state.store.list_repos().await.map_err(AdminError::from)?;
    Ok(Some(
        repos
            .iter()
            .filter(|r| scope.allows(&r.name))
            .map(|r| r.id)
            .collect(),
    ))
}

/// Refuses to add a repo outside the token's repos (it does not exist yet, so saying so
/// tells nothing).
pub(super) fn may_add_repo(scope: &RepoScope, name: &str) -> Result<(), Status> {
    if scope.allows(name) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "this token is limited to the repos `{scope}`; `{name}` is not one of them"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_scope_answers_like_missing() {
        let scope = RepoScope::parse_list("team/*").unwrap();
        assert!(check_repo(&scope, "team/app", "team/app").is_ok());
        let hidden = check_repo(&scope, "other/app", "other/app").unwrap_err();
        let missing = no_such_repo("other/app");
        assert_eq!(hidden.code(), tonic::Code::NotFound);
        assert_eq!(hidden.code(), missing.code());
        assert_eq!(hidden.message(), missing.message());
        assert!(check_repo(&RepoScope::all(), "other/app", "other/app").is_ok());
    }
}
