//! Connecting to the admin, and turning gRPC failures into messages and exit codes.

use crate::exit::ExitStatus;
use ocelot_discovery::consul::{ConsulArgs, consul_service_name};
use ocelot_domain::env_vars;
use ocelot_proto::v1::admin_client::AdminClient;
use std::path::PathBuf;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// The admin client, sending the API token with every call.
pub(crate) type Client = AdminClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer TOKEN` to every request (when there is a token).
#[derive(Clone)]
pub(crate) struct BearerToken(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The CLI's config file for the token: `$XDG_CONFIG_HOME/ocelot/token` or
/// `~/.config/ocelot/token`.
fn token_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("ocelot").join("token"))
}

/// The API token from `OCELOT_TOKEN`, else from the config file (which only its owner may
/// read); `None` when there is neither.
fn load_token() -> Result<Option<MetadataValue<Ascii>>, CliError> {
    token_text()?
        .map(|token| {
            format!("Bearer {token}")
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| {
                    CliError::new(
                        ExitStatus::Usage,
                        "the API token has characters a token cannot have",
                    )
                })
        })
        .transpose()
}

/// The API token itself (see [`load_token`]).
pub(crate) fn token_text() -> Result<Option<String>, CliError> {
    let token = match std::env::var(env_vars::OCELOT_TOKEN) {
        Ok(token) if !token.trim().is_empty() => Some(token.trim().to_string()),
        _ => match token_file().filter(|path| path.exists()) {
            Some(path) => {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path)
                    .map(|m| m.permissions().mode())
                    .unwrap_or(0);
                if mode & 0o077 != 0 {
                    return Err(CliError::new(
                        ExitStatus::Usage,
                        format!("{} is readable by others: chmod 600 it", path.display()),
                    ));
                }
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    CliError::new(
                        ExitStatus::Usage,
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                Some(text.trim().to_string()).filter(|t| !t.is_empty())
            }
            None => None,
        },
    };
    Ok(token)
}

/// A failure the user sees: a message for stderr and the exit status.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) message: String,
    pub(crate) status: ExitStatus,
}

impl CliError {
    pub(crate) fn new(status: ExitStatus, message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            status,
        }
    }
}

/// Where the admin is, and how to trust its TLS certificate.
#[derive(Debug, Clone)]
pub(crate) struct AdminTarget {
    /// `http://host:port`, `https://host:port` or `host:port`.
    pub(crate) address: String,
    /// A CA certificate (PEM) for an `https://` admin.
    pub(crate) tls_ca: Option<PathBuf>,
    /// The Consul agent for `consul://SERVICE` addresses.
    pub(crate) consul: ConsulArgs,
    /// Whether the token may go over plain `http://` to an admin off this machine.
    pub(crate) allow_insecure: bool,
}

/// Whether `host` (from a URL: a name, an IPv4 address or a bracketed IPv6 one) is this
/// machine: `localhost` (and `*.localhost`), 127.0.0.0/8 or ::1.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Why the CLI will not talk to `url`: plain `http://` to an admin off this machine would
/// show the API token to anyone on the way. `None`: go ahead.
pub(crate) fn insecure_refusal(url: &str, allow_insecure: bool) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    if allow_insecure {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if host_port.starts_with('[') {
        host_port.split(']').next().map(|h| format!("{h}]"))
    } else {
        host_port.split(':').next().map(str::to_string)
    }
    .unwrap_or_default();
    if is_loopback(&host) {
        return None;
    }
    Some(format!(
        "refusing to send the API token over plain http:// to {host}, where anyone on the way can read it: \
         serve the admin over TLS and use an https:// address (with --tls-ca for a private CA), \
         or pass --allow-insecure (OCELOT_ALLOW_INSECURE=1) if this network is trusted"
    ))
}

/// The admin's URL: `consul://SERVICE` is looked up in Consul (a healthy instance).
async fn admin_url(admin: &AdminTarget) -> Result<String, CliError> {
    let Some(service) = consul_service_name(&admin.address) else {
        return Ok(endpoint_url(&admin.address));
    };
    let client = admin
        .consul
        .client_or_default()
        .map_err(|e| CliError::new(ExitStatus::Usage, e.to_string()))?;
    let found = client.resolve(service).await.map_err(|e| {
        CliError::new(
            ExitStatus::Unreachable,
            format!("cannot find the admin `{service}` through Consul: {e}"),
        )
    })?;
    Ok(found.url(if admin.tls_ca.is_some() {
        "https"
    } else {
        "http"
    }))
}

