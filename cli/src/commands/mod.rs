//! One module per subcommand; [`dispatch`] runs the chosen one and reports its error.

mod artifacts;
mod build;
mod cache;
mod creds;
mod deliveries;
#[cfg(feature = "exec")]
mod exec;
mod init;
mod kill;
mod open;
mod poll;
mod repos;
mod rerun;
mod resolve;
mod shell;
mod status;
mod token;
mod validate;
mod version;
mod watch;
mod workers;

use crate::args::{Args, Command};
use crate::client::{AdminTarget, CliError};
use crate::exit::ExitStatus;

pub(crate) async fn dispatch(args: Args) -> ExitStatus {
    let admin = AdminTarget {
        address: args.admin,
        tls_ca: args.tls_ca,
        consul: args.consul,
        allow_insecure: args.allow_insecure,
    };
    let result = match args.command {
        Command::Build(build_args) => build::run(&admin, build_args).await,
        #[cfg(feature = "exec")]
        Command::Exec(exec_args) => exec::run(exec_args).await,
        Command::Watch(watch_args) => watch::run(&admin, watch_args).await,
        Command::Status(status_args) => status::run(&admin, status_args).await,
        Command::Repos(repos_command) => repos::run(&admin, repos_command).await,
        Command::Validate(validate_args) => validate::run(validate_args),
        Command::Poll(poll_command) => poll::run(&admin, poll_command).await,
        Command::Creds(creds_command) => creds::run(&admin, creds_command).await,
        Command::Token(token_command) => token::run(&admin, token_command).await,
        Command::Cache(cache_command) => cache::run(&admin, cache_command).await,
        Command::Completions { shell } => shell::completions(shell),
        Command::Man { output } => shell::man_pages(&output),
        Command::Init { file, image } => init::run(&file, &image),
        Command::Version { json } => version::run(&admin, json).await,
        Command::Workers { json } => workers::run(&admin, json).await,
        Command::Artifacts(artifacts_args) => artifacts::run(&admin, artifacts_args).await,
        Command::Kill { build, json } => kill::run(&admin, build, json).await,
        Command::Open { build, no_token } => open::run(&admin, build, no_token).await,
        Command::Rerun(rerun_args) => rerun::run(&admin, rerun_args).await,
    };
    match result {
        Ok(status) => status,
        Err(CliError { message, status }) => {
            eprintln!("error: {message}");
            status
        }
    }
}
