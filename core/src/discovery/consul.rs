//! Consul: a service registers itself with a TTL health check, keeps the check passing from a
//! background task and deregisters on shutdown; clients find a healthy instance by name.
//!
//! # What rs-consul does here, and what it does not
//!
//! `rs-consul` (0.15, the maintained successor of the abandoned `consulrs`) covers the KV
//! store, the **catalog** (`/v1/catalog/register`, `/v1/catalog/deregister`) and the **health**
//! query (`GET /v1/health/service/{name}?passing=true`, [`Consul::get_service_nodes`]). It
//! has no **agent** endpoint at all: no `PUT /v1/agent/service/register`, no
//! `PUT /v1/agent/check/pass/{check_id}` (nor `/update/`), no
//! `PUT /v1/agent/service/deregister/{service_id}`. The catalog endpoints are no substitute:
//! a TTL check only exists on an agent (the catalog API cannot keep one passing), and the
//! agent's anti-entropy removes catalog entries for its node that it does not know.
//!
//! So [`ConsulClient::resolve`] uses rs-consul's health query, and the three agent calls are
//! plain HTTP requests sent by [`ConsulClient`] through the **same** hyper 1 client type that
//! rs-consul uses ([`HttpsClient`], built once here and handed to rs-consul), so no second
//! HTTP or TLS stack is involved. TLS uses rustls with the `ring` provider and the platform's
//! trust store.
//!
//! The ACL token travels only in the `X-Consul-Token` header; it never appears in an error,
//! a `Debug` output or a log line (and is cut out of any error text Consul sends back).

use crate::env_vars;
use crate::error_chain::error_chain;
use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use rs_consul::{Consul, ConsulBuilder, GetServiceNodesRequest, HttpsClient};
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where a Consul agent listens unless told otherwise.
pub const DEFAULT_CONSUL_ADDR: &str = "http://127.0.0.1:8500";
/// The scheme of an address resolved through Consul: `consul://SERVICE-NAME`.
pub const CONSUL_SCHEME: &str = "consul://";
/// How long a registered service's check stays passing without a heartbeat.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);
/// How long Consul keeps a service whose check is critical (one that died without
/// deregistering) before removing it.
pub const DEFAULT_DEREGISTER_AFTER: Duration = Duration::from_secs(60);
/// How long one request to Consul may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to Consul. Never holds the ACL token.
#[derive(Debug, thiserror::Error)]
pub enum ConsulError {
    #[error("the Consul address `{0}` is not an http(s) URL (e.g. http://127.0.0.1:8500)")]
    Address(String),
    #[error(
        "`{0}` is not a Consul service name or id (letters, digits, `-`, `_`, `.` and, in ids, `:`)"
    )]
    Name(String),
    #[error("the Consul token: {0}")]
    Token(String),
    #[error("cannot reach Consul at {address}: {message}")]
    Unreachable { address: String, message: String },
    #[error("Consul refused {request} with {status}: {message}")]
    Refused {
        request: String,
        status: u16,
        message: String,
    },
    #[error("Consul's answer to {request} is not what its API documents: {message}")]
    Response { request: String, message: String },
    #[error("Consul knows no healthy instance of service `{0}`")]
    NoHealthyInstance(String),
}

impl ConsulError {
    /// The HTTP status Consul answered with, when it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ConsulError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the agent answered a check update with "no such check": it restarted (or was
    /// replaced) and lost the registration. Recent agents answer 404 `Unknown check
    /// ID ...`; older agents answer 500 `Unknown check ...` or `CheckID ... does not have
    /// associated TTL`.
    fn is_unknown_check(&self) -> bool {
        match self {
            ConsulError::Refused {
                status, message, ..
            } => {
                *status == 404
                    || (*status == 500
                        && (message.contains("Unknown check")
                            || message.contains("does not have associated TTL")))
            }
            _ => false,
        }
    }
}

/// Where the Consul agent is, for the services and the CLI.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConsulArgs {
    /// Consul agent address, e.g. http://127.0.0.1:8500. When set, the service registers itself
    /// there with a TTL health check and deregisters on shutdown. The ACL token comes from
    /// --consul-token-file or the CONSUL_HTTP_TOKEN environment variable
    #[arg(long = "consul-addr", env = env_vars::CONSUL_HTTP_ADDR)]
    pub consul_addr: Option<String>,
    /// File holding the Consul ACL token (else the CONSUL_HTTP_TOKEN environment variable)
    #[arg(long = "consul-token-file", env = env_vars::CONSUL_HTTP_TOKEN_FILE)]
    pub consul_token_file: Option<PathBuf>,
}

