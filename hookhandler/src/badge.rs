//! `GET /badge/REPO/BRANCH.svg`: the latest result of a branch as an SVG badge, for a
//! README. Public by design: no token, and it shows nothing but that state (`passing`,
//! `failing`, `timed out`, `error`) or `unknown` (no such repo, branch or finished build;
//! the same 200 answer for all three). Cacheable for a minute, with an ETag.

use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ocelot_core::BuildState;

/// What a badge says, and its colour.
fn face(state: Option<BuildState>) -> (&'static str, &'static str) {
    match state {
        Some(BuildState::Passed) => ("passing", "#4c1"),
        Some(BuildState::Failed) => ("failing", "#e05d44"),
        Some(BuildState::TimedOut) => ("timed out", "#e05d44"),
        Some(BuildState::Errored) => ("error", "#fe7d37"),
        _ => ("unknown", "#9f9f9f"),
    }
}

/// A flat badge: `build | <message>`.
pub(crate) fn svg(message: &str, colour: &str) -> String {
    // Verdana 11px averages about 7 px a character
    let width = |text: &str| 10 + 7 * text.chars().count();
    let (left, right) = (width("build"), width(message));
    let total = left + right;
    let (left_mid, right_mid) = (left * 5, (left + right / 2) * 10);
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="build: {message}"><title>build: {message}</title><rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{colour}"/><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="110"><text x="{left_mid}" y="140" transform="scale(.1)">build</text><text x="{right_mid}" y="140" transform="scale(.1)">{message}</text></g></svg>"##
    )
}

pub(crate) async fn serve(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(branch_path) = path.strip_suffix(".svg") else {
        return (
            StatusCode::NOT_FOUND,
            "a badge's path is /badge/REPO/BRANCH.svg\n",
        )
            .into_response();
    };
    let result = match state.store.branch_result(branch_path).await {
        Ok(result) => result,
        Err(error) => {
            tracing::warn!(%error, "cannot read a branch's result for its badge");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is not reachable\n",
            )
                .into_response();
        }
    };
    let (message, colour) = face(result);
    let etag = format!("\"ocelot-{}\"", message.replace(' ', "-"));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
            svg(message, colour),
        )
            .into_response()
    };
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_say_the_state_only() {
        assert_eq!(face(Some(BuildState::Passed)).0, "passing");
        assert_eq!(face(Some(BuildState::TimedOut)).0, "timed out");
        assert_eq!(face(None).0, "unknown");
        assert_eq!(face(Some(BuildState::Running)).0, "unknown");
        let badge = svg("failing", "#e05d44");
        assert!(badge.starts_with("<svg "), "{badge}");
        assert!(badge.contains(">failing</text>"), "{badge}");
    }
}
