//! `ocelot kill`: a queued build is cancelled at once; a running one is asked to stop (a
//! flag in Postgres and a message on the bus) and the answer waits until its attempt has
//! ended, which is after its container is gone; a finished build is left alone.

use crate::error::AdminError;
use crate::state::AppState;
use ocelot_core::cancel::CancelOutcome;
use ocelot_core::ids::BuildId;
use ocelot_core::model::Build;
use ocelot_proto::v1 as pb;
use std::time::Duration;
use tonic::{Response, Status};

/// How long the answer waits for the worker to stop a running build.
const STOP_WAIT: Duration = Duration::from_secs(15);

fn answer(
    build: &Build,
    outcome: CancelOutcome,
    message: String,
) -> Response<pb::CancelBuildResponse> {
    Response::new(pb::CancelBuildResponse {
        build: Some(pb::Build::from(build)),
        outcome: pb::CancelOutcome::from(outcome).into(),
        message,
    })
}

pub(crate) async fn cancel(
    state: &AppState,
    build_id: BuildId,
    by: &str,
) -> Result<Response<pb::CancelBuildResponse>, Status> {
    let reason = format!("cancelled by {by}");
    if let Some(build) = state
        .store
        .cancel_queued_build(build_id, &reason)
        .await
        .map_err(AdminError::from)?
    {
        tracing::info!(build_id = build_id.get(), %by, "queued build cancelled");
        return Ok(answer(
            &build,
            CancelOutcome::Cancelled,
            format!("build {build_id} cancelled before it started"),
        ));
    }
    if !state
        .store
        .request_cancel(build_id, by)
        .await
        .map_err(AdminError::from)?
    {
        let build = state
            .store
            .get_build(build_id)
            .await
            .map_err(AdminError::from)?;
        return Ok(answer(
            &build,
            CancelOutcome::AlreadyFinal,
            format!(
                "build {build_id} already finished ({}): nothing to cancel",
                build.state
            ),
        ));
    }
    if let Err(error) = state.bus.publish_cancel(build_id).await {
        // the worker also sees the flag in Postgres between stages
        tracing::warn!(build_id = build_id.get(), %error, "cannot publish the cancel request");
    }
    tracing::info!(build_id = build_id.get(), %by, "cancel of a running build requested");
    let deadline = tokio::time::Instant::now() + STOP_WAIT;
    loop {
        let build = state
            .store
            .get_build(build_id)
            .await
            .map_err(AdminError::from)?;
        if build.state.is_final() {
            return Ok(if build.state == ocelot_core::BuildState::Cancelled {
                answer(
                    &build,
                    CancelOutcome::Cancelled,
                    format!("build {build_id} cancelled: its container is gone"),
                )
            } else {
                answer(
                    &build,
                    CancelOutcome::FinishedFirst,
                    format!(
                        "build {build_id} ended {} before the cancel reached it",
                        build.state
                    ),
                )
            });
        }
        if tokio::time::Instant::now() >= deadline {
            let worker = build.worker.clone().unwrap_or_else(|| "its worker".into());
            return Ok(answer(
                &build,
                CancelOutcome::NotConfirmed,
                format!(
                    "worker {worker} did not confirm within {} s (it may be unreachable); the cancel stays recorded and the build stops when that worker, or the one that takes it over, sees it",
                    STOP_WAIT.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
