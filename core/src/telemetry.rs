//! One tracing set-up for every binary: logs to stderr, level from `RUST_LOG` (default info,
//! without the Vault client libraries' own logs). Plain logs are coloured only when stderr
//! is a terminal and `NO_COLOR` is not set: a file, a pipe or journald gets no escape codes.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(format: LogFormat) {
    // vaultrs and its HTTP layer (rustify) log every non-2xx answer at ERROR, including the
    // 404s that mean "no such credential yet"; the Vault store reports real failures itself
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,vaultrs=off,rustify=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours(
            std::io::stderr().is_terminal(),
            std::env::var_os(crate::env_vars::NO_COLOR).as_deref(),
        ))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Whether log lines carry colour codes: on a terminal, unless `NO_COLOR` is set to
/// anything but the empty string (https://no-color.org).
fn colours(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colours;
    use std::ffi::OsStr;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours(true, None));
        assert!(colours(true, Some(OsStr::new(""))));
        assert!(!colours(true, Some(OsStr::new("1"))));
        assert!(!colours(false, None));
        assert!(!colours(false, Some(OsStr::new(""))));
    }
}
