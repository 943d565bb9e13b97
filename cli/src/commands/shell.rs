//! `ocelot completions SHELL` and `ocelot man [-o DIR]`: what shells and `man` need, made
//! from the CLI's own definition (clap_complete, clap_mangen), so they never drift from it.

use crate::args::Args;
use crate::client::CliError;
use crate::exit::ExitStatus;
use clap::CommandFactory;
use std::io::Write;
use std::path::Path;

pub(crate) fn completions(shell: clap_complete::Shell) -> Result<ExitStatus, CliError> {
    let mut command = Args::command();
    // made in memory: writing straight to stdout panics on a closed pipe (`| head`)
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "ocelot", &mut script);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitStatus::Passed),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitStatus::Passed),
        Err(error) => Err(CliError::new(
            ExitStatus::Usage,
            format!("cannot write the completion script: {error}"),
        )),
    }
}

pub(crate) fn man_pages(output: &Path) -> Result<ExitStatus, CliError> {
    let failed = |e: std::io::Error| {
        CliError::new(
            ExitStatus::Usage,
            format!("cannot write the man pages into {}: {e}", output.display()),
        )
    };
    std::fs::create_dir_all(output).map_err(failed)?;
    clap_mangen::generate_to(Args::command(), output).map_err(failed)?;
    eprintln!(
        "man pages written to {} (e.g. `man {}/ocelot.1`)",
        output.display(),
        output.display()
    );
    Ok(ExitStatus::Passed)
}
