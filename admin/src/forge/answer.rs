//! What a forge's answer means: 2xx done; 429, GitHub's secondary rate limit (403 with
//! `retry-after`, or `x-ratelimit-remaining: 0` with `x-ratelimit-reset`), 408 and 5xx (and
//! no answer) worth another try, at the time the forge names when it names one; anything
//! else (401 bad token, 403 missing scope, 404 unknown repo or no access, 422 refused) will
//! not change and is given up with the forge's own message.

use crate::notifier::outcome::{Outcome, parse_retry_after};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much of an answer's body an error keeps when it has no message field.
const BODY_IN_ERROR: usize = 300;

/// Sorts a forge's answer to `what` (e.g. `GitHub commit status`).
pub(super) async fn classify(
    sent: Result<reqwest::Response, reqwest::Error>,
    what: &str,
) -> Outcome {
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            return Outcome::Retry {
                error: format!(
                    "{what}: {}",
                    ocelot_core::error_chain::error_chain(&error.without_url())
                ),
                after: None,
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        return Outcome::Sent;
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let retry_after = header("retry-after").as_deref().and_then(parse_retry_after);
    let limit_reset = (header("x-ratelimit-remaining").as_deref() == Some("0"))
        .then(|| header("x-ratelimit-reset"))
        .flatten()
        .and_then(|reset| until_epoch(&reset));
    let body = response.text().await.unwrap_or_default();
    let error = format!("{what}: the forge answered {status}: {}", message(&body));
    let code = status.as_u16();
    let rate_limited =
        code == 429 || (code == 403 && (retry_after.is_some() || limit_reset.is_some()));
    if rate_limited || status.is_server_error() || code == 408 {
        Outcome::Retry {
            error,
            after: retry_after.or(limit_reset),
        }
    } else {
        Outcome::GiveUp(error)
    }
}

/// The wait until `reset` (seconds since the epoch, GitHub's `x-ratelimit-reset`).
fn until_epoch(reset: &str) -> Option<Duration> {
    let at = UNIX_EPOCH + Duration::from_secs(reset.trim().parse().ok()?);
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The forge's own words: `message` (GitHub, GitLab, Gitea), `error.message` (Bitbucket),
/// `error` (GitLab's OAuth errors), a list of GitLab `message` fields; else the body.
pub(super) fn message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let text = parsed.as_ref().and_then(|json| {
        let field = json
            .get("message")
            .or_else(|| json.get("error").and_then(|e| e.get("message")))
            .or_else(|| json.get("error"))?;
        Some(match field {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        })
    });
    let text = text.unwrap_or_else(|| body.trim().to_string());
    if text.is_empty() {
        "(no message)".into()
    } else {
        text.chars().take(BODY_IN_ERROR).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_forges_own() {
        assert_eq!(message(r#"{"message":"Not Found"}"#), "Not Found");
        assert_eq!(
            message(r#"{"type":"error","error":{"message":"Repository not found"}}"#),
            "Repository not found"
        );
        assert_eq!(
            message(r#"{"error":"insufficient_scope"}"#),
            "insufficient_scope"
        );
        assert_eq!(
            message(r#"{"message":{"name":["is invalid"]}}"#),
            r#"{"name":["is invalid"]}"#
        );
        assert_eq!(message(""), "(no message)");
        assert_eq!(message("Bad Gateway"), "Bad Gateway");
    }

    #[test]
    fn a_reset_in_the_past_is_now() {
        assert_eq!(until_epoch("1"), Some(Duration::ZERO));
        assert!(until_epoch("soon").is_none());
    }
}
