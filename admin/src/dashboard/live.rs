//! `GET /api/builds/ID/events`: a build's events as Server-Sent Events, each with the id
//! `ATTEMPT:SEQ` of its last line. A browser that loses the connection reconnects by itself
//! with `Last-Event-ID`, and the stream goes on right after that event (the same resume as
//! `ocelot watch`); the first connection starts after `?after=ATTEMPT:SEQ` (what the page
//! already loaded) or at the first event. The stream ends with the build's result.

use super::json;
use super::session::{Refusal, Viewer};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use ocelot_core::events::Position;
use ocelot_core::ids::{Attempt, BuildId, Seq};
use std::convert::Infallible;

#[derive(Debug, serde::Deserialize)]
pub(super) struct Resume {
    #[serde(default)]
    after: Option<String>,
}

/// `ATTEMPT:SEQ` → a position.
fn parse_position(text: &str) -> Option<Position> {
    let (attempt, seq) = text.trim().split_once(':')?;
    Some(Position {
        attempt: Attempt::from(attempt.parse::<u32>().ok()?),
        seq: Seq::from(seq.parse::<u64>().ok()?),
    })
}

/// Where the stream starts: after `Last-Event-ID` (a reconnect), else after `?after=`.
fn resume_position(headers: &HeaderMap, query: &Resume) -> Result<Position, Refusal> {
    let given = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .or(query.after.as_deref());
    match given {
        None | Some("") => Ok(Position::default()),
        Some(text) => parse_position(text).ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("`{text}` is not a log position (ATTEMPT:SEQ)"),
            )
        }),
    }
}

pub(super) async fn events(
    State(state): State<AppState>,
    Viewer(token): Viewer,
    Path(id): Path<i64>,
    Query(query): Query<Resume>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Refusal> {
    let resume_after = resume_position(&headers, &query)?;
    let build_id = BuildId::from(id);
    crate::grpc::scope::build(&state, &token.repos, build_id).await?;
    let stream = crate::watch::watch(&state, build_id, Attempt::NONE, resume_after)
        .await?
        .into_inner();
    let events = stream.map(|item| {
        Ok(match item {
            Ok(message) => {
                let value = json::event(&message);
                Event::default()
                    .id(format!("{}:{}", message.attempt, json::last_seq(&message)))
                    .data(value.to_string())
            }
            // the page shows it and reconnects (from the last event it has)
            Err(status) => Event::default()
                .event("failure")
                .data(serde_json::json!({ "error": status.message() }).to_string()),
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnect_resumes_after_its_last_event_id() {
        let mut headers = HeaderMap::new();
        let query = Resume {
            after: Some("1:5".into()),
        };
        let first = resume_position(&headers, &query).unwrap();
        assert_eq!((first.attempt.get(), first.seq.get()), (1, 5));
        headers.insert("last-event-id", "2:40".parse().unwrap());
        let again = resume_position(&headers, &query).unwrap();
        assert_eq!((again.attempt.get(), again.seq.get()), (2, 40));
        headers.insert("last-event-id", "nonsense".parse().unwrap());
        assert!(resume_position(&headers, &query).is_err());
        assert_eq!(
            resume_position(&HeaderMap::new(), &Resume { after: None }).unwrap(),
            Position::default()
        );
    }
}
