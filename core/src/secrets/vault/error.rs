//! Vault failures in words people can act on, and with no token, secret id or credential
//! value in them.

use super::config::{VaultAuth, VaultConfig};
use crate::error_chain::error_chain;
use crate::secrets::SecretError;
use rustify::errors::ClientError as HttpError;
use vaultrs::error::ClientError;

/// Whether Vault answered "nothing there" (also for a deleted, not destroyed, version).
pub(super) fn is_not_found(error: &ClientError) -> bool {
    match error {
        ClientError::APIError { code, .. } => *code == 404,
        ClientError::RestClientError {
            source: HttpError::ServerResponseError { code, .. },
        } => *code == 404,
        _ => false,
    }
}

/// A Vault failure as a [`SecretError`] without the token, the secret id or `values`.
pub(super) fn backend_error(
    config: &VaultConfig,
    token: &str,
    action: &str,
    error: ClientError,
    values: &[&str],
) -> SecretError {
    let mut message = vault_message(config, action, &error);
    message = redact(message, &[token]);
    if let VaultAuth::AppRole { secret_id, .. } = &config.auth {
        message = redact(message, &[secret_id]);
    }
    SecretError::Backend(redact(message, values))
}

/// What a Vault failure means, for people.
pub(super) fn vault_message(config: &VaultConfig, action: &str, error: &ClientError) -> String {
    let address = &config.address;
    match error {
        ClientError::APIError { code, errors } => {
            let detail = if errors.is_empty() {
                String::new()
            } else {
                format!(" {}", vault_errors(errors))
            };
            let hint = match code {
                403 => format!(
                    " (the token must be valid and its policy allow reading and writing {0}/data/{1}/* and listing, reading and deleting {0}/metadata/{1}/*)",
                    config.mount, config.prefix
                ),
                503 => " (is Vault sealed?)".to_string(),
                _ => String::new(),
            };
            format!("Vault at {address} refused to {action}: {code}{detail}{hint}")
        }
        ClientError::RestClientError { source } => match source {
            HttpError::RequestError { source, .. } => format!(
                "cannot reach Vault at {address} to {action}: {}",
                error_chain(source.as_ref())
            ),
            HttpError::ServerResponseError { code, .. } => {
                format!("Vault at {address} answered {code} to {action}")
            }
            HttpError::ResponseParseError { .. } | HttpError::ResponseConversionError { .. } => {
                format!(
                    "the answer to {action} is not what Vault's API documents: is {address} a Vault server?"
                )
            }
            other => format!("cannot {action} in Vault at {address}: {other}"),
        },
        other => format!("cannot {action} in Vault at {address}: {other}"),
    }
}

/// Vault's error strings on one line; its multi-error form (`1 error occurred:\n\t* permission
/// denied\n\n`) becomes its items.
fn vault_errors(errors: &[String]) -> String {
    errors
        .iter()
        .flat_map(|error| {
            let items: Vec<&str> = error
                .lines()
                .filter_map(|line| line.trim().strip_prefix("* "))
                .collect();
            if error.contains("error occurred:") || error.contains("errors occurred:") {
                items
            } else {
                vec![error.trim()]
            }
        })
        .map(|item| item.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `message` with every (non-empty) secret cut out.
pub(super) fn redact(mut message: String, secrets: &[&str]) -> String {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        message = message.replace(secret, "***");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_errors_read_on_one_line() {
        assert_eq!(
            vault_errors(&["1 error occurred:\n\t* permission denied\n\n".into()]),
            "permission denied"
        );
        assert_eq!(
            vault_errors(&["2 errors occurred:\n\t* a\n\t* b\n\n".into(), "c  d".into()]),
            "a; b; c d"
        );
    }

    #[test]
    fn redaction_cuts_every_secret() {
        assert_eq!(
            redact("a hvs.T b S c hvs.T".into(), &["hvs.T", "S", ""]),
            "a *** b *** c ***"
        );
    }
}
