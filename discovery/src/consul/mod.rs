//! Consul: a service registers itself with a TTL health check, keeps the check passing from a
//! background task and deregisters on shutdown; clients (the CLI's `--admin consul://NAME`)
//! find a healthy instance by name.
//!
//! - [`client`]: one agent's HTTP API (the health query and the three agent endpoints);
//! - [`registration`]: what a service registers, its heartbeat and its deregistration.
//!
//! # Why plain HTTP, not a Consul crate
//!
//! The four requests Ocelot sends (`GET /v1/health/service/{name}?passing=true`,
//! `PUT /v1/agent/service/register`, `PUT /v1/agent/check/pass/{check_id}`,
//! `PUT /v1/agent/service/deregister/{service_id}`) go through one hyper 1 client (rustls with
//! the `ring` provider and the platform's trust store), the stack tonic already brings. The
//! maintained Consul crate, `rs-consul`, has no agent endpoint at all (a TTL check only exists
//! on an agent), so it could only have served the health query; that one query did not justify
//! linking it into the `ocelot` CLI, which must stay free of the services' dependencies.
//!
//! The ACL token travels only in the `X-Consul-Token` header; it never appears in an error,
//! a `Debug` output or a log line (and is cut out of any error text Consul sends back).

mod client;
mod registration;

pub use client::ConsulClient;
pub use registration::{ServiceDefinition, ServiceRegistration, deregister};

use ocelot_domain::env_vars;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where a Consul agent listens unless told otherwise.
pub const DEFAULT_CONSUL_ADDR: &str = "http://127.0.0.1:8500";
/// The scheme of an address resolved through Consul: `consul://SERVICE-NAME`.
pub const CONSUL_SCHEME: &str = "consul://";
/// How long a registered service's check stays passing without a heartbeat.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);
/// How long Consul keeps a service whose check is critical (one that died without
/// deregistering) before removing it.
pub const DEFAULT_DEREGISTER_AFTER: Duration = Duration::from_secs(60);
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
    pub(crate) fn is_unknown_check(&self) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
