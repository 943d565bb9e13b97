//! Webhooks registered for you (`ocelot repos hook R [--remove]`): the forge's webhook for
//! the hookhandler's public URL, signed with the repo's webhook secret.
//!
//! - GitHub `POST /repos/{o}/{r}/hooks` {name: web, config: {url, content_type: json,
//!   secret}, events: [push, pull_request]}
//! - GitLab `POST /projects/{path}/hooks` {url, token, push_events, merge_requests_events,
//!   tag_push_events}
//! - Bitbucket `POST /repositories/{ws}/{slug}/hooks` {description, url, active, secret,
//!   events: [repo:push, pullrequest:created, pullrequest:updated]}
//! - Gitea `POST /repos/{o}/{r}/hooks` as GitHub, with type gitea
//!
//! Removing lists the repo's hooks and deletes the ones whose URL is ours. Errors are the
//! forge's own words (a missing scope, an unknown repo).

use super::ForgeApi;
use super::answer::message;
use ocelot_core::forge::Forge;
use serde_json::{Value, json};

/// A forge call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{what}: the forge answered {status}: {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{what}: {error}")]
    Unreachable { what: String, error: String },
    #[error("{what}: the forge's answer is not the documented one: {detail}")]
    Unexpected { what: String, detail: String },
}

/// Sends one request; the answer's JSON (`Null` for an empty body) on 2xx.
async fn call(
    client: &reqwest::Client,
    api: &ForgeApi,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
    what: &str,
) -> Result<Value, HookError> {
    let mut request = api.request(client, method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request
        .send()
        .await
        .map_err(|error| HookError::Unreachable {
            what: what.to_string(),
            error: ocelot_core::error_chain::error_chain(&error.without_url()),
        })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(HookError::Refused {
            what: what.to_string(),
            status: status.as_u16(),
            message: message(&text),
        });
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| HookError::Unexpected {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

/// The body that creates the webhook.
fn create_body(forge: Forge, url: &str, secret: &str) -> Value {
    match forge {
        Forge::GitHub => json!({
            "name": "web",
            "active": true,
            "events": ["push", "pull_request"],
            "config": {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"},
        }),
        Forge::Gitea => json!({
            "type": "gitea",
            "active": true,
            "events": ["push", "pull_request"],
            "config": {"url": url, "content_type": "json", "secret": secret},
        }),
        Forge::GitLab => json!({
            "url": url,
            "token": secret,
            "push_events": true,
            "merge_requests_events": true,
            "tag_push_events": true,
            "enable_ssl_verification": true,
        }),
        Forge::Bitbucket => json!({
            "description": "Ocelot CI",
            "url": url,
            "active": true,
            "secret": secret,
            "events": ["repo:push", "pullrequest:created", "pullrequest:updated"],
        }),
    }
}

/// Creates the webhook that sends the repo's events to `url`, signed with `secret`.
pub async fn create_hook(
    client: &reqwest::Client,
    api: &ForgeApi,
    url: &str,
    secret: &str,
) -> Result<(), HookError> {
    let what = format!("creating the {} webhook of {}", api.forge, api.path);
    call(
        client,
        api,
        reqwest::Method::POST,
        &api.repo_url("/hooks"),
        Some(&create_body(api.forge, url, secret)),
        &what,
    )
    .await
    .map(|_| ())
}

/// The id (Bitbucket: uuid) and URL of each hook in a listing.
fn listed_hooks(forge: Forge, listing: &Value) -> Option<Vec<(String, String)>> {
    let hooks = match forge {
        Forge::Bitbucket => listing.get("values")?.as_array()?,
        _ => listing.as_array()?,
    };
    hooks
        .iter()
        .map(|hook| {
            let (id, url) = match forge {
                Forge::GitHub | Forge::Gitea => (
                    hook.get("id")?.as_i64()?.to_string(),
                    hook.get("config")?.get("url")?.as_str()?,
                ),
                Forge::GitLab => (
                    hook.get("id")?.as_i64()?.to_string(),
                    hook.get("url")?.as_str()?,
                ),
                Forge::Bitbucket => (
                    hook.get("uuid")?.as_str()?.to_string(),
                    hook.get("url")?.as_str()?,
                ),
            };
            Some((id, url.to_string()))
        })
        .collect()
}

/// Deletes the repo's webhooks whose URL is `url`; how many there were.
pub async fn remove_hook(
    client: &reqwest::Client,
    api: &ForgeApi,
    url: &str,
) -> Result<usize, HookError> {
    let what = format!("listing the {} webhooks of {}", api.forge, api.path);
    let listing = call(
        client,
        api,
        reqwest::Method::GET,
        &api.repo_url("/hooks"),
        None,
        &what,
    )
    .await?;
    let hooks = listed_hooks(api.forge, &listing).ok_or_else(|| HookError::Unexpected {
        what: what.clone(),
        detail: "no list of hooks with ids and URLs".into(),
    })?;
    let ours: Vec<&String> = hooks
        .iter()
        .filter(|(_, hook_url)| hook_url.trim_end_matches('/') == url.trim_end_matches('/'))
        .map(|(id, _)| id)
        .collect();
    for id in &ours {
        let what = format!("deleting {} webhook {id} of {}", api.forge, api.path);
        let id = super::encode_path(id);
        call(
            client,
            api,
            reqwest::Method::DELETE,
            &api.repo_url(&format!("/hooks/{id}")),
            None,
            &what,
        )
        .await?;
    }
    Ok(ours.len())
}
