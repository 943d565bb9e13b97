//! Connecting to the admin, and turning gRPC failures into messages and exit codes.

use crate::exit::ExitStatus;
use ocelot_proto::v1::admin_client::AdminClient;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

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

/// Normalises an address: `host:port` becomes `http://host:port`.
fn endpoint_url(admin: &str) -> String {
    if admin.contains("://") {
        admin.to_string()
    } else {
        format!("http://{admin}")
    }
}

pub(crate) async fn connect(admin: &str) -> Result<AdminClient<Channel>, CliError> {
    let url = endpoint_url(admin);
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
                format!("invalid admin address `{admin}`: {e}"),
            )
        })?
        .connect_timeout(Duration::from_secs(5))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let channel = endpoint.connect().await.map_err(|e| {
        let detail = std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| e.to_string());
        unreachable(detail)
    })?;
    Ok(AdminClient::new(channel))
}

/// The message and exit status of a failed call.
pub(crate) fn from_status(status: tonic::Status) -> CliError {
    use tonic::Code;
    let exit = match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => ExitStatus::Unreachable,
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::PermissionDenied
        | Code::Unauthenticated => ExitStatus::Rejected,
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
    use super::endpoint_url;

    #[test]
    fn bare_addresses_get_a_scheme() {
        assert_eq!(endpoint_url("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(
            endpoint_url("https://ci.example:443"),
            "https://ci.example:443"
        );
    }
}