impl ConsulArgs {
    /// A client of the configured agent, or `None` when no address is set (the services then
    /// do not register anywhere).
    pub fn client(&self) -> Result<Option<ConsulClient>, ConsulError> {
        match self.address() {
            None => Ok(None),
            Some(address) => ConsulClient::new(address, self.token()?).map(Some),
        }
    }

    /// A client of the configured agent, else of a local agent at its default address: for
    /// looking a service up (`--admin consul://ocelot-admin`).
    pub fn client_or_default(&self) -> Result<ConsulClient, ConsulError> {
        ConsulClient::new(self.address().unwrap_or(DEFAULT_CONSUL_ADDR), self.token()?)
    }

    fn address(&self) -> Option<&str> {
        self.consul_addr
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
    }

    /// The token from the file, else from `CONSUL_HTTP_TOKEN`; `None` when neither is set.
    fn token(&self) -> Result<Option<String>, ConsulError> {
        let token = match &self.consul_token_file {
            Some(path) => std::fs::read_to_string(path).map_err(|error| {
                ConsulError::Token(format!("cannot read {}: {error}", path.display()))
            })?,
            None => std::env::var(env_vars::CONSUL_HTTP_TOKEN).unwrap_or_default(),
        };
        let token = token.trim();
        Ok((!token.is_empty()).then(|| token.to_string()))
    }

    /// Registers `definition` when a Consul agent is configured; `None` when not.
    pub async fn register(
        &self,
        definition: ServiceDefinition,
    ) -> Result<Option<ServiceRegistration>, ConsulError> {
        match self.client()? {
            Some(client) => ServiceRegistration::register(client, definition)
                .await
                .map(Some),
            None => Ok(None),
        }
    }
}

/// The name in `consul://NAME` (an admin address to look up in Consul), or `None` for any
/// other address.
pub fn consul_service_name(address: &str) -> Option<&str> {
    address
        .strip_prefix(CONSUL_SCHEME)
        .map(|name| name.trim_end_matches('/'))
}

/// Where one healthy instance of a service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAddress {
    pub host: String,
    pub port: u16,
}

impl ServiceAddress {
    /// `scheme://host:port`, with an IPv6 host in brackets.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{self}")
    }
}

impl fmt::Display for ServiceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.parse::<std::net::Ipv6Addr>().is_ok() {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A client of one Consul agent. Cheap to clone.
#[derive(Clone)]
pub struct ConsulClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    address: String,
    token: Option<String>,
    http: HttpsClient,
    consul: Consul,
}

