//! What a credential is: its kind, the repos it serves, the details shown in clear, the
//! value that is never shown; and [`validate_credential`], which every store runs before
//! keeping one.

use super::error::SecretError;
use super::file_path::{FilePath, MAX_FILE_CREDENTIAL_BYTES};
use super::known_hosts::KnownHosts;
use super::mask;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

/// What a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// An HTTPS token or password for a git host, used by clones and `ls-remote`.
    Vcs,
    /// An SSH private key (and optionally the host's `known_hosts` entry) for `ssh://` clones.
    Ssh,
    /// A Docker registry login, used when a build's image is pulled.
    Registry,
    /// A named value injected into the environment of the builds in scope.
    Env,
    /// A file (kubeconfig, SSH key, settings.xml) written at its `path` in the builds in
    /// scope, mode 0600, before their first stage.
    File,
    /// The key of the object storage (`--storage-credential`): its access key id in
    /// `username`, the secret key as its value. Read by the admins and workers, never given
    /// to a build; stored with the empty prefix (`--prefix ''`), as it serves no repo.
    Storage,
    /// Where build notifications go (`notify:` in `ocelot.yml` names it): a Slack webhook
    /// URL as its value, or a webhook's signing secret or an SMTP password with the
    /// receiver in `url` (see [`super::notify_credential`]). Read by the admins' notifier,
    /// never given to a build.
    Notify,
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 7] = [
        CredentialKind::Vcs,
        CredentialKind::Ssh,
        CredentialKind::Registry,
        CredentialKind::Env,
        CredentialKind::File,
        CredentialKind::Storage,
        CredentialKind::Notify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Vcs => "vcs",
            CredentialKind::Ssh => "ssh",
            CredentialKind::Registry => "registry",
            CredentialKind::Env => "env",
            CredentialKind::File => "file",
            CredentialKind::Storage => "storage",
            CredentialKind::Notify => "notify",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CredentialKind {
    type Err = SecretError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CredentialKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| {
                SecretError::Invalid(format!(
                    "unknown credential kind `{text}` (kinds: vcs, ssh, registry, env, file, storage, notify)"
                ))
            })
    }
}

/// The parts of a credential that are not secret: shown by listings, stored in clear.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CredentialDetails {
    /// `vcs`: the user name sent with the token (default `x-access-token`); `ssh`: the SSH
    /// user when the URL names none (default `git`); `registry`: the login (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `registry`: the registry host the login is for (default `docker.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// `ssh`: `known_hosts` lines; when given, the server's host key must be one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<String>,
    /// `vcs`: the git host the token is for (lower case, no port); it is offered to URLs on
    /// that host only. A `vcs` credential stored before hosts existed has none and is offered
    /// to no host until it is stored again with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `file`: where the file is written in a build (`~/…`, absolute, or relative to the
    /// workspace; see [`FilePath`]). Required for `file`, refused for the other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `notify`: the webhook receiver (`https://…`) or SMTP server (`smtp://…`, `smtps://…`)
    /// the value is for; none for a Slack webhook, whose URL is the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The form of a host a `vcs` credential is bound to: what [`url_host`] makes of a URL on it
/// (`Git.Example:8443` → `git.example`); `None` when `host` is not a host name or address.
///
/// [`url_host`]: ocelot_domain::repo_url::url_host
pub fn normalize_host(host: &str) -> Option<String> {
    let host = host.trim();
    if host.is_empty() || host.contains(['/', '@', ' ']) || host.contains("://") {
        return None;
    }
    let bracketed = if host.contains(':') && !host.starts_with('[') && host.matches(':').count() > 1
    {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    ocelot_domain::repo_url::url_host(&format!("https://{bracketed}/"))
}

impl CredentialDetails {
    /// Whether this `vcs` credential may be sent to the git server at `url`: its host is the
    /// URL's host. A credential without a host goes nowhere.
    pub fn serves_url(&self, url: &str) -> bool {
        match (&self.host, ocelot_domain::repo_url::url_host(url)) {
            (Some(bound), Some(host)) => *bound == host,
            _ => false,
        }
    }
}

/// Which repos a credential serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Repo(String),
    /// Every repo whose name starts with this (e.g. `team/`).
    Prefix(String),
}

impl Scope {
    /// Whether this scope serves the repo named `repo`.
    pub fn covers(&self, repo: &str) -> bool {
        match self {
            Scope::Repo(name) => name == repo,
            Scope::Prefix(prefix) => repo.starts_with(prefix.as_str()),
        }
    }

    /// How specific the scope is: a repo beats every prefix, a longer prefix a shorter one.
    pub fn specificity(&self) -> usize {
        match self {
            Scope::Repo(_) => usize::MAX,
            Scope::Prefix(prefix) => prefix.len(),
        }
    }

    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            Scope::Repo(repo) => ("repo", repo),
            Scope::Prefix(prefix) => ("prefix", prefix),
        }
    }

    pub fn from_parts(kind: &str, scope: &str) -> Scope {
        match kind {
            "prefix" => Scope::Prefix(scope.to_string()),
            _ => Scope::Repo(scope.to_string()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, scope) = self.parts();
        write!(f, "{kind} {scope}")
    }
}

