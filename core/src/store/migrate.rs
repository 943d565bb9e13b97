//! Embedded migrations, applied in order under a Postgres advisory lock so that several
//! services starting at once never apply one twice.

use super::{Store, StoreError};

/// (version, name, SQL) in the order they apply.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("migrations/V1__init.sql")),
    (
        2,
        "webhooks_and_polls",
        include_str!("migrations/V2__webhooks_and_polls.sql"),
    ),
    (
        3,
        "credentials",
        include_str!("migrations/V3__credentials.sql"),
    ),
    (
        4,
        "api_tokens",
        include_str!("migrations/V4__api_tokens.sql"),
    ),
    (
        5,
        "credential_kinds_and_forks",
        include_str!("migrations/V5__credential_kinds_and_forks.sql"),
    ),
    (6, "cancel", include_str!("migrations/V6__cancel.sql")),
    (7, "instance", include_str!("migrations/V7__instance.sql")),
    (8, "hand_back", include_str!("migrations/V8__hand_back.sql")),
    (
        9,
        "build_events",
        include_str!("migrations/V9__build_events.sql"),
    ),
    (
        13,
        "log_retention",
        include_str!("migrations/V13__log_retention.sql"),
    ),
    (
        10,
        "repo_allow_host",
        include_str!("migrations/V10__repo_allow_host.sql"),
    ),
    (
        11,
        "sealed_webhook_secrets",
        include_str!("migrations/V11__sealed_webhook_secrets.sql"),
    ),
    (
        12,
        "token_repo_scopes",
        include_str!("migrations/V12__token_repo_scopes.sql"),
    ),
    (
        14,
        "artifacts",
        include_str!("migrations/V14__artifacts.sql"),
    ),
    (15, "caches", include_str!("migrations/V15__caches.sql")),
    (
        16,
        "build_params",
        include_str!("migrations/V16__build_params.sql"),
    ),
    (
        17,
        "stage_needs",
        include_str!("migrations/V17__stage_needs.sql"),
    ),
    (18, "outbox", include_str!("migrations/V18__outbox.sql")),
    (
        19,
        "repo_forge",
        include_str!("migrations/V19__repo_forge.sql"),
    ),
    (
        20,
        "build_trace_id",
        include_str!("migrations/V20__build_trace_id.sql"),
    ),
];

/// The migrations older than `version`, `(version, SQL)` in order: what a database of an
/// earlier release holds, for tests of a later migration against old data.
pub fn migrations_before(version: i32) -> impl Iterator<Item = (i32, &'static str)> {
    MIGRATIONS
        .iter()
        .filter(move |(v, _, _)| *v < version)
        .map(|(v, _, sql)| (*v, *sql))
}

/// Arbitrary constant key of the advisory lock ("ocelot" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6f63_656c_6f74;

impl Store {
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await?;
        let result = apply_pending(&mut client).await;
        // unlock whatever happened; the session ending would also release it
        let unlock = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
            .await;
        result?;
        unlock?;
        Ok(())
    }
}

async fn apply_pending(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let applied: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tracing::info!(version, name, "applying migration");
        let transaction = client.transaction().await?;
        transaction.batch_execute(sql).await?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await?;
        transaction.commit().await?;
    }
    Ok(())
}
