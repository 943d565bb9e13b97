//! `ocelot watch BUILD`: the whole log from line 1, live until the result.

use crate::args::WatchArgs;
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use crate::render::Renderer;
use ocelot_proto::v1::WatchBuildRequest;

pub(crate) async fn run(admin: &AdminTarget, args: WatchArgs) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    follow(&mut client, args.build, args.json).await
}

/// Streams the build's events through a renderer; the exit status reports its result.
pub(crate) async fn follow(
    client: &mut client::Client,
    build_id: i64,
    json: bool,
) -> Result<ExitStatus, CliError> {
    let mut stream = client
        .watch_build(WatchBuildRequest { id: build_id })
        .await
        .map_err(client::from_status)?
        .into_inner();
    let mut renderer = Renderer::new(json, build_id);
    loop {
        match stream.message().await {
            Ok(Some(event)) => {
                if let Some(state) = renderer.event(&event) {
                    return Ok(ExitStatus::of_build(state));
                }
            }
            Ok(None) => {
                renderer.interrupted();
                return Err(CliError::new(
                    ExitStatus::Unreachable,
                    format!(
                        "the log stream of build {build_id} ended before its result; `ocelot watch {build_id}` resumes it"
                    ),
                ));
            }
            Err(status) => {
                renderer.interrupted();
                return Err(client::from_status(status));
            }
        }
    }
}
