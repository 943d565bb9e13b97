//! `ocelot exec`: this checkout's `ocelot.yml`, uncommitted changes included, run on this
//! machine's Docker Engine by the worker's own engine ([`ocelot_worker::LocalRunner`]), with
//! no server; shown and ended as `ocelot build` shows and ends a build (the same renderer,
//! the same exit codes). Ctrl-C cancels the build (its containers are removed); a second
//! Ctrl-C stops at once, and what the build made is removed all the same.

mod working_tree;

use crate::args::ExecArgs;
use crate::client::CliError;
use crate::exit::ExitStatus;
use crate::render::Renderer;
use ocelot_domain::BuildState;
use ocelot_domain::build_params::BuildParams;
use ocelot_domain::events::BuildEvent;
use ocelot_domain::ids::BuildId;
use ocelot_proto::v1 as pb;
use ocelot_worker::{LocalBuild, LocalRunner};
use tokio::sync::mpsc;

/// Events waiting for the renderer: past this, the build's output waits.
const QUEUED_EVENTS: usize = 256;

pub(crate) async fn run(args: ExecArgs) -> Result<ExitStatus, CliError> {
    let env = ocelot_domain::build_params::env_params(args.params.env.iter().cloned())
        .map_err(|error| CliError::new(ExitStatus::Usage, error.to_string()))?;
    let params = BuildParams {
        env,
        force: args.params.force,
        stage: args.params.stage.clone(),
    };
    let tree = tokio::task::spawn_blocking(working_tree::read)
        .await
        .map_err(|e| CliError::new(ExitStatus::Errored, format!("reading the checkout: {e}")))?
        .map_err(|detail| CliError::new(ExitStatus::Usage, detail))?;
    let branch = match (args.branch.clone(), tree.branch.clone()) {
        (Some(branch), _) | (None, Some(branch)) => branch,
        (None, None) => {
            return Err(CliError::new(
                ExitStatus::Usage,
                "HEAD is detached: name the branch the build is of with --branch NAME",
            ));
        }
    };
    let pipeline = tree
        .pipeline(args.file.as_deref())
        .map_err(|detail| CliError::new(ExitStatus::Errored, detail))?;
    let runner = LocalRunner::connect()
        .await
        .map_err(|e| CliError::new(ExitStatus::Errored, e.to_string()))?;
    if let Some(warning) = runner.host_access_warning() {
        eprintln!("warning: this build may reach this machine's own addresses: {warning}");
    }
    let workspace = tempfile::Builder::new()
        .prefix("ocelot-exec-workspace-")
        .tempdir()
        .map_err(|e| CliError::new(ExitStatus::Errored, format!("making a workspace: {e}")))?;
    let dest = workspace.path().to_path_buf();
    let tree = tokio::task::spawn_blocking(move || tree.copy_into(&dest).map(|()| tree))
        .await
        .map_err(|e| {
            CliError::new(
                ExitStatus::Errored,
                format!("copying the working tree: {e}"),
            )
        })?
        .map_err(|e| {
            CliError::new(
                ExitStatus::Errored,
                format!("copying the working tree into the workspace: {e}"),
            )
        })?;
    let repo_name = args.repo.clone().unwrap_or_else(|| tree.name.clone());
    if !args.json {
        let changes = match tree.uncommitted {
            0 => String::new(),
            1 => ", with 1 uncommitted change".to_string(),
            n => format!(", with {n} uncommitted changes"),
        };
        eprintln!(
            "exec: {repo_name} ({branch} @ {}{changes}) in Docker on this machine",
            tree.commit.get(..7).unwrap_or(&tree.commit)
        );
    }
    let build = LocalBuild {
        repo_name,
        repo_url: tree.url.clone(),
        branch,
        commit: tree.commit.clone(),
        commit_messages: vec![tree.message.clone()],
        changed_paths: tree.changed_paths.clone(),
        pipeline,
        params,
        workspace: workspace.path().to_path_buf(),
    };
    let mut renderer = Renderer::new(args.json, BuildId::from(0), false);
    let (sender, receiver) = mpsc::channel(QUEUED_EVENTS);
    let first = async {
        interrupt().await;
        eprintln!("ocelot exec: cancelling the build (Ctrl-C again stops at once)");
    };
    let ran = tokio::select! {
        (_, state) = async {
            tokio::join!(runner.run(build, sender, first), show(&mut renderer, receiver))
        } => Some(state),
        () = async {
            interrupt().await;
            interrupt().await;
        } => None,
    };
    // whatever stopped it, nothing of the build stays on the Docker host
    runner.remove_leftovers().await;
    match ran {
        Some(Some(state)) => Ok(ExitStatus::of_build(state)),
        Some(None) => Err(CliError::new(
            ExitStatus::Errored,
            "the build ended without a result",
        )),
        None => {
            renderer.interrupted();
            eprintln!("ocelot exec: stopped; the build's containers are removed");
            Ok(ExitStatus::Cancelled)
        }
    }
}

/// Shows every event of the build as `ocelot build` does; its final state, once its result
/// came.
async fn show(
    renderer: &mut Renderer,
    mut events: mpsc::Receiver<BuildEvent>,
) -> Option<BuildState> {
    let mut state = None;
    while let Some(event) = events.recv().await {
        if let Some(ended) = renderer.event(&pb::BuildEvent::from(&event)) {
            state = Some(ended);
        }
    }
    state
}

/// Resolves at the next Ctrl-C (never, when it cannot be listened for).
async fn interrupt() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
