//! `ocelot version [--json]`: this CLI's version, and the server's (the admin it talks to,
//! with its dashboard's URL when it has one). A server that cannot be asked (not running,
//! no token) is a note on stderr, not a failure: the command still exits 0, so that it
//! works offline and in bug reports.

use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use crate::render::terminal::plain;
use ocelot_proto::v1 as pb;
use serde_json::json;

const CLI_VERSION: &str = env!("CARGO_PKG_VERSION");

pub(crate) async fn run(admin: &AdminTarget, json: bool) -> Result<ExitStatus, CliError> {
    let server = server_info(admin).await;
    if json {
        let mut value = json!({
            "version": CLI_VERSION,
            "admin": admin.address,
            "server": server.as_ref().ok().map(|info| json!({
                "version": info.version,
                "dashboard_url": (!info.dashboard_url.is_empty()).then_some(&info.dashboard_url),
            })),
        });
        if let Err(error) = &server {
            value["server_error"] = json!(error.message);
        }
        println!("{value}");
        return Ok(ExitStatus::Passed);
    }
    for line in lines(&admin.address, &server) {
        println!("{line}");
    }
    match &server {
        Ok(info) if info.version != CLI_VERSION => eprintln!(
            "note: this ocelot ({CLI_VERSION}) and the server ({}) are different versions",
            plain(&info.version)
        ),
        Ok(_) => {}
        Err(error) => eprintln!("note: the server's version is unknown: {}", error.message),
    }
    Ok(ExitStatus::Passed)
}

/// The lines on stdout: the CLI's version, then the server's and its dashboard when known.
fn lines(address: &str, server: &Result<pb::ServerInfo, CliError>) -> Vec<String> {
    let mut lines = vec![format!("ocelot {CLI_VERSION}")];
    if let Ok(info) = server {
        lines.push(format!("server {} ({address})", plain(&info.version)));
        if !info.dashboard_url.is_empty() {
            lines.push(format!("dashboard {}", plain(&info.dashboard_url)));
        }
    }
    lines
}

async fn server_info(admin: &AdminTarget) -> Result<pb::ServerInfo, CliError> {
    let mut client = client::connect(admin).await?;
    Ok(client
        .get_server_info(pb::GetServerInfoRequest {})
        .await
        .map_err(client::from_status)?
        .into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_lines_show_only_when_it_answered() {
        let info = pb::ServerInfo {
            version: "9.9.9".into(),
            dashboard_url: "https://ci.example".into(),
        };
        assert_eq!(
            lines("http://127.0.0.1:50051", &Ok(info)),
            [
                format!("ocelot {CLI_VERSION}"),
                "server 9.9.9 (http://127.0.0.1:50051)".to_string(),
                "dashboard https://ci.example".to_string(),
            ]
        );
        let down = CliError::new(ExitStatus::Unreachable, "cannot reach");
        assert_eq!(
            lines("http://127.0.0.1:1", &Err(down)),
            [format!("ocelot {CLI_VERSION}")]
        );
    }
}
