//! `ocelot kill [BUILD]`: cancel a queued build, or stop a running one (returns once its
//! container is gone, or says why not); a finished build is a no-op. `BUILD`: an id,
//! `latest` or a commit prefix (see `resolve`).

use crate::build_ref::BuildRef;
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use ocelot_proto::v1 as pb;
use serde_json::json;

pub(crate) async fn run(
    admin: &AdminTarget,
    build: Option<BuildRef>,
    json: bool,
) -> Result<ExitStatus, CliError> {
    let mut client = client::connect(admin).await?;
    let build_id = super::resolve::build_id(&mut client, build).await?;
    let answer = client
        .cancel_build(pb::CancelBuildRequest {
            build_id: build_id.into(),
        })
        .await
        .map_err(client::from_status)?
        .into_inner();
    let state = answer
        .build
        .as_ref()
        .map(|b| ocelot_domain::wire::build_state_from_i32(b.state))
        .and_then(Result::ok);
    let outcome = ocelot_domain::wire::cancel_outcome_from_i32(answer.outcome);
    if json {
        println!(
            "{}",
            json!({"build_id": build_id, "outcome": outcome.map(|o| o.as_str()),
                   "message": answer.message, "state": state.map(|s| s.as_str())})
        );
    } else {
        eprintln!("{}", answer.message);
    }
    Ok(match outcome {
        // the request did what was asked, or there was nothing to do
        Some(outcome) if outcome.is_settled() => ExitStatus::Passed,
        _ => ExitStatus::Errored,
    })
}
