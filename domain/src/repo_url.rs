//! The one comparable form of a repository URL, so a checkout's remote finds its registered
//! repo; whether a URL carries credentials (refused: they belong in `ocelot creds`); and the
//! host a URL names (a `vcs` token is offered only to its own host).

use std::borrow::Cow;

/// A repository URL with a user name and password or token in it
/// (`https://user:token@host/...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the repository URL {redacted} carries credentials: they would be shown to every API token that lists repos and written into every build's .git/config. \
     Use the URL without them and store the token as a credential: `ocelot creds add vcs NAME -r REPO` (a vcs token is sent only to its host)"
)]
pub struct CredentialsInUrl {
    /// The URL with its credentials replaced by `***`.
    pub redacted: String,
}

/// Where the user information of `url` is: `(start, end)` byte offsets of the part before
/// the `@`, and whether the URL is reached over SSH.
fn userinfo_span(url: &str) -> Option<(usize, usize, bool)> {
    if let Some(scheme_end) = url.find("://") {
        let scheme = url[..scheme_end].to_ascii_lowercase();
        let start = scheme_end + 3;
        let authority_len = url[start..]
            .find(['/', '?', '#'])
            .unwrap_or(url.len() - start);
        let authority = &url[start..start + authority_len];
        let at = authority.rfind('@')?;
        let ssh = matches!(scheme.as_str(), "ssh" | "git+ssh" | "ssh+git");
        Some((start, start + at, ssh))
    } else {
        // scp-like `[user@]host:path`, or a local path
        let prefix_len = url.find('/').unwrap_or(url.len());
        let at = url[..prefix_len].rfind('@')?;
        Some((0, at, true))
    }
}

/// The secret part of `url`'s user information: any user information of an `http(s)://`,
/// `git://` or `file://` URL (a token is often sent as the user name), a password of an SSH
/// URL (`ssh://git@host/...` and `git@host:path` name a user, which is no secret).
fn embedded_span(url: &str) -> Option<(usize, usize)> {
    let (start, end, ssh) = userinfo_span(url)?;
    let userinfo = &url[start..end];
    if ssh && !userinfo.contains(':') {
        return None;
    }
    Some((start, end))
}

/// `Err` when `url` carries credentials (see [`CredentialsInUrl`]).
pub fn check_no_credentials(url: &str) -> Result<(), CredentialsInUrl> {
    match embedded_span(url) {
        None => Ok(()),
        Some(_) => Err(CredentialsInUrl {
            redacted: redact_credentials(url).into_owned(),
        }),
    }
}

/// `url` with any credentials in it replaced by `***` (for showing it).
pub fn redact_credentials(url: &str) -> Cow<'_, str> {
    match embedded_span(url) {
        None => Cow::Borrowed(url),
        Some((start, end)) => Cow::Owned(format!("{}***{}", &url[..start], &url[end..])),
    }
}

/// `url` without any credentials in it (`https://user:token@host/x` → `https://host/x`): the
/// form to send or compare, e.g. a checkout's remote URL.
pub fn strip_credentials(url: &str) -> Cow<'_, str> {
    match embedded_span(url) {
        None => Cow::Borrowed(url),
        Some((start, end)) => Cow::Owned(format!("{}{}", &url[..start], &url[end + 1..])),
    }
}

/// The host `url` names, lower-cased, without user or port (`https://user@Git.Example:8443/x`
/// → `git.example`; `git@host:path` → `host`; an IPv6 address without brackets). `None` for a
/// local path or `file://` URL.
pub fn url_host(url: &str) -> Option<String> {
    let authority = if let Some(scheme_end) = url.find("://") {
        let start = scheme_end + 3;
        let rest = &url[start..];
        &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())]
    } else {
        // scp-like `[user@]host:path`: the host part ends at the first `:` and has no `/`
        let (host, _) = url.split_once(':')?;
        if host.contains('/') {
            return None;
        }
        host
    };
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// A URL reduced to what identifies a repository: no surrounding spaces, trailing `/` or `.git`.
pub fn normalize_url(url: &str) -> &str {
    let trimmed = url.trim().trim_end_matches('/');
    trimmed.strip_suffix(".git").unwrap_or(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_found_and_redacted() {
        for url in [
            "https://user:token@git.example/team/app.git",
            "https://ghp_abcdef@github.com/team/app.git",
            "http://u:p@127.0.0.1:8080/app",
            "git://user:pw@host/app",
            "ssh://git:secret@host/app.git",
            "user:secret@host:team/app.git",
        ] {
            let error = check_no_credentials(url).unwrap_err();
            assert!(!error.redacted.contains("token"), "{url}");
            assert!(!error.redacted.contains("secret"), "{url}");
            assert!(!error.redacted.contains("ghp_"), "{url}");
            assert!(
                error.to_string().contains("ocelot creds add vcs"),
                "{error}"
            );
        }
        assert_eq!(
            redact_credentials("https://user:token@git.example/a"),
            "https://***@git.example/a"
        );
        assert_eq!(
            strip_credentials("https://user:token@git.example/a"),
            "https://git.example/a"
        );
        assert_eq!(
            strip_credentials("git@github.com:team/app.git"),
            "git@github.com:team/app.git"
        );
        for url in [
            "https://git.example/team/app.git",
            "ssh://git@host:2222/app.git",
            "git+ssh://git@host/app.git",
            "git@github.com:team/app.git",
            "git://127.0.0.1:9418/app.git",
            "file:///srv/git/app.git",
            "/srv/git/app.git",
            "https://git.example/team/app@v2.git",
        ] {
            assert_eq!(check_no_credentials(url), Ok(()), "{url}");
            assert_eq!(redact_credentials(url), url);
        }
    }

    #[test]
    fn hosts_are_read_from_every_url_form() {
        assert_eq!(
            url_host("https://Git.Example:8443/x").as_deref(),
            Some("git.example")
        );
        assert_eq!(
            url_host("https://user@git.example/x").as_deref(),
            Some("git.example")
        );
        assert_eq!(
            url_host("git://127.0.0.1:9418/a.git").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(url_host("http://[::1]:80/a").as_deref(), Some("::1"));
        assert_eq!(
            url_host("git@github.com:team/app.git").as_deref(),
            Some("github.com")
        );
        assert_eq!(url_host("ssh://git@host:22/app").as_deref(), Some("host"));
        assert_eq!(url_host("http://localhost/a").as_deref(), Some("localhost"));
        assert_eq!(url_host("file:///srv/a.git"), None);
        assert_eq!(url_host("/srv/a.git"), None);
        assert_eq!(url_host("./a/b:c"), None);
    }

    #[test]
    fn urls_compare_without_trailing_git_or_slash() {
        assert_eq!(normalize_url("git://h/r.git"), "git://h/r");
        assert_eq!(normalize_url("git://h/r/"), "git://h/r");
        assert_eq!(normalize_url(" https://h/r "), "https://h/r");
    }
}
