//! The forges' HTTP APIs (GitHub, GitLab, Bitbucket Cloud, Gitea/Forgejo), called by the
//! admin, which holds the `vcs` credentials:
//!
//! - `status`: commit statuses, sent by the notifier from the outbox.
//! - `hooks`: creating and removing the forge webhook of a repo (`ocelot repos hook`).
//! - `answer`: what a forge's answer means (sent, retry at a time, give up with its message).
//!
//! A [`ForgeApi`] is one repo on one forge: its API's base URL, the repo's path there and
//! the token that may write to it.

mod answer;
pub mod hooks;
pub mod status;

use ocelot_core::forge::Forge;
use ocelot_core::secrets::SecretValue;

/// One repo on a forge, with the token its requests carry.
#[derive(Debug, Clone)]
pub struct ForgeApi {
    pub forge: Forge,
    /// The API's base URL, e.g. `https://api.github.com` (no trailing `/` needed).
    pub api_url: String,
    /// `owner/repo` (Bitbucket: `workspace/slug`; GitLab: the project's full path).
    pub path: String,
    /// A Bitbucket app password's user (Basic authentication); `None`: a bearer token.
    pub username: Option<String>,
    pub token: SecretValue,
}

impl ForgeApi {
    /// The URL of `endpoint` (after the repo's own prefix: `/statuses/SHA`, `/hooks`).
    fn repo_url(&self, endpoint: &str) -> String {
        let base = self.api_url.trim_end_matches('/');
        match self.forge {
            Forge::GitHub | Forge::Gitea => format!("{base}/repos/{}{endpoint}", self.path),
            Forge::GitLab => format!("{base}/projects/{}{endpoint}", encode_path(&self.path)),
            Forge::Bitbucket => format!("{base}/repositories/{}{endpoint}", self.path),
        }
    }

    /// A request with the forge's authentication and JSON headers.
    fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
    ) -> reqwest::RequestBuilder {
        let token = self.token.expose();
        let request = client.request(method, url);
        if self.forge == Forge::GitHub {
            return request
                .header("authorization", format!("Bearer {token}"))
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28");
        }
        let request = request.header("accept", "application/json");
        match (self.forge, &self.username) {
            (Forge::GitHub, _) => request,
            (Forge::GitLab, _) => request.header("private-token", token),
            (Forge::Bitbucket, Some(user)) => request.basic_auth(user, Some(token)),
            (Forge::Bitbucket, None) => request.header("authorization", format!("Bearer {token}")),
            (Forge::Gitea, _) => request.header("authorization", format!("token {token}")),
        }
    }
}

/// GitLab's `:id` of a project by path: URL-encoded, `/` as `%2F`.
fn encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_paths_are_encoded() {
        assert_eq!(
            encode_path("group/sub/my.project"),
            "group%2Fsub%2Fmy.project"
        );
    }
}
