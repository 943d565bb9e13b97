//! A fresh database per test on the Postgres server that `scripts/test.sh` started
//! (`OCELOT_TEST_DATABASE_URL`, else `OCELOT_DATABASE_URL` from the state directory's `env`).

use anyhow::Context;

#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
}

fn server_url() -> anyhow::Result<String> {
    if let Ok(url) = std::env::var("OCELOT_TEST_DATABASE_URL") {
        return Ok(url);
    }
    let env_file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.state/env");
    if let Ok(text) = std::fs::read_to_string(&env_file) {
        for line in text.lines() {
            if let Some(url) = line.strip_prefix("export OCELOT_DATABASE_URL=") {
                return Ok(url.trim().to_string());
            }
        }
    }
    anyhow::bail!(
        "no Postgres for the tests: run scripts/test.sh (it starts one), or set OCELOT_TEST_DATABASE_URL \
         to a server where this user may create databases"
    )
}

fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, _) = url
        .rsplit_once('/')
        .with_context(|| format!("database URL without a path: {url}"))?;
    Ok(format!("{base}/{database}"))
}

impl TestDatabase {
    pub async fn create() -> anyhow::Result<TestDatabase> {
        let server = server_url()?;
        let maintenance = with_database(&server, "postgres")?;
        let (client, connection) = tokio_postgres::connect(&maintenance, tokio_postgres::NoTls)
            .await
            .with_context(|| {
                format!(
                    "connecting to {maintenance} (is Postgres running? scripts/setup.sh starts it)"
                )
            })?;
        tokio::spawn(connection);
        let name = format!("ocelot_test_{}", uuid::Uuid::new_v4().simple());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(TestDatabase {
            url: with_database(&server, &name)?,
        })
    }

    /// A new database with the schema as the migrations before `version` left it (recorded
    /// as applied, so the store migrates from there), and a client to fill it in the shape
    /// of that release.
    pub async fn at_migration(
        version: i32,
    ) -> anyhow::Result<(TestDatabase, tokio_postgres::Client)> {
        let database = TestDatabase::create().await?;
        let (client, connection) =
            tokio_postgres::connect(&database.url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client
            .batch_execute(
                "CREATE TABLE schema_migrations (version INT PRIMARY KEY, name TEXT NOT NULL,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .await?;
        for (applied, sql) in ocelot_core::store::migrations_before(version) {
            client.batch_execute(sql).await?;
            client
                .execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, 'old')",
                    &[&applied],
                )
                .await?;
        }
        Ok((database, client))
    }
}