impl fmt::Debug for ConsulClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulClient")
            .field("address", &self.inner.address)
            .field("token", &self.inner.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl ConsulClient {
    /// A client of the agent at `address` (`http://host:port`, `https://...`, or `host:port`
    /// for plain HTTP), sending `token` with every request when given.
    pub fn new(address: &str, token: Option<String>) -> Result<Self, ConsulError> {
        let address = normalize_address(address)?;
        if let Some(token) = &token
            && HeaderValue::from_str(token).is_err()
        {
            return Err(ConsulError::Token(
                "it holds characters an HTTP header cannot carry".into(),
            ));
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::ring::default_provider())
            .map_err(|error| ConsulError::Unreachable {
                address: address.clone(),
                message: format!("cannot set up TLS: {error}"),
            })?
            .https_or_http()
            .enable_http1()
            .build();
        let config = rs_consul::Config {
            address: address.clone(),
            token: token.clone(),
            ..Default::default()
        };
        let http: HttpsClient = config.hyper_builder.build(connector);
        let consul = ConsulBuilder::new(config)
            .with_https_client(http.clone())
            .build();
        Ok(ConsulClient {
            inner: Arc::new(ClientInner {
                address,
                token,
                http,
                consul,
            }),
        })
    }

    /// The agent's address, as requests use it.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// One healthy instance of `service` (all its checks passing), picked at random when
    /// there are several. The instance's service address wins over its node's address.
    pub async fn resolve(&self, service: &str) -> Result<ServiceAddress, ConsulError> {
        check_name(service, false)?;
        let request_name = format!("GET /v1/health/service/{service}?passing=true");
        let request = GetServiceNodesRequest {
            service,
            passing: true,
            ..Default::default()
        };
        let nodes = self
            .inner
            .consul
            .get_service_nodes(request, None)
            .await
            .map_err(|error| self.consul_error(&request_name, error))?
            .response;
        let instances: Vec<ServiceAddress> = nodes
            .into_iter()
            .filter_map(|node| {
                let host = if node.service.address.is_empty() {
                    node.node.address
                } else {
                    node.service.address
                };
                (!host.is_empty() && node.service.port != 0).then_some(ServiceAddress {
                    host,
                    port: node.service.port,
                })
            })
            .collect();
        if instances.is_empty() {
            return Err(ConsulError::NoHealthyInstance(service.to_string()));
        }
        let picked = instances[fastrand::usize(..instances.len())].clone();
        tracing::debug!(service, instances = instances.len(), address = %picked, "resolved through Consul");
        Ok(picked)
    }

    /// `PUT /v1/agent/service/register?replace-existing-checks=true`
    async fn register_service(&self, definition: &ServiceDefinition) -> Result<(), ConsulError> {
        self.put(
            "/v1/agent/service/register?replace-existing-checks=true",
            Some(definition.payload()),
        )
        .await
    }

    /// `PUT /v1/agent/check/pass/{check_id}`
    async fn pass_check(&self, check_id: &str) -> Result<(), ConsulError> {
        self.put(&format!("/v1/agent/check/pass/{check_id}"), None)
            .await
    }

    /// `PUT /v1/agent/service/deregister/{service_id}`
    async fn deregister_service(&self, service_id: &str) -> Result<(), ConsulError> {
        self.put(&format!("/v1/agent/service/deregister/{service_id}"), None)
            .await
    }

    /// One agent request; the paths carry only checked names, so they need no escaping.
    async fn put(&self, path: &str, body: Option<serde_json::Value>) -> Result<(), ConsulError> {
        let request_name = format!("PUT {}", path.split('?').next().unwrap_or(path));
        let mut builder = Request::builder()
            .method(Method::PUT)
            .uri(format!("{}{path}", self.inner.address));
        if let Some(token) = &self.inner.token {
            let mut value = HeaderValue::from_str(token)
                .map_err(|_| ConsulError::Token("not a header value".into()))?;
            value.set_sensitive(true);
            builder = builder.header("X-Consul-Token", value);
        }
        let body: BoxBody<Bytes, Infallible> = match body {
            Some(json) => {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
                BoxBody::new(Full::new(Bytes::from(json.to_string())))
            }
            None => BoxBody::new(Empty::new()),
        };
        let request = builder
            .body(body)
            .map_err(|_| ConsulError::Address(self.inner.address.clone()))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.inner.http.request(request))
            .await
            .map_err(|_| ConsulError::Unreachable {
                address: self.inner.address.clone(),
                message: format!(
                    "no answer within {}",
                    humantime::format_duration(REQUEST_TIMEOUT)
                ),
            })?
            .map_err(|error| ConsulError::Unreachable {
                address: self.inner.address.clone(),
                message: self.redact(&error_chain(&error)),
            })?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|error| ConsulError::Unreachable {
                address: self.inner.address.clone(),
                message: self.redact(&error_chain(&error)),
            })?
            .to_bytes();
        if !status.is_success() {
            return Err(ConsulError::Refused {
                request: request_name,
                status: status.as_u16(),
                message: self.redact(String::from_utf8_lossy(&bytes).trim()),
            });
        }
        Ok(())
    }

    fn consul_error(&self, request: &str, error: rs_consul::ConsulError) -> ConsulError {
        use rs_consul::ConsulError as E;
        match error {
            E::UnexpectedResponseCode(status, body) => ConsulError::Refused {
                request: request.to_string(),
                status: status.as_u16(),
                message: self.redact(body.as_deref().unwrap_or("").trim()),
            },
            E::ResponseDeserializationFailed(error) => ConsulError::Response {
                request: request.to_string(),
                message: error.to_string(),
            },
            E::TimeoutExceeded(limit) => ConsulError::Unreachable {
                address: self.inner.address.clone(),
                message: format!("no answer within {}", humantime::format_duration(limit)),
            },
            other => ConsulError::Unreachable {
                address: self.inner.address.clone(),
                message: self.redact(&error_chain(&other)),
            },
        }
    }

    /// `text` without the token, should Consul (or an error chain) ever echo it.
    fn redact(&self, text: &str) -> String {
        match &self.inner.token {
            Some(token) if !token.is_empty() => text.replace(token.as_str(), "***"),
            _ => text.to_string(),
        }
    }
}

fn normalize_address(address: &str) -> Result<String, ConsulError> {
    let trimmed = address.trim().trim_end_matches('/');
    let full = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    };
    let uri: http::Uri = full
        .parse()
        .map_err(|_| ConsulError::Address(address.to_string()))?;
    let path_is_root = matches!(uri.path(), "" | "/");
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() && path_is_root => Ok(full),
        _ => Err(ConsulError::Address(address.to_string())),
    }
}

