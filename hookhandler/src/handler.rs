//! One webhook request, from bytes to status code:
//! (rate limit, 429, in `rate_limit::limit` before the body is read) → provider (404) →
//! the repo's name and URLs, read without parsing the rest (400) → repo and its secret →
//! signature over the raw body (401) → parse (400) → event: ping 200, not built 202, push or
//! pull request: recorded once (a repeated delivery id: 200, nothing queued again), durably
//! (group commit, `record`: answered after the commit; not recorded: 503) → 202.
//! An unknown repo gets exactly the answer of a bad signature (it is verified against a
//! random stand-in secret, then refused), so registered repos cannot be enumerated. Never a
//! 5xx for bad input, never a panic.

use crate::processor::StoredRequest;
use crate::providers::{self, HookError, HookEvent, Provider};
use crate::record::{PendingDelivery, RecordError};
use crate::state::AppState;
use crate::trigger::StoredTrigger;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use ocelot_core::store::{Recorded, StoreError};
use serde_json::json;
use std::net::SocketAddr;

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, json!({ "error": message.into() }))
}

/// One webhook request, counted by provider and status (`ocelot_webhook_deliveries_total`).
pub(crate) async fn receive(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let named = Provider::from_path(&provider).map_or("unknown", Provider::name);
    let response = answer_delivery(state, peer, provider, headers, body).await;
    ocelot_core::metrics::webhook_answered(named, response.status().as_u16());
    response
}

async fn answer_delivery(
    state: AppState,
    peer: SocketAddr,
    provider: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(provider) = Provider::from_path(&provider) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown provider `{provider}`: use github, gitlab, bitbucket or gitea"),
        );
    };
    let identity = match providers::identify(provider, &body) {
        Ok(identity) => identity,
        Err(hook_error) => return hook_error_response(&hook_error),
    };
    let found = match state
        .store
        .find_repo_for_hook(identity.full_name.as_deref(), &identity.urls)
        .await
    {
        Ok(found) => Some(found),
        Err(StoreError::NotFound(_)) => None,
        Err(store_error) => return store_unavailable(&store_error),
    };
    let with = state.secrets.verify_with(found.as_ref());
    let verified = providers::verify(provider, &headers, &body, &with.secret);
    let repo = match (found, verified) {
        (Some((repo, _)), Ok(())) if with.repos_own => repo,
        (found, verified) => {
            // the same answer whether the repo is unknown or the signature wrong
            let hook_error = verified.err().unwrap_or(HookError::BadSignature);
            let named = identity.full_name.as_deref().unwrap_or("?");
            tracing::warn!(provider = provider.name(), repo = named,
                registered = found.is_some(), %peer, error = %hook_error, "webhook refused");
            return hook_error_response(&hook_error);
        }
    };
    let parsed = match providers::parse(provider, &headers, &body) {
        Ok(parsed) => parsed,
        Err(hook_error) => return hook_error_response(&hook_error),
    };
    let trigger = match &parsed.event {
        HookEvent::Ping => {
            return answer(StatusCode::OK, json!({ "pong": true, "repo": repo.name }));
        }
        HookEvent::Ignored { reason } => {
            return answer(
                StatusCode::ACCEPTED,
                json!({ "ignored": reason, "repo": repo.name }),
            );
        }
        event => match StoredTrigger::from_event(event) {
            Some(trigger) => trigger,
            None => {
                return answer(
                    StatusCode::ACCEPTED,
                    json!({ "ignored": "nothing to build" }),
                );
            }
        },
    };
    let event_name = trigger.event_name();
    // the build's trace id, from its receipt on (kept with the delivery)
    let trace_id = ocelot_core::trace::new_trace_id();
    let request = match serde_json::to_value(StoredRequest {
        repo: repo.name.clone(),
        trigger,
        trace_id: Some(trace_id.clone()),
    }) {
        Ok(request) => request,
        Err(serialize_error) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                serialize_error.to_string(),
            );
        }
    };
    // answered only once the delivery's group commit is done (`record`)
    let recorded = state
        .recorder
        .submit(PendingDelivery {
            provider: provider.name(),
            delivery_id: parsed.delivery_id.clone(),
            repo_id: repo.id,
            event: event_name,
            request,
        })
        .await;
    match recorded {
        Ok(Recorded::New) => {
            state.recorded.notify_one();
            tracing::info!(%trace_id, provider = provider.name(), repo = %repo.name, delivery = %parsed.delivery_id, event = event_name, "webhook accepted");
            answer(
                StatusCode::ACCEPTED,
                json!({ "queued": true, "repo": repo.name, "delivery": parsed.delivery_id }),
            )
        }
        Ok(Recorded::Requeued) => {
            state.recorded.notify_one();
            answer(
                StatusCode::ACCEPTED,
                json!({ "requeued": true, "repo": repo.name, "delivery": parsed.delivery_id }),
            )
        }
        Ok(Recorded::Duplicate) => answer(
            StatusCode::OK,
            json!({ "duplicate": true, "delivery": parsed.delivery_id }),
        ),
        Err(record_error) => not_recorded(&record_error, &parsed.delivery_id),
    }
}

fn hook_error_response(hook_error: &HookError) -> Response {
    let status = match hook_error {
        HookError::MissingSignature(_) | HookError::BadSignature => StatusCode::UNAUTHORIZED,
        HookError::MissingHeader(_) | HookError::Malformed(_) => StatusCode::BAD_REQUEST,
    };
    error(status, hook_error.to_string())
}

/// The delivery's group was not recorded: the sender should retry (the group's error is
/// logged once by `record`).
fn not_recorded(record_error: &RecordError, delivery: &str) -> Response {
    tracing::warn!(error = %record_error, %delivery, "webhook not recorded");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the database is unavailable: deliver again later",
    )
}

/// The store is down: the sender should retry (the delivery was not recorded).
fn store_unavailable(store_error: &StoreError) -> Response {
    tracing::error!(error = %store_error, "webhook not recorded: store unavailable");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the database is unavailable: deliver again later",
    )
}
