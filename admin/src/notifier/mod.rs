//! The notifier: every admin claims due messages from the outbox (`FOR UPDATE SKIP LOCKED`
//! with a lease, so several admins share the work and a message held by an admin that died
//! is taken over), sends each to the target its `notify` credential names, and records
//! the outcome: sent, retrying (back-off with jitter, `Retry-After` honoured) or gave up
//! (an answer that will not change, or `--notify-max-attempts` tries). Builds never wait on
//! it: their result is recorded before any message is sent.
//!
//! - `report`: what a message says, read from the store.
//! - `http`: Slack and signed webhook documents.
//! - `email`: SMTP.
//! - `outcome`: a try's outcome and the retry delays.
//!
//! Commit statuses (kind `status`) go out through the same loop, by `crate::forge::status`
//! with the repo's `vcs` credential.

mod email;
mod http;
pub mod outcome;
mod report;

use crate::forge::ForgeApi;
use crate::forge::status::{StatusUpdate, send_status};
use ocelot_core::BuildState;
use ocelot_core::env_vars;
use ocelot_core::forge::Forge;
use ocelot_core::notify::build_link;
use ocelot_core::notify::{BuildReport, TargetKind};
use ocelot_core::secrets::notify_credential::{Destination, destination};
use ocelot_core::secrets::select::Secrets;
use ocelot_core::secrets::{BuildCredentials, CredentialKind, SecretStore};
use ocelot_core::store::STATUS_KIND;
use ocelot_core::store::{OutboxMessage, Store};
use outcome::{Outcome, retry_delay};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often an idle notifier looks for due messages.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Messages claimed at once (and sent concurrently).
const BATCH: i64 = 16;
/// How long a claimed message is held before another admin may take it over.
const LEASE: Duration = Duration::from_secs(120);

/// The notifier's settings (flags of `ocelot-admin`).
#[derive(Debug, Clone, clap::Args)]
pub struct NotifierArgs {
    /// The build page linked from notifications, e.g. `https://ci.example/builds/{id}`
    /// (`{id}`, `{repo}`, `{number}` are filled in); without it a message says
    /// `ocelot status ID`
    #[arg(long, env = env_vars::OCELOT_BUILD_URL)]
    pub build_url: Option<String>,
    /// How many times a notification is tried before it is given up
    #[arg(long, env = env_vars::OCELOT_NOTIFY_MAX_ATTEMPTS, default_value_t = 12)]
    pub notify_max_attempts: i32,
    /// The wait after a notification's first failed try, tripled after each further one
    /// (with jitter; at most an hour)
    #[arg(long, env = env_vars::OCELOT_NOTIFY_RETRY_BASE, value_parser = humantime::parse_duration, default_value = "2s")]
    pub notify_retry_base: Duration,
}

impl Default for NotifierArgs {
    fn default() -> Self {
        NotifierArgs {
            build_url: None,
            notify_max_attempts: 12,
            notify_retry_base: Duration::from_secs(2),
        }
    }
}

/// The notifier's HTTP client (no redirects, a timeout), for other forge calls too.
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    http::client()
}

struct Notifier {
    store: Store,
    secrets: Secrets,
    args: NotifierArgs,
    http: reqwest::Client,
}

