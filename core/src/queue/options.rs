//! How a service introduces itself to NATS: its user and password (one user per service
//! kind, each allowed only the subjects it needs: scripts/nats-auth.conf), TLS when a CA is
//! given (a client certificate when the server verifies clients), and an inbox of its own
//! (`_INBOX.<user>.>`), so a user may read only the replies meant for it. `--nats-url` may
//! name several servers of a cluster, comma-separated: the client starts with any of them
//! and moves to another when its server goes away.

use super::QueueError;
use crate::settings::NatsArgs;
use std::path::Path;
use std::time::Duration;

/// The inbox prefix of `user`'s replies; `_INBOX` without a user.
pub fn inbox_prefix(user: Option<&str>) -> String {
    match user {
        Some(user) => format!("_INBOX.{user}"),
        None => "_INBOX".to_string(),
    }
}

/// The servers of `urls`, a comma-separated list (one URL is a list of one).
pub(super) fn server_addrs(urls: &str) -> Result<Vec<async_nats::ServerAddr>, QueueError> {
    let addrs = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            url.parse::<async_nats::ServerAddr>()
                .map_err(|e| QueueError::Connect {
                    url: url.to_string(),
                    message: format!(
                        "not a NATS URL ({e}); write nats://host:port, several comma-separated"
                    ),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(QueueError::Connect {
            url: urls.to_string(),
            message: "no NATS URL given (--nats-url, OCELOT_NATS_URL)".to_string(),
        });
    }
    Ok(addrs)
}

fn read_password(path: &Path) -> Result<String, QueueError> {
    let text = std::fs::read_to_string(path).map_err(|e| QueueError::Credentials {
        message: format!("cannot read the NATS password file {}: {e}", path.display()),
    })?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(QueueError::Credentials {
            message: format!("the NATS password file {} is empty", path.display()),
        });
    }
    Ok(password.to_string())
}

/// The connect options `nats` asks for.
pub(super) fn connect_options(nats: &NatsArgs) -> Result<async_nats::ConnectOptions, QueueError> {
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(10))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .custom_inbox_prefix(inbox_prefix(nats.nats_user.as_deref()));
    if let Some(user) = &nats.nats_user {
        let password = match (&nats.nats_password_file, &nats.nats_password) {
            (Some(file), _) => read_password(file)?,
            (None, Some(password)) => password.clone(),
            (None, None) => {
                return Err(QueueError::Credentials {
                    message: format!(
                        "NATS user `{user}` has no password: set --nats-password-file (OCELOT_NATS_PASSWORD_FILE)"
                    ),
                });
            }
        };
        options = options.user_and_password(user.clone(), password);
    }
    if let Some(ca) = &nats.nats_tls_ca {
        options = options.require_tls(true).add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&nats.nats_tls_cert, &nats.nats_tls_key) {
        options = options
            .require_tls(true)
            .add_client_certificate(cert.clone(), key.clone());
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_has_an_inbox_of_its_own() {
        assert_eq!(inbox_prefix(Some("worker")), "_INBOX.worker");
        assert_eq!(inbox_prefix(None), "_INBOX");
    }

    #[test]
    fn a_cluster_is_named_by_its_urls_comma_separated() {
        let addrs = server_addrs("nats://a:4222, nats://b:4223,nats://c:4224").unwrap();
        let hosts: Vec<(String, u16)> = addrs
            .iter()
            .map(|a| (a.host().to_string(), a.port()))
            .collect();
        assert_eq!(
            hosts,
            [("a".into(), 4222), ("b".into(), 4223), ("c".into(), 4224)]
        );
        assert_eq!(server_addrs("nats://127.0.0.1:4222").unwrap().len(), 1);
        assert!(server_addrs(" , ").is_err());
        let Err(error) = server_addrs("nats://a:4222,http://b:x") else {
            panic!("a malformed URL was accepted");
        };
        assert!(error.to_string().contains("http://b:x"), "{error}");
    }

    #[test]
    fn a_user_without_a_password_is_refused_before_connecting() {
        let mut nats = NatsArgs::new("nats://127.0.0.1:4222");
        nats.nats_user = Some("worker".into());
        let Err(error) = connect_options(&nats) else {
            panic!("a user without a password was accepted");
        };
        assert!(
            error.to_string().contains("--nats-password-file"),
            "{error}"
        );
    }

    #[test]
    fn an_empty_password_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "\n").unwrap();
        let nats = NatsArgs::new("nats://127.0.0.1:4222").with_user("admin", file);
        let Err(error) = connect_options(&nats) else {
            panic!("an empty password was accepted");
        };
        assert!(error.to_string().contains("is empty"), "{error}");
    }
}
