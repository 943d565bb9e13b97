//! `ocelot build`: queue a build of this checkout (or of `-r/-b/-c`) and stream it.

use crate::args::BuildArgs;
use crate::checkout;
use crate::client::{self, AdminTarget, CliError};
use crate::exit::ExitStatus;
use ocelot_proto::v1::{EnvParam, TriggerBuildRequest};

/// `--env` parameters as the API takes them, checked as a whole (each name once, at most
/// 64): a usage error before anything is sent.
pub(super) fn env_params(pairs: &[(String, String)]) -> Result<Vec<EnvParam>, CliError> {
    let env = ocelot_domain::build_params::env_params(pairs.iter().cloned())
        .map_err(|error| CliError::new(ExitStatus::Usage, error.to_string()))?;
    Ok(ocelot_domain::wire::env_params_to_pb(&env))
}

pub(crate) async fn run(admin: &AdminTarget, args: BuildArgs) -> Result<ExitStatus, CliError> {
    let env = env_params(&args.params.env)?;
    let local = if args.repo.is_none() || (args.branch.is_none() && args.commit.is_none()) {
        Some(checkout::current())
    } else {
        None
    };
    let mut client = client::connect(admin).await?;
    let repo = match (&args.repo, &local) {
        (Some(repo), _) => repo.clone(),
        (None, Some(Ok(checkout))) => {
            super::resolve::repo_of_checkout(&mut client, checkout, "give -r NAME").await?
        }
        (None, Some(Err(error))) => return Err(CliError::new(error.status, error.message.clone())),
        (None, None) => {
            return Err(CliError::new(
                ExitStatus::Usage,
                "give the repository with -r NAME",
            ));
        }
    };
    // -b/-c win; otherwise the checkout's branch and commit, when the checkout is of this repo
    let checkout_of_repo = match &local {
        Some(Ok(checkout)) if args.repo.is_none() => Some(checkout),
        Some(Ok(checkout)) => {
            let repos = super::resolve::registered_repos(&mut client).await?;
            let same = |url: &str| {
                checkout
                    .remote_url
                    .as_deref()
                    .map(ocelot_domain::repo_url::normalize_url)
                    == Some(ocelot_domain::repo_url::normalize_url(url))
            };
            repos
                .iter()
                .any(|r| r.name == repo && same(&r.url))
                .then_some(checkout)
        }
        _ => None,
    };
    let (branch, commit) = match (&args.branch, &args.commit, checkout_of_repo) {
        (None, None, Some(checkout)) => (
            checkout.branch.clone().unwrap_or_default(),
            checkout.commit.clone(),
        ),
        (branch, commit, _) => (
            branch.clone().unwrap_or_default(),
            commit.clone().unwrap_or_default(),
        ),
    };
    let build = client
        .trigger_build(TriggerBuildRequest {
            repo,
            branch,
            commit,
            env,
            force: args.params.force,
            stage: args.params.stage.clone().unwrap_or_default(),
        })
        .await
        .map_err(client::from_status)?
        .into_inner()
        .build
        .ok_or_else(|| CliError::new(ExitStatus::Errored, "the admin answered without a build"))?;
    if args.no_follow {
        println!("{}", build.id);
        return Ok(ExitStatus::Passed);
    }
    if !args.json {
        eprintln!(
            "build {} queued: {} #{} ({} @ {})",
            build.id,
            build.repo,
            build.number,
            build.branch,
            build.commit.get(..7).unwrap_or(&build.commit)
        );
    }
    super::watch::follow(admin, client, build.id.into(), args.json).await
}
