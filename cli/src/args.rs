//! Command-line arguments (clap derive); every flag that has an environment variable names it.

use crate::build_ref::BuildRef;
use clap::{Parser, Subcommand};
use ocelot_domain::env_vars;
use ocelot_domain::ids::BuildId;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "ocelot",
    version,
    about = "Ocelot CI from your terminal",
    propagate_version = true
)]
pub struct Args {
    /// Admin server address: http(s)://host:port, host:port, or consul://SERVICE (a healthy
    /// instance of the service from Consul; https when --tls-ca is given)
    #[arg(long, global = true, env = env_vars::OCELOT_ADMIN, default_value = "http://127.0.0.1:50051")]
    pub admin: String,
    /// PEM CA certificate that signed the admin's TLS certificate (for an `https://` admin
    /// whose certificate the system's roots do not vouch for)
    #[arg(long, global = true, env = env_vars::OCELOT_TLS_CA)]
    pub tls_ca: Option<PathBuf>,
    /// Send the API token over plain `http://` to an admin that is not on this machine
    /// (loopback needs no flag); anyone on the way can read it. Prefer `https://`
    #[arg(
        long,
        global = true,
        env = env_vars::OCELOT_ALLOW_INSECURE,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_insecure: bool,
    /// The Consul agent that `--admin consul://SERVICE` asks (default: the local agent)
    #[command(flatten)]
    pub consul: ocelot_discovery::consul::ConsulArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a commit and stream its log; exits with the build's result
    Build(BuildArgs),
    /// Run this checkout's ocelot.yml (uncommitted changes included) in Docker on this
    /// machine, no server needed; shows and exits as `ocelot build`
    #[cfg(feature = "exec")]
    Exec(ExecArgs),
    /// Attach to a build and show its whole log, from line 1, until it ends
    Watch(WatchArgs),
    /// Show one build (with its stages), or list builds
    Status(StatusArgs),
    /// Manage the repositories Ocelot builds
    #[command(subcommand)]
    Repos(ReposCommand),
    /// Check an ocelot.yml offline and show every error
    Validate(ValidateArgs),
    /// Poll repositories that cannot send webhooks
    #[command(subcommand)]
    Poll(PollCommand),
    /// Manage credentials (secret values builds use); values never appear in any output
    #[command(subcommand)]
    Creds(CredsCommand),
    /// Manage API tokens (needs an admin token)
    #[command(subcommand)]
    Token(TokenCommand),
    /// Cancel a queued build, or stop a running one (returns once its container is gone)
    Kill {
        /// Build id, `latest` (the default, in a checkout: the newest build of its branch) or a
        /// commit prefix (4 or more hex digits: that commit's newest build); all digits is a
        /// build id
        build: Option<BuildRef>,
        /// Print the outcome as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Print the web dashboard's link to a build; the link signs the browser in with your
    /// API token (in the URL's fragment, never sent to a server) unless --no-token
    Open {
        /// Build id, `latest` (the default, in a checkout: the newest build of its branch) or a
        /// commit prefix (4 or more hex digits); all digits is a build id
        build: Option<BuildRef>,
        /// Leave the API token out of the link (sign in on the page instead)
        #[arg(long)]
        no_token: bool,
    },
    /// Queue a new build of a build's repo, branch and commit, and stream it
    Rerun(RerunArgs),
    /// List a build's artifacts (`ocelot artifacts BUILD`), or download them
    /// (`ocelot artifacts get BUILD [PATH...] [-o DIR]`)
    Artifacts(ArtifactsArgs),
    /// List or clear a repo's build caches (`cache:` in ocelot.yml)
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Print a shell completion script (`source <(ocelot completions bash)`)
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Write the man pages (ocelot.1, ocelot-build.1, ...) into a directory
    Man {
        /// Directory to write into (created if missing)
        #[arg(short = 'o', long = "output", default_value = ".")]
        output: PathBuf,
    },
    /// Write a commented ocelot.yml to start from (never overwrites one)
    Init {
        /// Where to write it
        #[arg(default_value = "ocelot.yml")]
        file: PathBuf,
        /// The build's image
        #[arg(long, default_value = "alpine:3")]
        image: String,
    },
    /// Print the version of this `ocelot` and of the admin it talks to (when it answers)
    Version {
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// List the live workers: tags, builds running of capacity, last heartbeat
    Workers {
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

/// `ocelot artifacts BUILD` or `ocelot artifacts get ...`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ArtifactsArgs {
    /// Build id: list its artifacts (path, size, SHA-256, stage)
    #[arg(required = true)]
    pub build: Option<BuildId>,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<ArtifactsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ArtifactsCommand {
    /// Download a build's artifacts (all, or those named) into a directory, checking each
    /// one's SHA-256; never writes outside the directory
    Get {
        /// Build id
        build: BuildId,
        /// Artifact paths (as `ocelot artifacts BUILD` lists them); default: every one
        paths: Vec<String>,
        /// Directory to write into (created if missing); artifacts keep their paths in it
        #[arg(short = 'o', long = "output", default_value = ".")]
        output: PathBuf,
        /// Print what was written as JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// A repo's saved caches: key, branch, size, last use, expiry
    List {
        /// Repo name (or URL)
        #[arg(short = 'r', long = "repo")]
        repo: String,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Delete a repo's caches (all, or those of a key prefix and/or a branch); the next
    /// builds miss and save them again
    Clear {
        /// Repo name (or URL)
        #[arg(short = 'r', long = "repo")]
        repo: String,
        /// Only the keys starting with this
        #[arg(long = "key", default_value = "")]
        key_prefix: String,
        /// Only the caches saved by this branch (`pr-N` for a fork's pull request)
        #[arg(long)]
        branch: Option<String>,
        /// Print the outcome as JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once
    Create {
        #[arg(long)]
        name: String,
        /// read, trigger or admin
        #[arg(long, default_value = "read")]
        scope: String,
        /// Limit the token to these repos: comma-separated glob patterns over repo names
        /// (`team/*,other/app`; `*` stays within one `/` segment, `**` crosses them).
        /// Default: every repo
        #[arg(long, value_delimiter = ',')]
        repos: Vec<String>,
    },
    /// List tokens (never their values)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token
    Revoke { name: String },
}

/// Which repos a credential serves: `-r REPO` or `--prefix PREFIX`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct CredScope {
    /// One repository
    #[arg(short, long)]
    pub repo: Option<String>,
    /// Every repository whose name starts with this (e.g. `team/`)
    #[arg(long)]
    pub prefix: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CredsCommand {
    /// Store a credential; its value is read from --from-file or standard input, never argv
    Add {
        /// `vcs` (HTTPS token or password for clones), `ssh` (private key for ssh:// clones),
        /// `registry` (login for image pulls), `env` (a variable in the builds' environment),
        /// `file` (a file written in the builds at --path), `storage` (the object storage's
        /// secret key, --username the key id, --prefix ''; read by admins and workers started
        /// with --storage-credential) or `notify` (a Slack webhook URL; a webhook's signing
        /// secret with --url https://...; an SMTP password with --url smtp://...)
        kind: String,
        /// Its name (for `env`: the variable's name; for the others: a label)
        name: String,
        #[command(flatten)]
        scope: CredScope,
        /// Read the value (token, password, private key, value, file) from this file instead
        /// of standard input
        #[arg(long)]
        from_file: Option<PathBuf>,
        /// vcs: the user name sent with the token (default x-access-token); ssh: the SSH user
        /// when the URL has none (default git); registry: the login (required)
        #[arg(long)]
        username: Option<String>,
        /// registry: the registry host, e.g. `ghcr.io` or `127.0.0.1:5000` (default docker.io)
        #[arg(long)]
        registry: Option<String>,
        /// ssh: a known_hosts file (e.g. from `ssh-keyscan`); the server's host key must be in
        /// it (without it, the worker's ~/.ssh/known_hosts decides)
        #[arg(long)]
        known_hosts_file: Option<PathBuf>,
        /// vcs: the git host the token is sent to, and no other (e.g. `github.com`); default:
        /// the host of the repo's URL (`-r`); required with --prefix
        #[arg(long)]
        host: Option<String>,
        /// file: where the file is written in the build, mode 0600: `~/...` (the home of the
        /// build's user; quote it, e.g. '~/.kube/config', so that your shell keeps the `~`),
        /// an absolute path, or a path relative to the workspace
        #[arg(long)]
        path: Option<String>,
        /// notify: the webhook receiver (`https://ci.example/hook`; the value signs the
        /// document) or the SMTP server with sender and allowed recipients
        /// (`smtp://HOST:587?tls=starttls&from=ci@example.com&to=dev@example.com,@example.com`;
        /// tls none, starttls or tls; --username the SMTP login, the value its password);
        /// none for Slack (the value is the incoming webhook's URL)
        #[arg(long)]
        url: Option<String>,
    },
    /// List credentials: names, kinds, scopes and dates, never values
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a credential
    Remove {
        kind: String,
        name: String,
        #[command(flatten)]
        scope: CredScope,
    },
}

#[derive(Debug, Subcommand)]
pub enum PollCommand {
    /// Poll a repository's branches (replaces its poll if it has one)
    Add {
        /// Repository name
        #[arg(short, long)]
        repo: String,
        /// Branches to track: names or globs, comma-separated (default: the repo's default branch)
        #[arg(short, long, value_delimiter = ',')]
        branches: Vec<String>,
        /// Poll at this interval (e.g. 30s, 5m)
        #[arg(long, conflicts_with = "cron", required_unless_present = "cron")]
        every: Option<String>,
        /// Poll on this 5-field cron schedule (e.g. "*/5 * * * *")
        #[arg(long)]
        cron: Option<String>,
        /// Build the current heads at the first poll (otherwise it only records them)
        #[arg(long)]
        build_now: bool,
    },
    /// List polls: schedule, last poll, last error, heads seen
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop polling a repository
    Remove {
        #[arg(short, long)]
        repo: String,
    },
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
    #[command(flatten)]
    pub params: ParamArgs,
}

/// What a build is given from the shell: recorded with it and shown by `ocelot status`.
#[derive(Debug, clap::Args)]
pub struct ParamArgs {
    /// A variable for every stage, after ocelot.yml's `env` (repeatable). Recorded with the
    /// build and shown in clear by `ocelot status`: never pass secrets this way
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env_param)]
    pub env: Vec<(String, String)>,
    /// Build even when `branches` in ocelot.yml does not match the branch
    #[arg(long)]
    pub force: bool,
    /// Run only this stage and the stages it needs (in a file of stages in order: every
    /// stage before it); the others are skipped
    #[arg(long, value_name = "NAME")]
    pub stage: Option<String>,
}

/// `ocelot exec`: which pipeline, and what the build is given.
#[cfg(feature = "exec")]
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The pipeline file to run (default: ocelot.yml at the top of the checkout)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The repository's name the build is given (`OCELOT_REPO`; default: the last part of
    /// the checkout's remote URL, else of its directory)
    #[arg(short, long)]
    pub repo: Option<String>,
    /// The branch the build is of (default: the checkout's current branch)
    #[arg(short, long)]
    pub branch: Option<String>,
    /// Print events as JSON lines on stdout
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub params: ParamArgs,
}

fn parse_env_param(text: &str) -> Result<(String, String), String> {
    ocelot_domain::build_params::parse_env_param(text).map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
pub struct RerunArgs {
    /// Build id, `latest` (the default, in a checkout: the newest build of its branch) or a
    /// commit prefix (4 or more hex digits: that commit's newest build); all digits is a
    /// build id
    pub build: Option<BuildRef>,
    /// Print the new build id and return without following it
    #[arg(long)]
    pub no_follow: bool,
    /// Print events as JSON lines on stdout
    #[arg(long)]
    pub json: bool,
    /// With --env: these parameters instead of the original build's (without: its own are
    /// kept); --force and --stage likewise
    #[command(flatten)]
    pub params: ParamArgs,
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Build id, `latest` (the default, in a checkout: the newest build of its branch) or a
    /// commit prefix (4 or more hex digits: that commit's newest build); all digits is a
    /// build id
    pub build: Option<BuildRef>,
    /// Print events as JSON lines on stdout
    #[arg(long)]
    pub json: bool,
    /// Replay an earlier attempt's log (one whose worker was lost or handed the build back);
    /// `ocelot status BUILD` shows how many attempts a build had
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempt: Option<u32>,
    /// Also show the log lines of the build's service containers (stages `service:NAME`)
    /// when it passed; those of a build that did not pass are always shown
    #[arg(long)]
    pub services: bool,
    /// Show only this stage's lines and progress (stages that run at the same time
    /// interleave their lines, each with its stage in front)
    #[arg(long, value_name = "NAME")]
    pub stage: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Build id, `latest` (in a checkout: the newest build of its branch) or a commit prefix
    /// (4 or more hex digits: that commit's newest build); all digits is a build id. Omit to
    /// list builds
    pub build: Option<BuildRef>,
    /// Only builds of this repository
    #[arg(short, long)]
    pub repo: Option<String>,
    /// Only builds of this branch
    #[arg(short, long)]
    pub branch: Option<String>,
    /// Only builds in this state (queued, running, passed, failed, errored, cancelled, timed_out, skipped)
    #[arg(long)]
    pub state: Option<ocelot_domain::BuildState>,
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
        /// Secret that signs its webhooks (at least 16 characters; default: generated)
        #[arg(long)]
        webhook_secret: Option<String>,
        /// The hookhandler's public URL, for the webhook URLs printed
        #[arg(long, env = env_vars::OCELOT_HOOKS_URL, default_value = "http://127.0.0.1:8080")]
        hooks_url: String,
        /// Print the repo, secret and webhook URLs as JSON
        #[arg(long)]
        json: bool,
        /// Also create the webhook on the forge (as `ocelot repos hook` does)
        #[arg(long)]
        hook: bool,
    },
    /// Create the repo's webhook on its forge (GitHub, GitLab, Bitbucket, Gitea) through the
    /// forge's API, with the repo's webhook secret and vcs credential
    Hook {
        name: String,
        /// Delete the webhooks whose URL is ours instead
        #[arg(long)]
        remove: bool,
        /// The hookhandler's public URL the forge sends to, e.g. https://hooks.ci.example
        /// (required: a forge cannot reach a default on localhost)
        #[arg(long)]
        hooks_url: String,
    },
    /// List repositories
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a repository with its builds and logs
    Remove { name: String },
    /// Change a repository's options
    Set {
        name: String,
        /// Whether builds of pull requests from forks get the repo's `env` and `registry`
        /// credentials (default false: a fork's code never sees them)
        #[arg(long, action = clap::ArgAction::Set)]
        secrets_for_forks: Option<bool>,
        /// Whether builds whose ocelot.yml names no image may run directly on
        /// `--executor host` workers, as an unprivileged per-build user (default false:
        /// refused, the build ends errored). Pull-request builds never run on the host
        #[arg(long, action = clap::ArgAction::Set)]
        allow_host: Option<bool>,
        /// The forge commit statuses (and `repos hook`) go to: github, gitlab, bitbucket,
        /// gitea, or auto (told by the URL's host: github.com, gitlab.com, bitbucket.org)
        #[arg(long)]
        forge: Option<String>,
        /// The forge API's base URL (default per forge: https://api.github.com,
        /// https://gitlab.com/api/v4, https://api.bitbucket.org/2.0; gitea needs one, e.g.
        /// https://gitea.example/api/v1); auto: the default
        #[arg(long)]
        api_url: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The file to check
    #[arg(default_value = "ocelot.yml")]
    pub file: PathBuf,
    /// Also say which stages a build of this branch would run, and why the others would be
    /// skipped (its `branches` filter, each stage's triggers)
    #[arg(short, long)]
    pub branch: Option<String>,
    /// Print the errors (or the parsed pipeline) as JSON
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::{Args, BuildArgs, BuildRef, Command, RerunArgs, StatusArgs, WatchArgs};
    use clap::Parser;
    use ocelot_domain::ids::BuildId;

    /// Every subcommand's flags have their own names (clap would stop `ocelot` otherwise).
    #[test]
    fn the_flags_are_consistent() {
        <Args as clap::CommandFactory>::command().debug_assert();
    }

    fn command(args: &[&str]) -> Command {
        Args::try_parse_from(std::iter::once("ocelot").chain(args.iter().copied()))
            .unwrap()
            .command
    }

    #[test]
    fn build_parameters_are_parsed_and_checked() {
        let Command::Build(BuildArgs { params, .. }) = command(&[
            "build", "--env", "A=1", "--env", "B=x=y", "--force", "--stage", "test",
        ]) else {
            panic!("a build");
        };
        assert_eq!(
            params.env,
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "x=y".to_string())
            ]
        );
        assert!(params.force);
        assert_eq!(params.stage.as_deref(), Some("test"));
        for bad in ["1A=x", "OCELOT_REPO=x", "NOVALUE"] {
            let error = Args::try_parse_from(["ocelot", "build", "--env", bad]).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{bad}");
            assert!(
                error
                    .to_string()
                    .contains(bad.split('=').next().unwrap_or(bad)),
                "{error}"
            );
        }
        let Command::Rerun(RerunArgs { params, .. }) = command(&["rerun", "7", "--env", "A=2"])
        else {
            panic!("a rerun");
        };
        assert_eq!(params.env.len(), 1);
    }

    /// The build argument of `kill`, `rerun`, `watch` and `status` as typed.
    fn build_argument(args: &[&str]) -> Option<BuildRef> {
        match command(args) {
            Command::Kill { build, .. } => build,
            Command::Rerun(RerunArgs { build, .. })
            | Command::Watch(WatchArgs { build, .. })
            | Command::Status(StatusArgs { build, .. }) => build,
            other => panic!("not a command about a build: {other:?}"),
        }
    }

    #[test]
    fn build_arguments_are_ids_latest_or_commit_prefixes() {
        for verb in ["kill", "rerun", "watch", "status"] {
            assert_eq!(
                build_argument(&[verb, "42"]),
                Some(BuildRef::Id(BuildId::from(42)))
            );
            assert_eq!(build_argument(&[verb, "latest"]), Some(BuildRef::Latest));
            assert_eq!(
                build_argument(&[verb, "3F9A1c2"]),
                Some(BuildRef::Commit("3f9a1c2".into()))
            );
            // none: `latest` for watch, kill and rerun; a list for status
            assert_eq!(build_argument(&[verb]), None);
        }
    }

    #[test]
    fn a_malformed_build_argument_is_refused_saying_why() {
        for (text, reason) in [
            (
                "abc",
                "the commit prefix `abc` is too short: give at least 4 hex digits",
            ),
            (
                "main",
                "`main` is not a build id (digits), `latest` or a commit prefix (hex digits)",
            ),
            (
                "99999999999999999999",
                "number too large to fit in target type",
            ),
        ] {
            let error = Args::try_parse_from(["ocelot", "watch", text]).unwrap_err();
            assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
            let message = error.to_string();
            assert!(
                message.contains(&format!("invalid value '{text}' for '[BUILD]': {reason}")),
                "{message}"
            );
        }
    }
}
