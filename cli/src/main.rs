use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = ocelot_cli::args::Args::parse();
    ocelot_cli::run(args).code()
}