/// Service names (DNS-friendly) and ids (which may also hold `:`), so that they go into
/// request paths unescaped.
fn check_name(name: &str, is_id: bool) -> Result<(), ConsulError> {
    let allowed = |c: char| {
        c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' || (is_id && c == ':')
    };
    if name.is_empty() || name.len() > 200 || !name.chars().all(allowed) {
        return Err(ConsulError::Name(name.to_string()));
    }
    Ok(())
}

/// A duration as Consul (Go) reads it: `15s`, `1500ms`.
fn go_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// This machine's host name (for instance ids), `localhost` when unknown.
fn host_name() -> String {
    crate::settings::host_name()
        .map(|name| {
            name.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// What a service registers in Consul.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDefinition {
    /// The name clients look up, e.g. `ocelot-admin`.
    pub name: String,
    /// Unique among the agent's services: one per running instance.
    pub id: String,
    /// The address other machines reach the service at; `None` lets Consul use the agent's
    /// node address (right when the service listens on every interface).
    pub address: Option<String>,
    /// Its port; `0` for a service that listens on none (a worker).
    pub port: u16,
    pub tags: Vec<String>,
    /// The check turns critical when no heartbeat arrives for this long; heartbeats are
    /// sent every third of it.
    pub ttl: Duration,
    /// Consul removes the service after its check has been critical this long (an instance
    /// that died without deregistering).
    pub deregister_after: Duration,
}

impl ServiceDefinition {
    /// A service named `name` with the instance id `id`, no address and port, and the
    /// default TTL and deregistration delay.
    pub fn new(name: &str, id: &str) -> Self {
        ServiceDefinition {
            name: name.to_string(),
            id: id.to_string(),
            address: None,
            port: 0,
            tags: Vec::new(),
            ttl: DEFAULT_TTL,
            deregister_after: DEFAULT_DEREGISTER_AFTER,
        }
    }

    /// A service named `name` reachable where it `listens`; its id is
    /// `NAME-HOSTNAME-PORT`. An unspecified listen address (`0.0.0.0`, `::`) registers no
    /// address, so Consul uses the node's.
    pub fn listening(name: &str, listen: SocketAddr) -> Self {
        let ip = listen.ip();
        let mut definition =
            ServiceDefinition::new(name, &format!("{name}-{}-{}", host_name(), listen.port()));
        definition.port = listen.port();
        definition.address = (!ip.is_unspecified()).then(|| ip.to_string());
        definition
    }

    /// The id of the service's TTL check.
    pub fn check_id(&self) -> String {
        format!("service:{}", self.id)
    }

    fn payload(&self) -> serde_json::Value {
        let mut service = serde_json::json!({
            "ID": self.id,
            "Name": self.name,
            "Tags": self.tags,
            "Check": {
                "CheckID": self.check_id(),
                "Name": format!("{} heartbeat", self.name),
                "TTL": go_duration(self.ttl),
                "Status": "passing",
                "DeregisterCriticalServiceAfter": go_duration(self.deregister_after),
            },
        });
        if let Some(address) = &self.address {
            service["Address"] = serde_json::Value::from(address.as_str());
        }
        if self.port != 0 {
            service["Port"] = serde_json::Value::from(self.port);
        }
        service
    }
}

/// A service registered in Consul, kept healthy by a background heartbeat until
/// [`deregister`](ServiceRegistration::deregister). Dropping it stops the heartbeat without
/// deregistering: the check then turns critical after the TTL and Consul removes the service
/// after [`ServiceDefinition::deregister_after`].
#[derive(Debug)]
pub struct ServiceRegistration {
    client: ConsulClient,
    definition: ServiceDefinition,
    stop: watch::Sender<bool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl ServiceRegistration {
    /// Registers the service with its TTL check (initially passing) and starts the
    /// heartbeat that passes the check every third of the TTL. When the agent answers a
    /// heartbeat with 404 (it restarted and forgot the check), the service is registered
    /// again.
    pub async fn register(
        client: ConsulClient,
        definition: ServiceDefinition,
    ) -> Result<Self, ConsulError> {
        check_name(&definition.name, false)?;
        check_name(&definition.id, true)?;
        if definition.ttl < Duration::from_millis(30) {
            return Err(ConsulError::Name(format!(
                "{} (its TTL of {} is too short)",
                definition.id,
                humantime::format_duration(definition.ttl)
            )));
        }
        client.register_service(&definition).await?;
        tracing::info!(
            consul = client.address(),
            service = definition.name,
            id = definition.id,
            ttl = %humantime::format_duration(definition.ttl),
            "registered in Consul"
        );
        let (stop, stopped) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat(client.clone(), definition.clone(), stopped));
        Ok(ServiceRegistration {
            client,
            definition,
            stop,
            heartbeat: Some(heartbeat),
        })
    }

    /// Stops the heartbeat and removes the service (and its check) from the agent.
    pub async fn deregister(mut self) -> Result<(), ConsulError> {
        // the receiver may be gone if the task ended; then there is nothing to stop
        let _ = self.stop.send(true);
        if let Some(task) = self.heartbeat.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "the Consul heartbeat task failed");
        }
        self.client.deregister_service(&self.definition.id).await?;
        tracing::info!(
            consul = self.client.address(),
            id = self.definition.id,
            "deregistered from Consul"
        );
        Ok(())
    }
}