/// Normalises an address: `host:port` becomes `http://host:port`.
fn endpoint_url(admin: &str) -> String {
    if admin.contains("://") {
        admin.to_string()
    } else {
        format!("http://{admin}")
    }
}

/// The TLS settings for `url`: system roots, plus the `--tls-ca` certificate when given.
fn tls_config(
    url: &str,
    tls_ca: Option<&std::path::Path>,
) -> Result<Option<ClientTlsConfig>, CliError> {
    let usage = |message: String| CliError::new(ExitStatus::Usage, message);
    if !url.starts_with("https://") {
        if tls_ca.is_some() {
            return Err(usage(format!(
                "--tls-ca is for an https:// admin; the admin address is {url}"
            )));
        }
        return Ok(None);
    }
    let mut config = ClientTlsConfig::new().with_native_roots();
    if let Some(path) = tls_ca {
        let pem = std::fs::read(path).map_err(|e| {
            usage(format!(
                "cannot read the CA certificate {}: {e}",
                path.display()
            ))
        })?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(usage(format!(
                "{} is not a PEM certificate",
                path.display()
            )));
        }
        config = config.ca_certificate(Certificate::from_pem(pem));
    }
    Ok(Some(config))
}

pub(crate) async fn connect(admin: &AdminTarget) -> Result<Client, CliError> {
    let token = load_token()?;
    let url = admin_url(admin).await?;
    // before any connection: the token must not leave in clear
    if let Some(refusal) = insecure_refusal(&url, admin.allow_insecure) {
        return Err(CliError::new(ExitStatus::Usage, refusal));
    }
    let tls = tls_config(&url, admin.tls_ca.as_deref())?;
    let unreachable = |detail: String| {
        CliError::new(
            ExitStatus::Unreachable,
            format!(
                "cannot reach the Ocelot admin at {url}: {detail}\n\
                 hint: is ocelot-admin running? Point to it with --admin or OCELOT_ADMIN"
            ),
        )
    };
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| {
            CliError::new(
                ExitStatus::Usage,
                format!("invalid admin address `{}`: {e}", admin.address),
            )
        })?
        .connect_timeout(Duration::from_secs(5))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let endpoint = match tls {
        Some(config) => endpoint
            .tls_config(config)
            .map_err(|e| CliError::new(ExitStatus::Usage, format!("invalid TLS settings: {e}")))?,
        None => endpoint,
    };
    let channel = endpoint.connect().await.map_err(|e| {
        let detail = std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| e.to_string());
        unreachable(detail)
    })?;
    Ok(AdminClient::with_interceptor(channel, BearerToken(token)))
}

/// The message and exit status of a failed call.
pub(crate) fn from_status(status: tonic::Status) -> CliError {
    use tonic::Code;
    let exit = match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => ExitStatus::Unreachable,
        Code::InvalidArgument | Code::NotFound | Code::AlreadyExists | Code::FailedPrecondition => {
            ExitStatus::Rejected
        }
        Code::PermissionDenied | Code::Unauthenticated => ExitStatus::NotAllowed,
        _ => ExitStatus::Errored,
    };
    let message = if status.message().is_empty() {
        format!("the admin answered {:?}", status.code())
    } else {
        status.message().to_string()
    };
    CliError::new(exit, message)
}

#[cfg(test)]
mod tests {
    use super::{endpoint_url, insecure_refusal};

    #[test]
    fn plain_http_is_for_loopback_only_unless_allowed() {
        for url in [
            "http://127.0.0.1:50051",
            "http://127.9.9.9:1",
            "http://localhost:50051",
            "http://LOCALHOST",
            "http://ci.localhost:80",
            "http://[::1]:50051",
            "https://ci.example:443",
            "https://192.0.2.1:443",
        ] {
            assert_eq!(insecure_refusal(url, false), None, "{url}");
        }
        for url in [
            "http://192.0.2.1:50051",
            "http://ci.example:50051",
            "http://[2001:db8::1]:50051",
            "http://10.0.0.1",
            "http://localhost.example.com:1",
            "http://127.0.0.1.nip.io:1",
            "http://user@192.0.2.1:1/path",
        ] {
            let refusal = insecure_refusal(url, false).unwrap_or_else(|| panic!("{url}"));
            assert!(refusal.contains("--allow-insecure"), "{refusal}");
            assert!(refusal.contains("https://"), "{refusal}");
            assert_eq!(insecure_refusal(url, true), None, "{url}");
        }
    }

    #[test]
    fn bare_addresses_get_a_scheme() {
        assert_eq!(endpoint_url("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(
            endpoint_url("https://ci.example:443"),
            "https://ci.example:443"
        );
    }
}
