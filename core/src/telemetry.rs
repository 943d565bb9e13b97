//! One tracing set-up for every binary: logs to stderr, level from `RUST_LOG` (default info,
//! without the Vault client libraries' own logs).

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
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
