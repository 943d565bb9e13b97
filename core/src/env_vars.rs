//! Every environment variable Ocelot reads, defined once.

/// Postgres connection URL of the store (`postgres://user@host:port/db`).
pub const OCELOT_DATABASE_URL: &str = "OCELOT_DATABASE_URL";
/// NATS server URL (`nats://127.0.0.1:4222`).
pub const OCELOT_NATS_URL: &str = "OCELOT_NATS_URL";
/// Address the admin gRPC server listens on.
pub const OCELOT_ADMIN_LISTEN: &str = "OCELOT_ADMIN_LISTEN";
/// Admin address the CLI talks to (`http://127.0.0.1:50051`).
pub const OCELOT_ADMIN: &str = "OCELOT_ADMIN";
/// Admin: PEM certificate chain to serve the API over TLS (with `OCELOT_TLS_KEY`).
pub const OCELOT_TLS_CERT: &str = "OCELOT_TLS_CERT";
/// Admin: PEM private key of `OCELOT_TLS_CERT`.
pub const OCELOT_TLS_KEY: &str = "OCELOT_TLS_KEY";
/// CLI: PEM CA certificate that signed the admin's certificate (for `https://` admins).
pub const OCELOT_TLS_CA: &str = "OCELOT_TLS_CA";
/// Address the hookhandler's HTTP server listens on.
pub const OCELOT_HOOKS_LISTEN: &str = "OCELOT_HOOKS_LISTEN";
/// The hookhandler's public base URL, printed by `ocelot repos add` for webhook settings.
pub const OCELOT_HOOKS_URL: &str = "OCELOT_HOOKS_URL";
/// File holding the master key that seals credentials (64 hex characters, mode 0600).
pub const OCELOT_MASTER_KEY_FILE: &str = "OCELOT_MASTER_KEY_FILE";
/// The master key itself (64 hex characters), when no file is given.
pub const OCELOT_MASTER_KEY: &str = "OCELOT_MASTER_KEY";
/// The CLI's API token (else read from `~/.config/ocelot/token`).
pub const OCELOT_TOKEN: &str = "OCELOT_TOKEN";
/// Directory for git mirror caches and build workspaces.
pub const OCELOT_CACHE_DIR: &str = "OCELOT_CACHE_DIR";
/// Worker: number of builds run at once.
pub const OCELOT_WORKER_CONCURRENCY: &str = "OCELOT_WORKER_CONCURRENCY";
/// Worker: comma-separated routing tags it consumes.
pub const OCELOT_WORKER_TAGS: &str = "OCELOT_WORKER_TAGS";
/// Worker: `docker` or `host`.
pub const OCELOT_WORKER_EXECUTOR: &str = "OCELOT_WORKER_EXECUTOR";
/// Worker: its id (default: hostname and a random suffix).
pub const OCELOT_WORKER_ID: &str = "OCELOT_WORKER_ID";
/// Log format of services: `plain` or `json`.
pub const OCELOT_LOG_FORMAT: &str = "OCELOT_LOG_FORMAT";
/// Disables colours in the CLI when set (https://no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";