impl Drop for ServiceRegistration {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

/// Passes the TTL check every third of the TTL until told to stop.
async fn heartbeat(
    client: ConsulClient,
    definition: ServiceDefinition,
    mut stopped: watch::Receiver<bool>,
) {
    let period = definition.ttl / 3;
    let check_id = definition.check_id();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = ticks.tick() => {}
        }
        match client.pass_check(&check_id).await {
            Ok(()) => tracing::trace!(check = check_id, "Consul check passed"),
            Err(error) if error.is_unknown_check() => {
                tracing::warn!(%error, "Consul no longer knows the check; registering again");
                if let Err(error) = client.register_service(&definition).await {
                    tracing::warn!(%error, "cannot register in Consul again");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot pass the Consul check"),
        }
    }
}

/// Deregisters a service at shutdown, if it registered; a failure is only logged (the agent
/// removes the instance itself once its check stays critical).
pub async fn deregister(registration: Option<ServiceRegistration>) {
    if let Some(registration) = registration
        && let Err(error) = registration.deregister().await
    {
        tracing::warn!(%error, "cannot deregister from Consul");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalised() {
        assert_eq!(
            normalize_address("127.0.0.1:8500").ok().as_deref(),
            Some("http://127.0.0.1:8500")
        );
        assert_eq!(
            normalize_address("https://consul.example/").ok().as_deref(),
            Some("https://consul.example")
        );
        assert!(normalize_address("unix:///var/run/consul.sock").is_err());
        assert!(normalize_address("http://host:8500/v1").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("ocelot-admin", false).is_ok());
        assert!(check_name("service:ocelot-admin-1", true).is_ok());
        assert!(check_name("service:x", false).is_err());
        assert!(check_name("a/b", true).is_err());
        assert!(check_name("a?b", false).is_err());
        assert!(check_name("", false).is_err());
    }

    #[test]
    fn durations_read_as_go_durations() {
        assert_eq!(go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn consul_addresses_name_a_service() {
        assert_eq!(
            consul_service_name("consul://ocelot-admin/"),
            Some("ocelot-admin")
        );
        assert_eq!(consul_service_name("http://127.0.0.1:50051"), None);
    }

    #[test]
    fn service_addresses_bracket_ipv6() {
        let v6 = ServiceAddress {
            host: "::1".into(),
            port: 50051,
        };
        assert_eq!(v6.url("http"), "http://[::1]:50051");
        let v4 = ServiceAddress {
            host: "10.0.0.5".into(),
            port: 50051,
        };
        assert_eq!(v4.url("https"), "https://10.0.0.5:50051");
    }

    #[test]
    fn listening_on_every_interface_registers_no_address() {
        let any = ServiceDefinition::listening("ocelot-admin", "0.0.0.0:50051".parse().unwrap());
        assert_eq!(any.address, None);
        assert_eq!(any.port, 50051);
        assert!(any.id.starts_with("ocelot-admin-") && any.id.ends_with("-50051"));
        let one = ServiceDefinition::listening("ocelot-admin", "10.1.2.3:50051".parse().unwrap());
        assert_eq!(one.address.as_deref(), Some("10.1.2.3"));
        assert_eq!(one.payload()["Address"], "10.1.2.3");
        assert_eq!(one.payload()["Check"]["TTL"], "15s");
    }

    #[test]
    fn debug_hides_the_token() {
        let client =
            ConsulClient::new("127.0.0.1:8500", Some("s3cr3t-token-value".into())).unwrap();
        let text = format!("{client:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
