//! What a `notify` credential points at: a Slack incoming webhook (its value is the URL),
//! a webhook receiver (`--url https://…`, the value is the signing secret), or an SMTP
//! server (`--url 'smtp://HOST:PORT?tls=starttls&from=ADDR&to=ADDR,@domain'`, `--username`,
//! the value is the password). Checked when the credential is stored and again when a
//! message is sent; no error names the secret value.

use super::credential::{CredentialDetails, SecretValue};
use super::error::SecretError;
use url::Url;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (a relay on a trusted network, a test server).
    None,
    /// Plain text upgraded with STARTTLS (port 587), required.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// An SMTP server with its sender and the recipients it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub from: String,
    /// Addresses (`dev@example.com`) and whole domains (`@example.com`) that may get mail.
    pub allowed: Vec<String>,
}

impl SmtpServer {
    /// Whether `address` may get mail through this credential.
    pub fn allows(&self, address: &str) -> bool {
        let address = address.trim().to_ascii_lowercase();
        self.allowed.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            if allowed.starts_with('@') {
                address.ends_with(&allowed) && address.len() > allowed.len()
            } else {
                address == allowed
            }
        })
    }

    /// The recipients of a mail: those `asked` for that the credential allows, or every
    /// address it names when none are asked for. Refused: the names it does not allow.
    pub fn recipients(&self, asked: &[String]) -> Result<Vec<String>, Vec<String>> {
        if asked.is_empty() {
            return Ok(self
                .allowed
                .iter()
                .filter(|a| !a.starts_with('@'))
                .cloned()
                .collect());
        }
        let refused: Vec<String> = asked.iter().filter(|a| !self.allows(a)).cloned().collect();
        if refused.is_empty() {
            Ok(asked.to_vec())
        } else {
            Err(refused)
        }
    }
}

/// Where a `notify` credential sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Slack: POST `{text, channel}` to the URL (the secret value).
    Slack { url: Url },
    /// POST the signed JSON document to `url`; the value signs it.
    Webhook { url: Url },
    /// Mail through the server; the value is its password (unless no `username`).
    Email(SmtpServer),
}

impl Destination {
    /// What kind of `notify:` target the credential serves.
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Slack { .. } => "slack",
            Destination::Webhook { .. } => "webhook",
            Destination::Email(_) => "email",
        }
    }
}

fn invalid(message: impl Into<String>) -> SecretError {
    SecretError::Invalid(message.into())
}

fn is_address(text: &str) -> bool {
    text.split_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !text.contains(|c: char| c.is_whitespace() || c.is_control() || c == ',')
}

