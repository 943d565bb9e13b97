//! Command-line arguments (clap derive); every flag that has an environment variable names it.

use clap::{Parser, Subcommand};
use ocelot_core::env_vars;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "ocelot",
    version,
    about = "Ocelot CI from your terminal",
    propagate_version = true
)]
pub struct Args {
    /// Admin server address
    #[arg(long, global = true, env = env_vars::OCELOT_ADMIN, default_value = "http://127.0.0.1:50051")]
    pub admin: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a commit and stream its log; exits with the build's result
    Build(BuildArgs),
    /// Attach to a build and show its whole log, from line 1, until it ends
    Watch(WatchArgs),
    /// Show one build (with its stages), or list builds
    Status(StatusArgs),
    /// Manage the repositories Ocelot builds
    #[command(subcommand)]
    Repos(ReposCommand),
    /// Check an ocelot.yml offline and show every error
    Validate(ValidateArgs),
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Repository name (default: the one whose URL is this checkout's remote)
    #[arg(short, long)]
    pub repo: Option<String>,
    /// Branch (default: the checkout's current branch)
    #[arg(short, long)]
    pub branch: Option<String>,
    /// Commit, full or abbreviated (default: HEAD; with -b alone, the branch's head)
    #[arg(short, long)]
    pub commit: Option<String>,
    /// Print the build id and return without following the build
    #[arg(long)]
    pub no_follow: bool,
    /// Print events as JSON lines on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Build id
    pub build: i64,
    /// Print events as JSON lines on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Build id (omit to list builds)
    pub build: Option<i64>,
    /// Only builds of this repository
    #[arg(short, long)]
    pub repo: Option<String>,
    /// Only builds of this branch
    #[arg(short, long)]
    pub branch: Option<String>,
    /// Only builds in this state (queued, running, passed, failed, errored, cancelled, timed_out, skipped)
    #[arg(long)]
    pub state: Option<ocelot_core::BuildState>,
    /// How many builds to list
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReposCommand {
    /// Register a repository
    Add {
        /// A short name, e.g. `api` or `team/api`
        name: String,
        /// Clone URL (git://, http(s)://, ssh:// or file://)
        url: String,
        /// Branch built when none is given
        #[arg(long, default_value = "main")]
        default_branch: String,
    },
    /// List repositories
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a repository with its builds and logs
    Remove { name: String },
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The file to check
    #[arg(default_value = "ocelot.yml")]
    pub file: PathBuf,
    /// Print the errors (or the parsed pipeline) as JSON
    #[arg(long)]
    pub json: bool,
}
