//! One Consul agent's HTTP API: the health query and the agent endpoints Ocelot uses.

use super::{ConsulError, ServiceAddress};
use crate::consul::registration::ServiceDefinition;
use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ocelot_domain::error_chain::error_chain;
use serde::Deserialize;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, BoxBody<Bytes, Infallible>>;

/// How long one request to Consul may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one Consul agent. Cheap to clone.
#[derive(Clone)]
pub struct ConsulClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    address: String,
    token: Option<String>,
    http: HttpsClient,
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
        let http: HttpsClient = Client::builder(TokioExecutor::new()).build(connector);
        Ok(ConsulClient {
            inner: Arc::new(ClientInner {
                address,
                token,
                http,
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
        let path = format!("/v1/health/service/{service}?passing=true");
        let request_name = format!("GET {path}");
        let body = self.send(Method::GET, &path, None).await?;
        let entries: Vec<HealthEntry> =
            serde_json::from_slice(&body).map_err(|error| ConsulError::Response {
                request: request_name,
                message: error.to_string(),
            })?;
        let instances: Vec<ServiceAddress> = entries
            .into_iter()
            .filter_map(HealthEntry::address)
            .collect();
        if instances.is_empty() {
            return Err(ConsulError::NoHealthyInstance(service.to_string()));
        }
        let picked = instances[fastrand::usize(..instances.len())].clone();
        tracing::debug!(service, instances = instances.len(), address = %picked, "resolved through Consul");
        Ok(picked)
    }

    /// `PUT /v1/agent/service/register?replace-existing-checks=true`
    pub(crate) async fn register_service(
        &self,
        definition: &ServiceDefinition,
    ) -> Result<(), ConsulError> {
        self.send(
            Method::PUT,
            "/v1/agent/service/register?replace-existing-checks=true",
            Some(definition.payload()),
        )
        .await
        .map(drop)
    }

    /// `PUT /v1/agent/check/pass/{check_id}`
    pub(crate) async fn pass_check(&self, check_id: &str) -> Result<(), ConsulError> {
        self.send(
            Method::PUT,
            &format!("/v1/agent/check/pass/{check_id}"),
            None,
        )
        .await
        .map(drop)
    }

    /// `PUT /v1/agent/service/deregister/{service_id}`
    pub(crate) async fn deregister_service(&self, service_id: &str) -> Result<(), ConsulError> {
        let path = format!("/v1/agent/service/deregister/{service_id}");
        self.send(Method::PUT, &path, None).await.map(drop)
    }

    /// One request to the agent, answered with its body; the paths carry only checked
    /// names, so they need no escaping.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Bytes, ConsulError> {
        let request_name = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let mut builder = Request::builder()
            .method(method)
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
        Ok(bytes)
    }

    /// `text` without the token, should Consul (or an error chain) ever echo it.
    fn redact(&self, text: &str) -> String {
        match &self.inner.token {
            Some(token) if !token.is_empty() => text.replace(token.as_str(), "***"),
            _ => text.to_string(),
        }
    }
}

/// One entry of `GET /v1/health/service/{name}`: the parts that say where the instance is.
#[derive(Debug, Deserialize)]
struct HealthEntry {
    #[serde(rename = "Node")]
    node: HealthNode,
    #[serde(rename = "Service")]
    service: HealthService,
}

#[derive(Debug, Deserialize)]
struct HealthNode {
    #[serde(rename = "Address", default)]
    address: String,
}

#[derive(Debug, Deserialize)]
struct HealthService {
    #[serde(rename = "Address", default)]
    address: String,
    #[serde(rename = "Port", default)]
    port: u16,
}

impl HealthEntry {
    /// The service's address, else its node's; `None` without a host or a port.
    fn address(self) -> Option<ServiceAddress> {
        let host = if self.service.address.is_empty() {
            self.node.address
        } else {
            self.service.address
        };
        (!host.is_empty() && self.service.port != 0).then_some(ServiceAddress {
            host,
            port: self.service.port,
        })
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
pub(crate) fn check_name(name: &str, is_id: bool) -> Result<(), ConsulError> {
    let allowed = |c: char| {
        c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' || (is_id && c == ':')
    };
    if name.is_empty() || name.len() > 200 || !name.chars().all(allowed) {
        return Err(ConsulError::Name(name.to_string()));
    }
    Ok(())
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
    fn debug_hides_the_token() {
        let client =
            ConsulClient::new("127.0.0.1:8500", Some("s3cr3t-token-value".into())).unwrap();
        let text = format!("{client:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
