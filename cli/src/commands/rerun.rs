//! `ocelot rerun [BUILD]`: a new build of the same repo, branch and commit (and parameters,
//! unless `--env`, `--force` or `--stage` give others), streamed like `ocelot build`.
//! `BUILD`: an id, `latest` or a commit prefix (see `resolve`).

use crate::args::RerunArgs;
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use ocelot_proto::v1 as pb;

pub(crate) async fn run(admin: &AdminTarget, args: RerunArgs) -> Result<ExitStatus, CliError> {
    let RerunArgs {
        build,
        no_follow,
        json,
        params,
    } = args;
    let env = super::build::env_params(&params.env)?;
    let mut client = client::connect(admin).await?;
    let build_id = super::resolve::build_id(&mut client, build).await?;
    let build = client
        .rerun_build(pb::RerunBuildRequest {
            build_id: build_id.into(),
            replace_env: !env.is_empty(),
            env,
            force: params.force,
            stage: params.stage.unwrap_or_default(),
        })
        .await
        .map_err(client::from_status)?
        .into_inner()
        .build
        .ok_or_else(|| CliError::new(ExitStatus::Errored, "the admin answered without a build"))?;
    if no_follow {
        println!("{}", build.id);
        return Ok(ExitStatus::Passed);
    }
    if !json {
        eprintln!(
            "build {} queued: {} #{} ({} @ {}), a rerun of build {build_id}",
            build.id,
            build.repo,
            build.number,
            build.branch,
            build.commit.get(..7).unwrap_or(&build.commit)
        );
    }
    super::watch::follow(admin, client, build.id.into(), json).await
}
