//! Poll RPCs: add (or replace), list, remove.

use crate::error::AdminError;
use crate::state::AppState;
use ocelot_core::auth::RepoScope;
use ocelot_core::schedule::{self, BranchPatterns};
use ocelot_proto::v1 as pb;
use std::time::SystemTime;
use tonic::{Response, Status};

pub(super) async fn add(
    state: &AppState,
    request: pb::AddPollRequest,
) -> Result<Response<pb::Poll>, Status> {
    let repo = state
        .store
        .find_repo(&request.repo)
        .await
        .map_err(AdminError::from)?;
    let invalid = |e: schedule::ScheduleError| AdminError::Invalid(e.to_string());
    let schedule = schedule::parse_schedule(&request.every, &request.cron).map_err(invalid)?;
    let mut branches: Vec<String> = request
        .branches
        .iter()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    if branches.is_empty() {
        branches.push(repo.default_branch.clone());
    }
    BranchPatterns::new(&branches).map_err(invalid)?;
    let now = SystemTime::now();
    let poll = state
        .store
        .upsert_poll(
            repo.id,
            &branches,
            &schedule,
            request.build_now,
            schedule::first_due(&schedule, now),
        )
        .await
        .map_err(AdminError::from)?;
    tracing::info!(repo = %repo.name, ?branches, "poll added");
    Ok(Response::new(pb::Poll::from(&poll)))
}

pub(super) async fn list(
    state: &AppState,
    scope: &RepoScope,
) -> Result<Response<pb::ListPollsResponse>, Status> {
    let polls = state.store.list_polls().await.map_err(AdminError::from)?;
    Ok(Response::new(pb::ListPollsResponse {
        polls: polls
            .iter()
            .filter(|p| scope.allows(&p.repo_name))
            .map(pb::Poll::from)
            .collect(),
    }))
}

pub(super) async fn remove(
    state: &AppState,
    request: pb::RemovePollRequest,
) -> Result<Response<pb::RemovePollResponse>, Status> {
    let repo = state
        .store
        .find_repo(&request.repo)
        .await
        .map_err(AdminError::from)?;
    state
        .store
        .remove_poll(repo.id)
        .await
        .map_err(|e| match e {
            ocelot_core::store::StoreError::NotFound(_) => {
                AdminError::Invalid(format!("repo `{}` is not polled", repo.name))
            }
            other => AdminError::Store(other),
        })?;
    Ok(Response::new(pb::RemovePollResponse {}))
}
