//! `ocelot`: the command line of the Ocelot CI.
//!
//! - [`args`]: the clap definitions (flags and their environment variables).
//! - [`build_ref`]: a build as typed (`42`, `latest`, a commit prefix).
//! - [`exit`]: the documented exit codes.
//! - `client`: connecting to the admin, with errors a person can act on.
//! - `checkout`: what the current git checkout says (remote URL, branch, commit).
//! - `commands`: one module per subcommand.
//! - `render`: how build events are shown (human with progress, or JSON lines).

pub mod args;
pub mod build_ref;
mod checkout;
mod client;
mod commands;
pub mod exit;
mod render;

use exit::ExitStatus;

/// Runs the parsed command and returns the process's exit status.
pub fn run(args: args::Args) -> ExitStatus {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitStatus::Usage;
        }
    };
    runtime.block_on(commands::dispatch(args))
}