/// Sends due messages until `stop`.
pub(crate) async fn run(
    store: Store,
    secrets: Secrets,
    args: NotifierArgs,
    stop: CancellationToken,
) {
    let http = match http::client() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "the notifier has no HTTP client: no notification is sent");
            return;
        }
    };
    let notifier = Notifier {
        store,
        secrets,
        args,
        http,
    };
    loop {
        let claimed = match notifier.store.claim_outbox(BATCH, LEASE).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "the notifier cannot read the outbox");
                Vec::new()
            }
        };
        let full = i64::try_from(claimed.len()).unwrap_or(i64::MAX) >= BATCH;
        futures::future::join_all(claimed.iter().map(|message| notifier.deliver(message))).await;
        if full {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

impl Notifier {
    /// Tries `message` once and records the outcome.
    async fn deliver(&self, message: &OutboxMessage) {
        let (outcome, secret) = self.try_once(message).await;
        // a receiver's answer may quote what it was sent; the secret never gets further
        let scrub = |error: String| match secret.as_deref() {
            Some(secret) if secret.len() >= 4 => error.replace(secret, "***"),
            _ => error,
        };
        let recorded = match outcome {
            Outcome::Sent => {
                tracing::info!(build_id = message.build_id.get(), kind = %message.kind,
                    target = %message.target, attempt = message.attempt, "notification sent");
                self.store.outbox_sent(message).await
            }
            Outcome::Retry { error, .. } if message.attempt >= self.args.notify_max_attempts => {
                let error = scrub(format!("gave up after {} tries: {error}", message.attempt));
                tracing::warn!(build_id = message.build_id.get(), kind = %message.kind,
                    target = %message.target, %error, "notification given up");
                self.store.outbox_gave_up(message, &error).await
            }
            Outcome::Retry { error, after } => {
                let error = scrub(error);
                let wait = retry_delay(self.args.notify_retry_base, message.attempt, after);
                tracing::info!(build_id = message.build_id.get(), kind = %message.kind,
                    target = %message.target, attempt = message.attempt, %error,
                    retry_in = ?wait, "notification failed; will retry");
                self.store
                    .outbox_retry(message, SystemTime::now() + wait, &error)
                    .await
            }
            Outcome::GiveUp(error) => {
                let error = scrub(error);
                tracing::warn!(build_id = message.build_id.get(), kind = %message.kind,
                    target = %message.target, %error, "notification given up");
                self.store.outbox_gave_up(message, &error).await
            }
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                build_id = message.build_id.get(),
                "a notification's outcome came after its lease: another try owns it"
            ),
            Err(error) => tracing::warn!(%error, build_id = message.build_id.get(),
                "cannot record a notification's outcome; it is tried again after its lease"),
        }
    }

    /// One try: the outcome, and the credential's value (to keep it out of errors).
    async fn try_once(&self, message: &OutboxMessage) -> (Outcome, Option<String>) {
        if message.kind == STATUS_KIND {
            return self.try_status(message).await;
        }
        let Some(kind) = TargetKind::parse(&message.kind) else {
            return (
                Outcome::GiveUp(format!("unknown message kind `{}`", message.kind)),
                None,
            );
        };
        let report = match report::build_report(
            &self.store,
            message.build_id,
            &message.reports,
            self.args.build_url.as_deref(),
        )
        .await
        {
            Ok(report) => report,
            Err(error) => {
                return (
                    Outcome::Retry {
                        error: format!("reading the build: {error}"),
                        after: None,
                    },
                    None,
                );
            }
        };
        let credentials = match self.secrets.for_repo(&report.repo).await {
            Ok(all) => BuildCredentials::new(all),
            Err(error) => {
                return (
                    Outcome::Retry {
                        error: format!("reading the credentials: {error}"),
                        after: None,
                    },
                    None,
                );
            }
        };
        // the most specific scope first (BuildCredentials' order)
        let Some(credential) = credentials
            .all()
            .iter()
            .find(|c| c.info.kind == CredentialKind::Notify && c.info.name == message.target)
        else {
            return (
                Outcome::GiveUp(format!(
                    "no notify credential `{}` for repo {} (`ocelot creds add notify {} -r {}`)",
                    message.target, report.repo, message.target, report.repo
                )),
                None,
            );
        };
        let secret = Some(credential.value.expose().to_string());
        let target = match destination(&credential.info.details, &credential.value) {
            Ok(target) => target,
            Err(error) => {
                return (
                    Outcome::GiveUp(format!("notify credential `{}`: {error}", message.target)),
                    secret,
                );
            }
        };
        let outcome = self.send(message, kind, &report, &target, credential).await;
        (outcome, secret)
    }

    /// One try of a commit status: the outcome, and the token (to keep it out of errors).
    async fn try_status(&self, message: &OutboxMessage) -> (Outcome, Option<String>) {
        let retry = |error: String| (Outcome::Retry { error, after: None }, None);
        let build = match self.store.get_build(message.build_id).await {
            Ok(build) => build,
            Err(error) => return retry(format!("reading the build: {error}")),
        };
        let field = |name: &str| {
            message
                .payload
                .get(name)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let (Ok(forge), Ok(state)) = (
            field("forge").parse::<Forge>(),
            message.reports.parse::<BuildState>(),
        ) else {
            return (
                Outcome::GiveUp(format!(
                    "a commit status with forge `{}` and state `{}`",
                    field("forge"),
                    message.reports
                )),
                None,
            );
        };
        let credentials = match self.secrets.for_repo(&build.repo_name).await {
            Ok(all) => BuildCredentials::new(all),
            Err(error) => return retry(format!("reading the credentials: {error}")),
        };
        let Some(credential) = credentials.all().iter().find(|c| {
            c.info.kind == CredentialKind::Vcs && c.info.details.serves_url(&build.repo_url)
        }) else {
            return (
                Outcome::GiveUp(format!(
                    "no vcs credential for the host of {} (`ocelot creds add vcs NAME -r {}`)",
                    build.repo_url, build.repo_name
                )),
                None,
            );
        };
        let api_url = field("api_url");
        let api = ForgeApi {
            forge,
            api_url: api_url.clone(),
            path: field("path"),
            username: credential.info.details.username.clone(),
            token: credential.value.clone(),
        };
        let fallback_url = if build.repo_url.starts_with("https://") {
            build.repo_url.clone()
        } else {
            api_url
        };
        let update = StatusUpdate {
            commit: field("commit"),
            state,
            context: message.target.clone(),
            target_url: self.args.build_url.as_deref().map(|template| {
                build_link(template, build.id.get(), &build.repo_name, build.number)
            }),
            description: format!(
                "Ocelot build #{}: {}",
                build.number,
                state.as_str().replace('_', " ")
            ),
            fallback_url,
        };
        let outcome = send_status(&self.http, &api, &update).await;
        (outcome, Some(credential.value.expose().to_string()))
    }

    async fn send(
        &self,
        message: &OutboxMessage,
        kind: TargetKind,
        report: &BuildReport,
        target: &Destination,
        credential: &ocelot_core::secrets::Credential,
    ) -> Outcome {
        let text_field = |name: &str| {
            message
                .payload
                .get(name)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        match (kind, target) {
            (TargetKind::Slack, Destination::Slack { url }) => {
                let Ok(url) = reqwest::Url::parse(url.as_str()) else {
                    return Outcome::GiveUp("the Slack webhook URL does not parse".into());
                };
                http::send_slack(
                    &self.http,
                    &url,
                    &report.slack_text(),
                    &text_field("channel"),
                )
                .await
            }
            (TargetKind::Webhook, Destination::Webhook { url }) => {
                let Ok(url) = reqwest::Url::parse(url.as_str()) else {
                    return Outcome::GiveUp(format!("the webhook URL `{url}` does not parse"));
                };
                let body = report
                    .document(&message.delivery_id)
                    .to_string()
                    .into_bytes();
                http::send_webhook(
                    &self.http,
                    &url,
                    credential.value.expose().as_bytes(),
                    &message.delivery_id,
                    body,
                )
                .await
            }
            (TargetKind::Email, Destination::Email(server)) => {
                let asked: Vec<String> = message
                    .payload
                    .get("to")
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                let to = match server.recipients(&asked) {
                    Ok(to) if !to.is_empty() => to,
                    Ok(_) => {
                        return Outcome::GiveUp(format!(
                            "notify credential `{}` names no recipient address (only domains): list them in `to:`",
                            message.target
                        ));
                    }
                    Err(refused) => {
                        return Outcome::GiveUp(format!(
                            "notify credential `{}` does not allow {}: its --url `to=` lists who may get mail",
                            message.target,
                            refused.join(", ")
                        ));
                    }
                };
                email::send(
                    server,
                    &credential.value,
                    email::Mail {
                        to: &to,
                        subject: report.subject(),
                        body: report.text_body(),
                        delivery: &message.delivery_id,
                    },
                )
                .await
            }
            (wanted, found) => Outcome::GiveUp(format!(
                "notify credential `{}` is a {} credential; `notify.{}` needs a {} one",
                message.target,
                found.kind(),
                wanted.as_str(),
                wanted.as_str()
            )),
        }
    }
}