/// A secret value; its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> Self {
        SecretValue(value)
    }

    /// The value itself: only for putting it where it is used (a build's environment).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

/// What a listing shows of a credential: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    pub name: String,
    pub kind: CredentialKind,
    pub scope: Scope,
    pub details: CredentialDetails,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

/// A credential with its value, for a build.
#[derive(Debug, Clone)]
pub struct Credential {
    pub info: CredentialInfo,
    pub value: SecretValue,
}

/// A valid environment variable name.
fn valid_env_name(name: &str) -> bool {
    // the rule of `ocelot build --env` names too
    crate::build_params::is_env_name(name)
}

/// Checks a credential before any store keeps it: a usable name, a scope, details that fit
/// its kind, and a value long enough to be masked in logs.
pub fn validate_credential(
    name: &str,
    kind: CredentialKind,
    scope: &Scope,
    details: &CredentialDetails,
    value: &SecretValue,
) -> Result<(), SecretError> {
    let invalid = |message: String| Err(SecretError::Invalid(message));
    if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
        return invalid(format!(
            "`{name}` is not a credential name (non-empty, no `/` or control characters)"
        ));
    }
    if kind == CredentialKind::Storage {
        if *scope != Scope::Prefix(String::new()) {
            return invalid(
                "a storage credential serves the admins and workers, not repos: store it with `--prefix ''`".into(),
            );
        }
    } else if scope.parts().1.is_empty() {
        return invalid("the scope (repo or prefix) is empty".into());
    }
    let unexpected = |field: &str, present: bool| -> Result<(), SecretError> {
        if present {
            return Err(SecretError::Invalid(format!(
                "a {kind} credential has no {field}"
            )));
        }
        Ok(())
    };
    if kind != CredentialKind::File {
        unexpected("path", details.path.is_some())?;
    }
    if kind != CredentialKind::Notify {
        unexpected("url", details.url.is_some())?;
    }
    match kind {
        CredentialKind::Env => {
            if !valid_env_name(name) {
                return invalid(format!(
                    "`{name}` is not an environment variable name (letters, digits and `_`, not starting with a digit)"
                ));
            }
            unexpected("username", details.username.is_some())?;
            unexpected("registry", details.registry.is_some())?;
            unexpected("known_hosts", details.known_hosts.is_some())?;
            unexpected("host", details.host.is_some())?;
        }
        CredentialKind::Vcs => {
            unexpected("registry", details.registry.is_some())?;
            unexpected("known_hosts", details.known_hosts.is_some())?;
            match details.host.as_deref() {
                None => {
                    return invalid(
                        "a vcs credential needs the git host it is for (--host, e.g. `github.com`; for one repo it is taken from the repo's URL): it is sent to that host only".into(),
                    );
                }
                Some(host) if normalize_host(host).as_deref() != Some(host) => {
                    return invalid(format!(
                        "`{host}` is not a host name in lower case without port (e.g. `github.com`, `10.0.0.5`)"
                    ));
                }
                Some(_) => {}
            }
        }
        CredentialKind::Ssh => {
            unexpected("registry", details.registry.is_some())?;
            unexpected("host", details.host.is_some())?;
            let key = value.expose();
            if !(key.trim_start().starts_with("-----BEGIN") && key.contains("PRIVATE KEY-----")) {
                return invalid(
                    "an ssh credential's value is a private key (`-----BEGIN ... PRIVATE KEY-----`), e.g. from `ssh-keygen -t ed25519 -N ''`".into(),
                );
            }
            if let Some(known_hosts) = &details.known_hosts {
                KnownHosts::parse(known_hosts).map_err(|e| SecretError::Invalid(e.to_string()))?;
            }
        }
        CredentialKind::Registry => {
            unexpected("known_hosts", details.known_hosts.is_some())?;
            unexpected("host", details.host.is_some())?;
            if details.username.as_deref().is_none_or(str::is_empty) {
                return invalid("a registry credential needs a username (--username)".into());
            }
        }
        CredentialKind::Storage => {
            unexpected("registry", details.registry.is_some())?;
            unexpected("known_hosts", details.known_hosts.is_some())?;
            unexpected("host", details.host.is_some())?;
            if details.username.as_deref().is_none_or(str::is_empty) {
                return invalid(
                    "a storage credential needs the access key id (--username); its value is the secret access key".into(),
                );
            }
        }
        CredentialKind::Notify => {
            unexpected("registry", details.registry.is_some())?;
            unexpected("known_hosts", details.known_hosts.is_some())?;
            unexpected("host", details.host.is_some())?;
            let destination = super::notify_credential::destination(details, value)?;
            if details.username.is_some() && destination.kind() != "email" {
                return invalid("only an e-mail (smtp://) notify credential has a username".into());
            }
        }
        CredentialKind::File => {
            unexpected("username", details.username.is_some())?;
            unexpected("registry", details.registry.is_some())?;
            unexpected("known_hosts", details.known_hosts.is_some())?;
            unexpected("host", details.host.is_some())?;
            let Some(path) = details.path.as_deref() else {
                return invalid(
                    "a file credential needs the path it is written at in the build (--path, e.g. `~/.kube/config`, `/etc/app/key.pem`, or `config/settings.xml` relative to the workspace)".into(),
                );
            };
            FilePath::parse(path).map_err(|e| SecretError::Invalid(e.to_string()))?;
            let size = value.expose().len();
            if size > MAX_FILE_CREDENTIAL_BYTES {
                return invalid(format!(
                    "the file is {size} bytes: a file credential holds at most {MAX_FILE_CREDENTIAL_BYTES} bytes (1 MiB)"
                ));
            }
        }
    }
    if value.expose().trim().is_empty() {
        return invalid("the value is empty".into());
    }
    if kind == CredentialKind::File {
        // a file's short lines (`}`, `---`) are not masked alone; the whole file must be
        mask::check_maskable(value.expose().trim())
            .map_err(|e| SecretError::Invalid(e.to_string()))?;
    } else {
        for line in value.expose().lines().filter(|l| !l.trim().is_empty()) {
            mask::check_maskable(line).map_err(|e| SecretError::Invalid(e.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_never_show_in_debug() {
        let value = SecretValue::new("hunter2-long".into());
        assert!(!format!("{value:?}").contains("hunter2"));
    }

    #[test]
    fn vcs_tokens_serve_their_own_host_only() {
        assert_eq!(
            normalize_host("Git.Example:8443").as_deref(),
            Some("git.example")
        );
        assert_eq!(normalize_host("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(normalize_host("::1").as_deref(), Some("::1"));
        assert_eq!(normalize_host("https://git.example"), None);
        assert_eq!(normalize_host("user@git.example"), None);
        assert_eq!(normalize_host(""), None);
        let bound = CredentialDetails {
            host: Some("127.0.0.1".into()),
            ..Default::default()
        };
        assert!(bound.serves_url("http://127.0.0.1:8080/team/app.git"));
        assert!(!bound.serves_url("http://localhost:8080/team/app.git"));
        assert!(!bound.serves_url("https://evil.example/127.0.0.1/app.git"));
        assert!(!bound.serves_url("https://127.0.0.1.evil.example/app.git"));
        assert!(!bound.serves_url("/srv/git/app.git"));
        assert!(!CredentialDetails::default().serves_url("http://127.0.0.1/app.git"));
        let value = SecretValue::new("token-123456".into());
        let scope = Scope::Repo("app".into());
        assert!(validate_credential("t", CredentialKind::Vcs, &scope, &bound, &value).is_ok());
        let unbound = CredentialDetails::default();
        let error = validate_credential("t", CredentialKind::Vcs, &scope, &unbound, &value)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--host"), "{error}");
        let upper = CredentialDetails {
            host: Some("Git.Example".into()),
            ..Default::default()
        };
        assert!(validate_credential("t", CredentialKind::Vcs, &scope, &upper, &value).is_err());
    }

    #[test]
    fn file_credentials_need_a_valid_path_and_only_they_have_one() {
        let scope = Scope::Repo("app".into());
        let at = |path: &str| CredentialDetails {
            path: Some(path.into()),
            ..Default::default()
        };
        let kubeconfig = SecretValue::new("apiVersion: v1\nusers:\n- name: ci\n}\n".into());
        let check = |details: &CredentialDetails, value: &SecretValue| {
            validate_credential("kubeconfig", CredentialKind::File, &scope, details, value)
        };
        // short lines are fine in a file (they are not masked alone)
        assert!(check(&at("~/.kube/config"), &kubeconfig).is_ok());
        assert!(check(&at("config/settings.xml"), &kubeconfig).is_ok());
        let missing = check(&CredentialDetails::default(), &kubeconfig)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("--path"), "{missing}");
        let leaving = check(&at("../x"), &kubeconfig).unwrap_err().to_string();
        assert!(leaving.contains("`..`"), "{leaving}");
        let huge = SecretValue::new("x".repeat(MAX_FILE_CREDENTIAL_BYTES + 1));
        let too_big = check(&at("big"), &huge).unwrap_err().to_string();
        assert!(too_big.contains("at most 1048576 bytes"), "{too_big}");
        let empty = check(&at("f"), &SecretValue::new("\n \n".into()))
            .unwrap_err()
            .to_string();
        assert!(empty.contains("empty"), "{empty}");
        let user = CredentialDetails {
            username: Some("u".into()),
            ..at("f")
        };
        assert!(check(&user, &kubeconfig).is_err());
        let env = validate_credential(
            "TOKEN",
            CredentialKind::Env,
            &scope,
            &at("f"),
            &SecretValue::new("value-1234".into()),
        )
        .unwrap_err()
        .to_string();
        assert!(env.contains("has no path"), "{env}");
        assert_eq!(
            "file".parse::<CredentialKind>().unwrap(),
            CredentialKind::File
        );
    }

    #[test]
    fn env_names_are_checked() {
        assert!(valid_env_name("API_TOKEN"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("1X"));
        assert!(!valid_env_name("A-B"));
        assert!(!valid_env_name(""));
    }
}
