//! Commit statuses: one POST per state, in each forge's shape.
//!
//! - GitHub `POST /repos/{o}/{r}/statuses/{sha}` {state, target_url, description, context}
//! - GitLab `POST /projects/{path}/statuses/{sha}` {state, name, target_url, description}
//! - Bitbucket `POST /repositories/{ws}/{slug}/commit/{sha}/statuses/build`
//!   {key, state, url, name, description} (`url` is required: the repo's page stands in when
//!   no `--build-url` is set)
//! - Gitea `POST /repos/{o}/{r}/statuses/{sha}`, GitHub's shape.

use super::ForgeApi;
use super::answer::classify;
use crate::notifier::outcome::Outcome;
use ocelot_core::BuildState;
use ocelot_core::forge::Forge;

/// One status to set on a commit.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    pub commit: String,
    pub state: BuildState,
    /// `ocelot/<repo>`.
    pub context: String,
    /// The build's page; `None` when no `--build-url` is set.
    pub target_url: Option<String>,
    pub description: String,
    /// A page for forges that need a URL when there is no build page (Bitbucket).
    pub fallback_url: String,
}

/// The request: its URL and JSON body; `None`: the forge shows no status for this state.
pub fn status_request(
    api: &ForgeApi,
    update: &StatusUpdate,
) -> Option<(String, serde_json::Value)> {
    let state = api.forge.status_state(update.state)?;
    let sha = &update.commit;
    Some(match api.forge {
        Forge::GitHub | Forge::Gitea => {
            let mut body = serde_json::json!({
                "state": state,
                "description": update.description,
                "context": update.context,
            });
            if let Some(url) = &update.target_url {
                body["target_url"] = url.as_str().into();
            }
            (api.repo_url(&format!("/statuses/{sha}")), body)
        }
        Forge::GitLab => {
            let mut body = serde_json::json!({
                "state": state,
                "name": update.context,
                "description": update.description,
            });
            if let Some(url) = &update.target_url {
                body["target_url"] = url.as_str().into();
            }
            (api.repo_url(&format!("/statuses/{sha}")), body)
        }
        Forge::Bitbucket => (
            api.repo_url(&format!("/commit/{sha}/statuses/build")),
            serde_json::json!({
                "key": update.context,
                "state": state,
                "name": update.context,
                "url": update.target_url.as_deref().unwrap_or(&update.fallback_url),
                "description": update.description,
            }),
        ),
    })
}

/// Sets `update` on the forge: one try.
pub async fn send_status(
    client: &reqwest::Client,
    api: &ForgeApi,
    update: &StatusUpdate,
) -> Outcome {
    let Some((url, body)) = status_request(api, update) else {
        return Outcome::Sent;
    };
    let what = format!("{} commit status", api.forge);
    let sent = api
        .request(client, reqwest::Method::POST, &url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    classify(sent, &what).await
}
