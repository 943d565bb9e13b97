//! Slack incoming webhooks and signed webhook documents over HTTP(S) (reqwest, rustls on
//! the ring provider). Redirects are not followed; no error names the URL of a Slack
//! webhook (the secret) or the signing key.

use super::outcome::{Outcome, parse_retry_after};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::Duration;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a refusing answer's body the error keeps.
const BODY_IN_ERROR: usize = 200;

/// The one HTTP client of the notifier.
pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
    // reqwest's TLS runs on the ring provider (the one crypto provider in the graph)
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ocelot/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// `X-Ocelot-Signature-256`: `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub(crate) fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs a Slack message: `text`, and `channel` when one is named.
pub(crate) async fn send_slack(
    client: &reqwest::Client,
    url: &reqwest::Url,
    text: &str,
    channel: &str,
) -> Outcome {
    let mut message = serde_json::json!({ "text": text });
    if !channel.is_empty() {
        message["channel"] = serde_json::Value::String(channel.to_string());
    }
    let request = client
        .post(url.as_str())
        .header("content-type", "application/json")
        .body(message.to_string());
    // the URL is the secret: it never reaches an error
    answer(request.send().await, "the Slack webhook").await
}

/// POSTs the build's signed JSON document.
pub(crate) async fn send_webhook(
    client: &reqwest::Client,
    url: &reqwest::Url,
    secret: &[u8],
    delivery: &str,
    body: Vec<u8>,
) -> Outcome {
    let request = client
        .post(url.as_str())
        .header("content-type", "application/json")
        .header("x-ocelot-event", "build")
        .header("x-ocelot-delivery", delivery)
        .header("x-ocelot-signature-256", signature(secret, &body))
        .body(body);
    answer(request.send().await, url.as_str()).await
}

/// Sorts an answer: 2xx sent; 408, 425, 429 and 5xx (and no answer) worth another try,
/// `Retry-After` honoured; anything else will not change.
async fn answer(sent: Result<reqwest::Response, reqwest::Error>, whom: &str) -> Outcome {
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            return Outcome::Retry {
                error: format!(
                    "{whom}: {}",
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
    let after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = response.text().await.unwrap_or_default();
    let mut body: String = body.trim().chars().take(BODY_IN_ERROR).collect();
    if !body.is_empty() {
        body = format!(": {body}");
    }
    let error = format!("{whom} answered {status}{body}");
    let retry = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
    if retry {
        Outcome::Retry { error, after }
    } else {
        Outcome::GiveUp(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_githubs_format() {
        // the HMAC-SHA256 test vector of RFC 4231, case 2
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
