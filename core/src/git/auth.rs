//! Authenticating to git servers: an HTTPS token or password, or an SSH key checked against
//! the server's `known_hosts` entry. The secret is handed to libgit2 from memory and never
//! appears in an error.

use crate::secrets::{BuildCredentials, CredentialKind, KnownHosts, SecretValue};

/// The user name sent with an HTTPS token when the credential names none. GitHub, Gitea
/// and Bitbucket accept any name with a token; GitLab accepts any name with a personal
/// access token.
pub const DEFAULT_TOKEN_USERNAME: &str = "x-access-token";

/// The SSH user when neither the URL nor the credential names one.
pub const DEFAULT_SSH_USERNAME: &str = "git";

/// How to authenticate to one git server.
#[derive(Debug, Clone)]
pub enum GitAuth {
    Https {
        username: String,
        password: SecretValue,
    },
    Ssh {
        username: Option<String>,
        private_key: SecretValue,
        known_hosts: Option<String>,
    },
}

impl BuildCredentials {
    /// How to authenticate to the git server at `url`: an `ssh` key for SSH URLs, a `vcs`
    /// token bound to the URL's host for the others; the most specific credential wins. A
    /// `vcs` token of another host (or of none) is never offered.
    pub fn git_auth(&self, url: &str) -> Option<GitAuth> {
        if is_ssh_url(url) {
            self.of_kind(CredentialKind::Ssh)
                .next()
                .map(|c| GitAuth::Ssh {
                    username: c.info.details.username.clone(),
                    private_key: c.value.clone(),
                    known_hosts: c.info.details.known_hosts.clone(),
                })
        } else {
            self.of_kind(CredentialKind::Vcs)
                .find(|c| c.info.details.serves_url(url))
                .map(|c| GitAuth::Https {
                    username: c
                        .info
                        .details
                        .username
                        .clone()
                        .unwrap_or_else(|| DEFAULT_TOKEN_USERNAME.to_string()),
                    password: c.value.clone(),
                })
        }
    }
}

/// Whether `url` is reached over SSH: `ssh://…` or scp-like `user@host:path`.
pub fn is_ssh_url(url: &str) -> bool {
    if url.starts_with("ssh://") || url.starts_with("git+ssh://") {
        return true;
    }
    if url.contains("://") {
        return false;
    }
    // scp-like syntax: `[user@]host:path`, where the host part has no `/`
    match url.split_once(':') {
        Some((host, _)) => !host.is_empty() && !host.contains('/'),
        None => false,
    }
}

fn auth_error(message: String) -> git2::Error {
    git2::Error::new(git2::ErrorCode::Auth, git2::ErrorClass::Http, message)
}

/// Why the callbacks refused to go on. libgit2 replaces a callback's error message with
/// its own ("invalid or unknown remote ssh hostkey"), so the reason is kept here too.
#[derive(Debug, Clone, Default)]
pub(super) struct Refusal(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl Refusal {
    fn refuse(&self, error: git2::Error) -> git2::Error {
        if let Ok(mut reason) = self.0.lock() {
            *reason = Some(error.message().to_string());
        }
        error
    }

    /// The error of a failed remote operation: the callbacks' reason when they refused.
    pub(super) fn explain(&self, url: &str, error: git2::Error) -> super::GitError {
        match self.0.lock().ok().and_then(|reason| reason.clone()) {
            Some(message) => super::GitError::Authentication {
                url: url.to_string(),
                message,
            },
            None => super::classify(url, error),
        }
    }
}

/// libgit2 callbacks that answer a server's credential request with `auth` (once: a
/// refused credential is an authentication error, not a loop), and that check an SSH
/// server's host key against the credential's `known_hosts` when it has one.
pub(super) fn remote_callbacks(
    auth: Option<&GitAuth>,
    refusal: Refusal,
) -> git2::RemoteCallbacks<'_> {
    let mut callbacks = git2::RemoteCallbacks::new();
    let mut offered = false;
    let credentials_refusal = refusal.clone();
    callbacks.credentials(move |_url, username_from_url, allowed| {
        if offered {
            return Err(credentials_refusal.refuse(auth_error(
                "the server refused the credential".into(),
            )));
        }
        offered = true;
        let answer = match auth {
            None => Err(auth_error(
                "the server asks for credentials and none is configured for this repository (add one with `ocelot creds add vcs` or `ocelot creds add ssh`)".into(),
            )),
            Some(GitAuth::Https { username, password }) => {
                if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
                    git2::Cred::userpass_plaintext(username, password.expose())
                } else {
                    Err(auth_error(format!(
                        "the server does not accept a user name and token (it offers {allowed:?})"
                    )))
                }
            }
            Some(GitAuth::Ssh {
                username,
                private_key,
                ..
            }) => {
                let user = username_from_url
                    .or(username.as_deref())
                    .unwrap_or(DEFAULT_SSH_USERNAME);
                if allowed.contains(git2::CredentialType::SSH_KEY) {
                    // stored values lose their final newline; the key parser wants it
                    let key = format!("{}\n", private_key.expose().trim_end());
                    git2::Cred::ssh_key_from_memory(user, None, &key, None)
                        .map_err(|e| auth_error(format!("cannot use the SSH key: {}", e.message())))
                } else if allowed.contains(git2::CredentialType::USERNAME) {
                    offered = false;
                    git2::Cred::username(user)
                } else {
                    Err(auth_error(format!(
                        "the server does not accept an SSH key (it offers {allowed:?})"
                    )))
                }
            }
        };
        answer.map_err(|error| credentials_refusal.refuse(error))
    });
    if let Some(GitAuth::Ssh {
        known_hosts: Some(known_hosts),
        ..
    }) = auth
    {
        let known = KnownHosts::parse(known_hosts);
        callbacks.certificate_check(move |cert, host| {
            let Some(hostkey) = cert.as_hostkey() else {
                return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
            };
            match (&known, hostkey.hostkey()) {
                (Ok(known), Some(key)) if known.accepts(key) => {
                    Ok(git2::CertificateCheckStatus::CertificateOk)
                }
                (Err(error), _) => Err(refusal.refuse(auth_error(format!(
                    "the credential's known_hosts is unusable: {error}"
                )))),
                _ => Err(refusal.refuse(git2::Error::new(
                    git2::ErrorCode::Certificate,
                    git2::ErrorClass::Ssh,
                    format!(
                        "the host key of {host} is not in the credential's known_hosts (get it with `ssh-keyscan`)"
                    ),
                ))),
            }
        });
    }
    callbacks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_are_recognised() {
        assert!(is_ssh_url("ssh://git@127.0.0.1:2222/repo.git"));
        assert!(is_ssh_url("git@github.com:team/app.git"));
        assert!(is_ssh_url("host:repo.git"));
        assert!(!is_ssh_url("https://github.com/team/app.git"));
        assert!(!is_ssh_url("git://127.0.0.1/app.git"));
        assert!(!is_ssh_url("/srv/git/app.git"));
        assert!(!is_ssh_url("./relative/path"));
    }
}
