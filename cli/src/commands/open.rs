//! `ocelot open [BUILD] [--no-token]`: prints the dashboard's link to a build (`BUILD`: an
//! id, `latest` or a commit prefix, as for `watch`). The link signs the browser in: it
//! carries the API token in its fragment (`#/builds/7?token=...`), which a browser never
//! sends to a server; the page posts it once and drops it from the address. `--no-token`
//! leaves it out (sign in on the page).

use crate::build_ref::BuildRef;
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use ocelot_proto::v1 as pb;

pub(crate) async fn run(
    admin: &AdminTarget,
    build: Option<BuildRef>,
    no_token: bool,
) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    let info = client
        .get_server_info(pb::GetServerInfoRequest {})
        .await
        .map_err(client::from_status)?
        .into_inner();
    if info.dashboard_url.is_empty() {
        return Err(CliError::new(
            ExitStatus::Usage,
            "the admin serves no dashboard: start it with --http-listen ADDRESS (and --dashboard-url URL when browsers reach it at another address)",
        ));
    }
    let build_id = super::resolve::build_id(&mut client, build).await?;
    let token = if no_token {
        None
    } else {
        client::token_text()?
    };
    let link = link(&info.dashboard_url, build_id.get(), token.as_deref());
    if token.is_some() {
        eprintln!(
            "the link signs your browser in with your API token: do not share it (--no-token leaves it out)"
        );
    }
    println!("{link}");
    Ok(ExitStatus::Passed)
}

/// `BASE/#/builds/ID`, with `?token=TOKEN` when there is one.
fn link(base: &str, build_id: i64, token: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    match token {
        Some(token) => format!("{base}/#/builds/{build_id}?token={token}"),
        None => format!("{base}/#/builds/{build_id}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_token_goes_in_the_fragment() {
        assert_eq!(
            super::link("http://ci.example/", 7, Some("ocelot_abc")),
            "http://ci.example/#/builds/7?token=ocelot_abc"
        );
        assert_eq!(
            super::link("http://ci.example/ocelot", 7, None),
            "http://ci.example/ocelot/#/builds/7"
        );
    }
}
