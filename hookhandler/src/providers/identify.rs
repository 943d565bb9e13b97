//! The repository a delivery names, read before its signature is checked: only the fields
//! that name it are decoded (serde skips everything else without building a JSON tree), so
//! an unsigned request costs little more than reading its bytes. The full [`super::parse`]
//! runs only on a verified delivery.

use std::borrow::Cow;

use serde::Deserialize;

use super::{HookError, Provider, RepoIdentity, UniqueList};

#[derive(Deserialize, Default)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    repository: Option<RepoFields<'a>>,
    #[serde(borrow, default)]
    project: Option<RepoFields<'a>>,
}

/// The naming fields of every provider's `repository` (GitLab: `project`) object.
#[derive(Deserialize, Default)]
struct RepoFields<'a> {
    #[serde(borrow, default)]
    full_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    path_with_namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    clone_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ssh_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    git_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    html_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    git_http_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    git_ssh_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    web_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    http_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    homepage: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    links: Option<Links<'a>>,
}

#[derive(Deserialize, Default)]
struct Links<'a> {
    #[serde(borrow, default)]
    html: Option<Href<'a>>,
}

#[derive(Deserialize, Default)]
struct Href<'a> {
    #[serde(borrow, default)]
    href: Option<Cow<'a, str>>,
}

/// The repository `body` names for `provider` (the same name and URLs, in the same order,
/// as [`super::parse`] gives), without verifying or parsing the rest.
pub fn identify(provider: Provider, body: &[u8]) -> Result<RepoIdentity, HookError> {
    let envelope: Envelope<'_> = serde_json::from_slice(body)
        .map_err(|e| HookError::Malformed(format!("body is not a webhook payload: {e}")))?;
    let repository = envelope.repository.unwrap_or_default();
    let mut urls = UniqueList::default();
    let full_name = match provider {
        Provider::GitHub | Provider::Gitea => {
            for url in [
                &repository.clone_url,
                &repository.ssh_url,
                &repository.git_url,
                &repository.html_url,
            ] {
                urls.push_opt(url.as_deref());
            }
            repository.full_name
        }
        Provider::Bitbucket => {
            let href = repository
                .links
                .as_ref()
                .and_then(|links| links.html.as_ref())
                .and_then(|html| html.href.as_deref());
            urls.push_opt(href);
            repository.full_name
        }
        Provider::GitLab => {
            let project = envelope.project.unwrap_or_default();
            for url in [
                &project.git_http_url,
                &project.git_ssh_url,
                &project.web_url,
                &project.http_url,
                &project.ssh_url,
                &repository.git_http_url,
                &repository.git_ssh_url,
                &repository.url,
                &repository.homepage,
            ] {
                urls.push_opt(url.as_deref());
            }
            project.path_with_namespace
        }
    };
    Ok(RepoIdentity {
        full_name: full_name.map(Cow::into_owned),
        urls: urls.into_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{fixture, headers};
    use super::super::{Provider, parse};
    use super::identify;

    /// Every fixture: `identify` names the repo exactly as the full parse does (read as an
    /// event that is not built, whose parse takes the repo's name and URLs as they come).
    #[test]
    fn identify_agrees_with_the_full_parse_on_every_fixture() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webhooks");
        let mut checked = 0;
        for (provider, folder, delivery, event) in [
            (
                Provider::GitHub,
                "github",
                "X-GitHub-Delivery",
                "X-GitHub-Event",
            ),
            (
                Provider::GitLab,
                "gitlab",
                "X-Gitlab-Event-UUID",
                "X-Gitlab-Event",
            ),
            (
                Provider::Bitbucket,
                "bitbucket",
                "X-Request-UUID",
                "X-Event-Key",
            ),
            (
                Provider::Gitea,
                "gitea",
                "X-Gitea-Delivery",
                "X-Gitea-Event",
            ),
        ] {
            let hdrs = headers(&[(delivery, "d-1"), (event, "not-built")]);
            for entry in std::fs::read_dir(format!("{dir}/{folder}")).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                let body = fixture(folder, &name);
                let identified = identify(provider, &body).unwrap();
                let parsed = parse(provider, &hdrs, &body).unwrap();
                assert_eq!(identified, parsed.repo, "{folder}/{name}");
                checked += 1;
            }
        }
        assert!(checked >= 20, "only {checked} fixtures compared");
    }

    #[test]
    fn bodies_that_are_not_payloads_are_malformed_and_others_name_nothing() {
        assert!(identify(Provider::GitHub, b"not json").is_err());
        assert!(identify(Provider::GitHub, b"[1]").is_err());
        assert!(identify(Provider::GitHub, br#"{"repository":{"full_name":7}}"#).is_err());
        let nothing = identify(Provider::GitLab, b"{}").unwrap();
        assert_eq!(nothing.full_name, None);
        assert!(nothing.urls.is_empty());
        let escaped = identify(
            Provider::GitHub,
            br#"{"repository":{"full_name":"a\/b","clone_url":"https://h/a/b.git"}}"#,
        )
        .unwrap();
        assert_eq!(escaped.full_name.as_deref(), Some("a/b"));
    }
}
