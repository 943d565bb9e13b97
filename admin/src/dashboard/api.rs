//! The JSON the page reads: builds (listed, one with its stages), a page of a build's log, the
//! workers. Everything goes through the RPC handlers, with the viewer token's repo limit.

use super::json;
use super::session::{Refusal, Viewer};
use crate::error::AdminError;
use crate::grpc::{builds, scope};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use ocelot_core::ids::{BuildId, Seq};
use ocelot_proto::v1 as pb;
use serde_json::{Value, json};

/// How many builds a list shows at most.
const MAX_BUILDS: u32 = 200;
/// How many events a page of a log holds at most (a run of lines is one event)...
const LOG_PAGE_EVENTS: i64 = 100;
/// ...and how much text, so that a flood of long lines comes in pieces too.
const LOG_PAGE_BYTES: usize = 1 << 20;

#[derive(Debug, serde::Deserialize)]
pub(super) struct BuildFilter {
    #[serde(default)]
    repo: String,
    #[serde(default)]
    branch: String,
    /// `queued`, `running`, `passed`, ... (empty: any).
    #[serde(default)]
    state: String,
    #[serde(default)]
    limit: Option<u32>,
}

fn state_number(name: &str) -> Result<i32, Refusal> {
    if name.is_empty() {
        return Ok(0);
    }
    let full = format!("BUILD_STATE_{}", name.to_ascii_uppercase());
    pb::BuildState::from_str_name(&full)
        .map(i32::from)
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("unknown state `{name}`: queued, running, passed, failed, errored, cancelled, timed_out or skipped"),
            )
        })
}

/// `GET /api/builds?repo=&branch=&state=&limit=`: the newest builds first; a queued one says
/// why it waits.
pub(super) async fn builds(
    State(state): State<AppState>,
    Viewer(token): Viewer,
    Query(filter): Query<BuildFilter>,
) -> Result<Json<Value>, Refusal> {
    let request = pb::ListBuildsRequest {
        repo: filter.repo,
        branch: filter.branch,
        state: state_number(&filter.state)?,
        limit: filter.limit.unwrap_or(50).clamp(1, MAX_BUILDS),
        ..Default::default()
    };
    let listed = builds::list(&state, &token.repos, request)
        .await?
        .into_inner()
        .builds;
    // one look at the worker registry, when some build waits
    let any_queued = listed
        .iter()
        .any(|build| build.state == i32::from(pb::BuildState::Queued));
    let reason = if any_queued {
        Some(crate::pending::reasons(&state).await)
    } else {
        None
    };
    let mut rows = Vec::with_capacity(listed.len());
    for build in &listed {
        let mut row = json::build(build);
        if let Some(reason) = &reason
            && build.state == i32::from(pb::BuildState::Queued)
        {
            row["pending_reason"] = json!(reason(&build.tag));
        }
        rows.push(row);
    }
    Ok(Json(json!({ "builds": rows })))
}

/// `GET /api/builds/ID`: the build, the stages of its latest attempt, why it waits.
pub(super) async fn build(
    State(state): State<AppState>,
    Viewer(token): Viewer,
    Path(id): Path<i64>,
) -> Result<Json<Value>, Refusal> {
    let detail = builds::get(&state, &token.repos, pb::GetBuildRequest { id })
        .await?
        .into_inner();
    let build = detail
        .build
        .as_ref()
        .map(json::build)
        .unwrap_or(Value::Null);
    Ok(Json(json!({
        "build": build,
        "stages": detail.stages.iter().map(json::stage).collect::<Vec<_>>(),
        "pending_reason": detail.pending_reason,
    })))
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct LogPosition {
    /// The last sequence number the page has (0: from the first event).
    #[serde(default)]
    after: u64,
}

/// `GET /api/builds/ID/log?after=SEQ`: the next page of the stored log of the build's current
/// attempt. `more` says whether another page follows; once none does, the page follows the
/// rest live from `next_after` (`/events`).
pub(super) async fn log_page(
    State(state): State<AppState>,
    Viewer(token): Viewer,
    Path(id): Path<i64>,
    Query(position): Query<LogPosition>,
) -> Result<Json<Value>, Refusal> {
    let build = scope::build(&state, &token.repos, BuildId::from(id)).await?;
    let stored = state
        .store
        .events(
            build.id,
            build.attempt,
            Seq::from(position.after),
            Seq::from(u64::MAX),
            LOG_PAGE_EVENTS,
        )
        .await
        .map_err(|error| Refusal::from(tonic::Status::from(AdminError::from(error))))?;
    let full_page = stored.len() as i64 == LOG_PAGE_EVENTS;
    let mut events = Vec::with_capacity(stored.len());
    let mut bytes = 0;
    let mut next_after = position.after;
    for event in &stored {
        if bytes >= LOG_PAGE_BYTES {
            break;
        }
        let message = pb::BuildEvent::from(event);
        bytes += message_text_len(&message);
        next_after = json::last_seq(&message);
        events.push(json::event(&message));
    }
    let more = full_page || events.len() < stored.len();
    Ok(Json(json!({
        "attempt": build.attempt.get(),
        "events": events,
        "more": more,
        "next_after": next_after,
    })))
}

fn message_text_len(message: &pb::BuildEvent) -> usize {
    match &message.kind {
        Some(pb::build_event::Kind::Lines(lines)) => lines.text.len(),
        Some(pb::build_event::Kind::Line(line)) => line.text.len(),
        _ => 64,
    }
}

/// `GET /api/workers`: the live workers (tags, slots, why paused).
pub(super) async fn workers(
    State(state): State<AppState>,
    Viewer(_token): Viewer,
) -> Result<Json<Value>, Refusal> {
    let workers = state.bus.list_workers().await.map_err(|error| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the worker registry: {error}"),
        )
    })?;
    Ok(Json(json!({ "workers": workers })))
}
