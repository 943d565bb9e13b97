//! Services colour their log lines only on a terminal, and never with `NO_COLOR` set: a log
//! file, a pipe or journald gets plain text. The admin is started against a Postgres that
//! is not there, so that it logs an error at once and exits; a terminal is given to it by
//! `script` (util-linux), a pseudo-terminal.

use ocelot_tests::cluster::bin_dir;
use std::process::{Command, Stdio};

/// What `ocelot-admin` writes when it cannot reach Postgres: on a terminal (through
/// `script`) or into a pipe, with or without `NO_COLOR`.
fn admin_log(on_a_terminal: bool, no_color: bool) -> String {
    let admin = bin_dir().unwrap().join("ocelot-admin");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "postgres://ocelot@127.0.0.1:1/none",
    ];
    let mut command = if on_a_terminal {
        let line = format!("'{}' {}", admin.display(), args.join(" "));
        let mut script = Command::new("script");
        script.args(["-q", "-e", "-c", &line, "/dev/null"]);
        script
    } else {
        let mut direct = Command::new(admin);
        direct.args(args);
        direct
    };
    command
        .env_remove("NO_COLOR")
        .env_remove("OCELOT_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    if no_color {
        command.env("NO_COLOR", "1");
    }
    let output = command.output().unwrap();
    assert!(
        !output.status.success(),
        "the admin started without Postgres"
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("ERROR") && text.contains("connecting to Postgres"),
        "{text:?}"
    );
    text
}

#[test]
fn service_logs_are_coloured_only_on_a_terminal_without_no_color() {
    assert!(
        !admin_log(false, false).contains('\x1b'),
        "colour codes in a pipe"
    );
    assert!(
        admin_log(true, false).contains("\x1b[31mERROR"),
        "no colour on a terminal"
    );
    assert!(
        !admin_log(true, true).contains('\x1b'),
        "colour codes despite NO_COLOR"
    );
}
