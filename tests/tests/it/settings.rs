//! Every flag of the four services can be set from the environment (a container is often
//! configured by its environment only), and so can the CLI's global options: each clap
//! command is walked, with its subcommands, and every argument without a variable is named.

use clap::CommandFactory;
use std::collections::BTreeMap;

/// Arguments of the admin's one-shot subcommands, command-line only on purpose (README,
/// "Configuration"): (command path, argument id).
const COMMAND_LINE_ONLY: &[(&str, &str)] = &[
    ("ocelot-admin token create", "name"),
    ("ocelot-admin token create", "scope"),
    ("ocelot-admin token create", "repos"),
    ("ocelot-admin token revoke", "name"),
    ("ocelot-admin rotate-key", "new_key_file"),
];

fn services() -> Vec<clap::Command> {
    vec![
        ocelot_admin::Settings::command(),
        ocelot_worker::Settings::command(),
        ocelot_hookhandler::Settings::command(),
        ocelot_poller::Settings::command(),
    ]
}

/// How an argument is written on the command line: `--flag`, or `NAME` for a positional one.
fn spelling(arg: &clap::Arg) -> String {
    match arg.get_long() {
        Some(long) => format!("--{long}"),
        None => arg.get_id().as_str().to_uppercase(),
    }
}

/// What one walk found.
#[derive(Default)]
struct Walk {
    /// `command path --flag` of each argument without a variable.
    missing: Vec<String>,
    /// The exemptions of [`COMMAND_LINE_ONLY`] met.
    exempted: Vec<(String, String)>,
    /// variable → the `command path --flag`s that read it.
    variables: BTreeMap<String, Vec<String>>,
}

/// Walks `command` (at `path`) and, when `recurse`, its subcommands.
fn walk(command: &clap::Command, path: &str, recurse: bool, found: &mut Walk) {
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") {
            continue;
        }
        let flag = format!("{path} {}", spelling(arg));
        match arg.get_env() {
            Some(variable) => found
                .variables
                .entry(variable.to_string_lossy().into_owned())
                .or_default()
                .push(flag),
            None if COMMAND_LINE_ONLY.contains(&(path, id)) => {
                found.exempted.push((path.to_string(), id.to_string()));
            }
            None => found.missing.push(flag),
        }
    }
    if recurse {
        for subcommand in command.get_subcommands() {
            let path = format!("{path} {}", subcommand.get_name());
            walk(subcommand, &path, recurse, found);
        }
    }
}

#[test]
fn every_service_flag_and_cli_global_option_has_an_environment_variable() {
    let mut found = Walk::default();
    for command in services() {
        let name = command.get_name().to_string();
        walk(&command, &name, true, &mut found);
    }
    // the CLI: its global options only; a single command's flags are per invocation
    let cli = ocelot_cli::args::Args::command();
    walk(&cli, cli.get_name(), false, &mut found);
    assert!(
        found.missing.is_empty(),
        "arguments without an environment variable (add one in domain/src/env_vars.rs and \
         the README's configuration table):\n  {}",
        found.missing.join("\n  ")
    );
    // no stale exemption
    for (path, id) in COMMAND_LINE_ONLY {
        assert!(
            found.exempted.iter().any(|(p, i)| p == path && i == id),
            "`{path}` has no argument `{id}` without a variable: drop it from COMMAND_LINE_ONLY"
        );
    }
}

/// One variable means one thing: where several services (or the CLI) read it, it sets the
/// same flag, and no command reads it twice. (A flag two services spell alike but mean
/// differently, like `--concurrency`, needs a variable per service.)
#[test]
fn a_variable_sets_the_same_flag_everywhere_it_is_read() {
    let mut variables: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut commands = services();
    commands.push(ocelot_cli::args::Args::command());
    for command in &commands {
        let mut found = Walk::default();
        walk(command, command.get_name(), true, &mut found);
        for (variable, flags) in found.variables {
            assert!(
                flags.len() == 1,
                "{variable} sets several arguments of {}: {flags:?}",
                command.get_name()
            );
            for flag in flags {
                let (path, spelled) = flag.rsplit_once(' ').unwrap_or(("", &flag));
                variables
                    .entry(variable.clone())
                    .or_default()
                    .push((path.to_string(), spelled.to_string()));
            }
        }
    }
    for (variable, readers) in &variables {
        assert!(
            readers.iter().all(|(_, flag)| *flag == readers[0].1),
            "{variable} sets different flags: {readers:?}"
        );
    }
    // the poller's and the worker's `--concurrency` are told apart
    assert!(variables.contains_key(ocelot_core::env_vars::OCELOT_POLLER_CONCURRENCY));
    assert!(variables.contains_key(ocelot_core::env_vars::OCELOT_WORKER_CONCURRENCY));
}
