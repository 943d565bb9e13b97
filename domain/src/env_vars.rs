//! Every environment variable Ocelot reads, defined once.

/// Postgres connection URL of the store (`postgres://user@host:port/db`).
pub const OCELOT_DATABASE_URL: &str = "OCELOT_DATABASE_URL";
/// NATS server URL (`nats://127.0.0.1:4222`); a cluster's servers comma-separated.
pub const OCELOT_NATS_URL: &str = "OCELOT_NATS_URL";
/// NATS user name of this service (one user per service kind: admin, worker, hookhandler, poller).
pub const OCELOT_NATS_USER: &str = "OCELOT_NATS_USER";
/// File holding the NATS password of `OCELOT_NATS_USER` (mode 0600).
pub const OCELOT_NATS_PASSWORD_FILE: &str = "OCELOT_NATS_PASSWORD_FILE";
/// The NATS password of `OCELOT_NATS_USER` itself, when no file is given.
pub const OCELOT_NATS_PASSWORD: &str = "OCELOT_NATS_PASSWORD";
/// PEM CA certificate that signed the NATS server's certificate: connect over TLS.
pub const OCELOT_NATS_TLS_CA: &str = "OCELOT_NATS_TLS_CA";
/// PEM client certificate for NATS TLS (with `OCELOT_NATS_TLS_KEY`), when the server verifies clients.
pub const OCELOT_NATS_TLS_CERT: &str = "OCELOT_NATS_TLS_CERT";
/// PEM private key of `OCELOT_NATS_TLS_CERT`.
pub const OCELOT_NATS_TLS_KEY: &str = "OCELOT_NATS_TLS_KEY";
/// Replicas of the JetStream streams and the worker registry (1 for one server, 3 for a 3-node cluster).
pub const OCELOT_NATS_REPLICAS: &str = "OCELOT_NATS_REPLICAS";
/// PEM CA certificate(s) the Postgres server's certificate must chain to (`sslmode=verify-ca`/`verify-full`).
pub const OCELOT_DATABASE_CA_FILE: &str = "OCELOT_DATABASE_CA_FILE";
/// Most Postgres connections one service process opens (its pool's size).
pub const OCELOT_DATABASE_POOL_SIZE: &str = "OCELOT_DATABASE_POOL_SIZE";
/// Address the admin gRPC server listens on.
pub const OCELOT_ADMIN_LISTEN: &str = "OCELOT_ADMIN_LISTEN";
/// Address the admin's HTTP server (web dashboard, `/metrics`, `/healthz`) listens on.
pub const OCELOT_ADMIN_HTTP_LISTEN: &str = "OCELOT_ADMIN_HTTP_LISTEN";
/// Admin: the public URL of its web dashboard, which `ocelot version` shows (`https://ci.example`).
pub const OCELOT_DASHBOARD_URL: &str = "OCELOT_DASHBOARD_URL";
/// Admin address the CLI talks to (`http://127.0.0.1:50051`).
pub const OCELOT_ADMIN: &str = "OCELOT_ADMIN";
/// Admin: PEM certificate chain to serve the API over TLS (with `OCELOT_TLS_KEY`).
pub const OCELOT_TLS_CERT: &str = "OCELOT_TLS_CERT";
/// Admin: PEM private key of `OCELOT_TLS_CERT`.
pub const OCELOT_TLS_KEY: &str = "OCELOT_TLS_KEY";
/// CLI: PEM CA certificate that signed the admin's certificate (for `https://` admins).
pub const OCELOT_TLS_CA: &str = "OCELOT_TLS_CA";
/// CLI: `1` to send the API token over plain `http://` to an admin that is not on loopback.
pub const OCELOT_ALLOW_INSECURE: &str = "OCELOT_ALLOW_INSECURE";
/// Address the hookhandler's HTTP server listens on.
pub const OCELOT_HOOKS_LISTEN: &str = "OCELOT_HOOKS_LISTEN";
/// The hookhandler's public base URL, printed by `ocelot repos add` for webhook settings.
pub const OCELOT_HOOKS_URL: &str = "OCELOT_HOOKS_URL";
/// Address of a worker's or poller's `/healthz` and `/readyz`.
pub const OCELOT_HEALTH_LISTEN: &str = "OCELOT_HEALTH_LISTEN";
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
/// Worker (`--executor host`): the uids its host builds run as, `FIRST-LAST`, one per
/// running build, used by no one else on the host (`200000-200999`).
pub const OCELOT_HOST_BUILD_UIDS: &str = "OCELOT_HOST_BUILD_UIDS";
/// Worker: its id (default: hostname and a random suffix).
pub const OCELOT_WORKER_ID: &str = "OCELOT_WORKER_ID";
/// Worker: attempts a build gets before it ends errored.
pub const OCELOT_MAX_ATTEMPTS: &str = "OCELOT_MAX_ATTEMPTS";
/// Worker: how long an image pull may take (`10m`).
pub const OCELOT_PULL_TIMEOUT: &str = "OCELOT_PULL_TIMEOUT";
/// Worker: how long running builds may take to finish after a shutdown signal (`30s`).
pub const OCELOT_SHUTDOWN_GRACE: &str = "OCELOT_SHUTDOWN_GRACE";
/// Worker: how long a job stays with a silent worker before it is delivered again (`60s`);
/// keep it equal on all workers.
pub const OCELOT_JOB_ACK_WAIT: &str = "OCELOT_JOB_ACK_WAIT";
/// Worker: the output a build keeps, in MiB.
pub const OCELOT_MAX_LOG_MIB: &str = "OCELOT_MAX_LOG_MIB";
/// Worker: the output lines a build keeps.
pub const OCELOT_MAX_LOG_LINES: &str = "OCELOT_MAX_LOG_LINES";
/// Admin: how long the log of a finished build is kept (`90d`; `0` or `forever`: always).
pub const OCELOT_KEEP_LOGS: &str = "OCELOT_KEEP_LOGS";
/// Admin: the build page linked from notifications, `{id}`, `{repo}`, `{number}` filled in.
pub const OCELOT_BUILD_URL: &str = "OCELOT_BUILD_URL";
/// Admin: how many times a notification is tried before it is given up (`12`).
pub const OCELOT_NOTIFY_MAX_ATTEMPTS: &str = "OCELOT_NOTIFY_MAX_ATTEMPTS";
/// Admin: the first retry delay of a notification (`2s`), tripled per try up to an hour.
pub const OCELOT_NOTIFY_RETRY_BASE: &str = "OCELOT_NOTIFY_RETRY_BASE";
pub const OCELOT_STORE_OUTAGE_BUDGET: &str = "OCELOT_STORE_OUTAGE_BUDGET";
/// Worker: free disk (MiB) under the cache directory below which it takes no new jobs.
pub const OCELOT_MIN_FREE_DISK_MIB: &str = "OCELOT_MIN_FREE_DISK_MIB";
/// Worker: how often it checks its disk and dependencies (`5s`).
pub const OCELOT_CHECK_EVERY: &str = "OCELOT_CHECK_EVERY";
/// Worker: how often containers and workspaces no attempt owns are removed (`1m`).
pub const OCELOT_SWEEP_EVERY: &str = "OCELOT_SWEEP_EVERY";
/// Worker: memory limit of a build container (`2g`); `ocelot.yml` may lower it.
pub const OCELOT_BUILD_MEMORY: &str = "OCELOT_BUILD_MEMORY";
/// Worker: CPU limit of a build container (`1.5`); `ocelot.yml` may lower it.
pub const OCELOT_BUILD_CPUS: &str = "OCELOT_BUILD_CPUS";
/// Worker: process limit of a build container (`512`); `ocelot.yml` may lower it.
pub const OCELOT_BUILD_PIDS: &str = "OCELOT_BUILD_PIDS";
/// Worker: whether builds may reach the worker host's own addresses:
/// `deny` (default), `allow` or `external`.
pub const OCELOT_BUILD_HOST_ACCESS: &str = "OCELOT_BUILD_HOST_ACCESS";
/// Worker: `if-not-present` (default) or `always` pull build images.
pub const OCELOT_PULL: &str = "OCELOT_PULL";
/// Worker: how many images it keeps a warm (started, unused) build container for; `0` turns
/// warm starts off.
pub const OCELOT_WARM_IMAGES: &str = "OCELOT_WARM_IMAGES";
/// Worker: how long an unused warm container is kept (`10m`).
pub const OCELOT_WARM_IDLE: &str = "OCELOT_WARM_IDLE";
/// Hookhandler: largest accepted request body in bytes.
pub const OCELOT_MAX_BODY_BYTES: &str = "OCELOT_MAX_BODY_BYTES";
/// Hookhandler: requests per second allowed from one source address.
pub const OCELOT_RATE_LIMIT: &str = "OCELOT_RATE_LIMIT";
/// Hookhandler: requests one source address may send in a burst.
pub const OCELOT_RATE_BURST: &str = "OCELOT_RATE_BURST";
/// Hookhandler: deliveries turned into builds at once (0: only record them).
pub const OCELOT_PROCESSORS: &str = "OCELOT_PROCESSORS";
/// Poller: `git ls-remote`s at once (not `OCELOT_WORKER_CONCURRENCY`, the worker's builds).
pub const OCELOT_POLLER_CONCURRENCY: &str = "OCELOT_POLLER_CONCURRENCY";
/// Poller: how often it looks for due polls (`1s`).
pub const OCELOT_POLL_TICK: &str = "OCELOT_POLL_TICK";
/// Log format of services: `plain` or `json`.
pub const OCELOT_LOG_FORMAT: &str = "OCELOT_LOG_FORMAT";
/// Disables colours in the CLI when set (https://no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";
/// Which credential store services use: `postgres` (default) or `vault`.
pub const OCELOT_SECRET_STORE: &str = "OCELOT_SECRET_STORE";
/// Vault's address (`https://vault.example:8200`), as the Vault CLI reads it.
pub const VAULT_ADDR: &str = "VAULT_ADDR";
/// A Vault token, as the Vault CLI reads it (used when no AppRole is configured).
pub const VAULT_TOKEN: &str = "VAULT_TOKEN";
/// The AppRole role id Ocelot logs in to Vault with.
pub const OCELOT_VAULT_ROLE_ID: &str = "OCELOT_VAULT_ROLE_ID";
/// The AppRole secret id (prefer the `_FILE` variant).
pub const OCELOT_VAULT_SECRET_ID: &str = "OCELOT_VAULT_SECRET_ID";
/// File holding the AppRole secret id.
pub const OCELOT_VAULT_SECRET_ID_FILE: &str = "OCELOT_VAULT_SECRET_ID_FILE";
/// Mount path of the AppRole auth method (default `approle`).
pub const OCELOT_VAULT_APPROLE_MOUNT: &str = "OCELOT_VAULT_APPROLE_MOUNT";
/// Mount path of the KV v2 secrets engine holding credentials (default `secret`).
pub const OCELOT_VAULT_MOUNT: &str = "OCELOT_VAULT_MOUNT";
/// Path under the mount where Ocelot keeps its credentials (default `ocelot`).
pub const OCELOT_VAULT_PREFIX: &str = "OCELOT_VAULT_PREFIX";
/// Consul agent's HTTP address (`http://127.0.0.1:8500`), as the Consul CLI reads it; when set,
/// services register themselves there.
pub const CONSUL_HTTP_ADDR: &str = "CONSUL_HTTP_ADDR";
/// Consul ACL token, as the Consul CLI reads it.
pub const CONSUL_HTTP_TOKEN: &str = "CONSUL_HTTP_TOKEN";
/// File holding the Consul ACL token, as the Consul CLI reads it.
pub const CONSUL_HTTP_TOKEN_FILE: &str = "CONSUL_HTTP_TOKEN_FILE";