/// Reads a `notify` credential's destination from its details and value.
pub fn destination(
    details: &CredentialDetails,
    value: &SecretValue,
) -> Result<Destination, SecretError> {
    let Some(url) = details.url.as_deref() else {
        // a Slack incoming webhook: the URL is the secret (never echoed back)
        let url = Url::parse(value.expose().trim()).map_err(|_| {
            invalid(
                "a notify credential without --url is a Slack incoming webhook: its value must be the webhook's URL (https://hooks.slack.com/services/...); for a webhook receiver give --url, for e-mail --url smtp://...",
            )
        })?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(invalid(
                "a Slack webhook's value must be an http(s) URL (https://hooks.slack.com/services/...)",
            ));
        }
        return Ok(Destination::Slack { url });
    };
    let parsed = Url::parse(url).map_err(|e| invalid(format!("--url `{url}`: {e}")))?;
    if !parsed.password().unwrap_or_default().is_empty() {
        return Err(invalid(
            "--url must not hold a password: the credential's value is the secret",
        ));
    }
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err(invalid(format!("--url `{url}` names no host")));
    };
    match parsed.scheme() {
        "https" | "http" => Ok(Destination::Webhook { url: parsed }),
        "smtp" | "smtps" => {
            let mut tls = if parsed.scheme() == "smtps" {
                SmtpTls::Tls
            } else {
                SmtpTls::StartTls
            };
            let mut from = None;
            let mut allowed = Vec::new();
            for (key, text) in parsed.query_pairs() {
                match key.as_ref() {
                    "tls" => {
                        tls = match text.as_ref() {
                            "none" => SmtpTls::None,
                            "starttls" => SmtpTls::StartTls,
                            "tls" => SmtpTls::Tls,
                            other => {
                                return Err(invalid(format!(
                                    "--url: tls=`{other}`: expected `none`, `starttls` or `tls`"
                                )));
                            }
                        }
                    }
                    "from" => {
                        if !is_address(&text) {
                            return Err(invalid(format!(
                                "--url: from=`{text}` is not an e-mail address"
                            )));
                        }
                        from = Some(text.to_string());
                    }
                    "to" => {
                        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                            let domain = entry
                                .strip_prefix('@')
                                .is_some_and(|d| d.contains('.') && !d.contains('@'));
                            if !(domain || is_address(entry)) {
                                return Err(invalid(format!(
                                    "--url: to=`{entry}` is neither an e-mail address nor a domain (`@example.com`)"
                                )));
                            }
                            allowed.push(entry.to_string());
                        }
                    }
                    other => {
                        return Err(invalid(format!(
                            "--url: unknown parameter `{other}` (known: tls, from, to)"
                        )));
                    }
                }
            }
            let Some(from) = from else {
                return Err(invalid(
                    "an e-mail credential's --url names the sender: `smtp://HOST:587?from=ci@example.com&to=dev@example.com`",
                ));
            };
            if allowed.is_empty() {
                return Err(invalid(
                    "an e-mail credential's --url names who may get mail: `to=dev@example.com,@example.com` (ocelot.yml's `to:` may only narrow this)",
                ));
            }
            let default_port = if tls == SmtpTls::Tls { 465 } else { 587 };
            let user = (!parsed.username().is_empty()).then(|| percent_decode(parsed.username()));
            Ok(Destination::Email(SmtpServer {
                host: host.trim_matches(['[', ']']).to_string(),
                port: parsed.port().unwrap_or(default_port),
                tls,
                username: details.username.clone().or(user),
                from,
                allowed,
            }))
        }
        other => Err(invalid(format!(
            "--url `{url}`: scheme `{other}` is not one a notify credential sends to (https:// for a webhook, smtp:// or smtps:// for e-mail)"
        ))),
    }
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("u={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> CredentialDetails {
        CredentialDetails {
            url: Some(url.into()),
            ..Default::default()
        }
    }

    #[test]
    fn slack_urls_are_the_value_and_never_shown_in_errors() {
        let value = SecretValue::new("https://hooks.slack.com/services/T0/B0/secret".into());
        let slack = destination(&CredentialDetails::default(), &value).unwrap();
        assert_eq!(slack.kind(), "slack");
        let wrong = SecretValue::new("not-a-url-secret".into());
        let error = destination(&CredentialDetails::default(), &wrong)
            .unwrap_err()
            .to_string();
        assert!(!error.contains("not-a-url-secret"), "{error}");
        assert!(error.contains("--url"), "{error}");
    }

    #[test]
    fn webhooks_and_smtp_servers_come_from_the_url() {
        let secret = SecretValue::new("signing-secret".into());
        let hook = destination(&with_url("https://ci.example/hook"), &secret).unwrap();
        assert_eq!(hook.kind(), "webhook");
        let mail = destination(
            &with_url("smtp://ci%40example.com@mail.example?tls=none&from=ci@example.com&to=dev@example.com,@ops.example"),
            &secret,
        )
        .unwrap();
        let Destination::Email(server) = mail else {
            panic!("not e-mail")
        };
        assert_eq!(server.port, 587);
        assert_eq!(server.tls, SmtpTls::None);
        assert_eq!(server.username.as_deref(), Some("ci@example.com"));
        assert!(server.allows("DEV@example.com"));
        assert!(server.allows("anyone@ops.example"));
        assert!(!server.allows("anyone@evil.example"));
        assert!(!server.allows("@ops.example"));
        assert_eq!(
            server.recipients(&[]).unwrap(),
            vec!["dev@example.com".to_string()]
        );
        assert_eq!(
            server.recipients(&["x@evil.example".into()]).unwrap_err(),
            vec!["x@evil.example".to_string()]
        );
        for bad in [
            "smtp://mail.example?to=dev@example.com",
            "smtp://mail.example?from=ci@example.com",
            "smtp://mail.example?from=ci@example.com&to=dev@example.com&tls=maybe",
            "smtp://u:pw@mail.example?from=ci@example.com&to=dev@example.com",
            "ftp://mail.example",
        ] {
            assert!(destination(&with_url(bad), &secret).is_err(), "{bad}");
        }
    }
}
