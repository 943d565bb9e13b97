//! Mail through the credential's SMTP server (lettre; TLS none, STARTTLS or TLS on rustls).
//! The Message-ID is the delivery id, so a mail sent twice (a sender that died before
//! recording it) is one message to mail clients.

use super::outcome::Outcome;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use ocelot_core::secrets::SecretValue;
use ocelot_core::secrets::notify_credential::{SmtpServer, SmtpTls};
use std::time::Duration;

const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// One mail to be sent.
pub(crate) struct Mail<'a> {
    pub(crate) to: &'a [String],
    pub(crate) subject: String,
    pub(crate) body: String,
    pub(crate) delivery: &'a str,
}

pub(crate) async fn send(server: &SmtpServer, password: &SecretValue, mail: Mail<'_>) -> Outcome {
    let whom = format!("SMTP server {}:{}", server.host, server.port);
    let message = match message(server, &mail) {
        Ok(message) => message,
        Err(error) => return Outcome::GiveUp(error),
    };
    let builder = match server.tls {
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &server.host,
        )),
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&server.host),
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&server.host),
    };
    let mut builder = match builder {
        Ok(builder) => builder.port(server.port).timeout(Some(SMTP_TIMEOUT)),
        Err(error) => return Outcome::GiveUp(format!("{whom}: {error}")),
    };
    if let Some(user) = &server.username {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    match builder.build().send(message).await {
        Ok(_) => Outcome::Sent,
        // a 5xx answer will not change (unknown recipient, refused login)
        Err(error) if error.is_permanent() => Outcome::GiveUp(format!("{whom}: {error}")),
        Err(error) => Outcome::Retry {
            error: format!("{whom}: {error}"),
            after: None,
        },
    }
}

fn message(server: &SmtpServer, mail: &Mail<'_>) -> Result<Message, String> {
    let from = server
        .from
        .parse()
        .map_err(|e| format!("sender `{}`: {e}", server.from))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(mail.subject.clone())
        .message_id(Some(format!("<{}@ocelot>", mail.delivery)))
        .header(ContentType::TEXT_PLAIN);
    for to in mail.to {
        builder = builder.to(to.parse().map_err(|e| format!("recipient `{to}`: {e}"))?);
    }
    builder
        .body(mail.body.clone())
        .map_err(|e| format!("the mail: {e}"))
}
