//! Durable webhook ingest: deliveries arriving together are recorded by group commit, and
//! none is answered 202 before its row is committed. A hookhandler (record only,
//! `--processors 0`) runs in-process against a fresh database and its own NATS; the
//! deliveries are real signed GitHub pushes over HTTP. A group whose insert fails answers
//! every delivery of it with 503 (none recorded) and the same deliveries are recorded once
//! sent again.

use ocelot_hookhandler::providers::{self, Provider};
use ocelot_tests::nats::{NatsServer, NatsUser};
use ocelot_tests::postgres::TestDatabase;
use ocelot_tests::wait_until;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "ingest-secret-0123456789abcdef";
const DELIVERIES: usize = 64;

struct Ingest {
    url: String,
    database: TestDatabase,
    body: Arc<Vec<u8>>,
    signature: Arc<(&'static str, String)>,
    _nats: NatsServer,
    _key_dir: tempfile::TempDir,
}

impl Ingest {
    async fn start() -> Ingest {
        let database = TestDatabase::create().await.unwrap();
        let nats = NatsServer::start().await.unwrap();
        let store = ocelot_core::store::Store::connect(&database.url)
            .await
            .unwrap();
        let key_dir = tempfile::tempdir().unwrap();
        let key_file = key_dir.path().join("master.key");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key_file)
                .unwrap()
                .write_all(
                    ocelot_core::secrets::cipher::MasterKey::generate_hex()
                        .unwrap()
                        .as_bytes(),
                )
                .unwrap();
        }
        let key = ocelot_core::secrets::cipher::MasterKey::from_file(&key_file).unwrap();
        let sealed = ocelot_core::secrets::webhook::seal(&key, "ingest", SECRET).unwrap();
        store
            .add_repo(
                "ingest",
                "git://127.0.0.1:1/team/ingest.git",
                "main",
                Some(&sealed),
            )
            .await
            .unwrap();
        // the streams, as an admin makes them (the hookhandler may only publish jobs)
        let _streams = ocelot_core::queue::Bus::connect(
            &nats.args(NatsUser::Admin),
            ocelot_core::queue::Setup::Streams,
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let settings = ocelot_hookhandler::Settings {
            database: ocelot_core::settings::DatabaseArgs::new(database.url.clone()),
            nats: nats.args(NatsUser::Hookhandler),
            log: ocelot_core::settings::LogArgs {
                log_format: ocelot_core::telemetry::LogFormat::Plain,
            },
            secrets: ocelot_core::settings::SecretsArgs {
                master_key_file: Some(key_file),
            },
            secret_store: Default::default(),
            consul: Default::default(),
            listen: address,
            cache_dir: None,
            max_body_bytes: 1024 * 1024,
            rate_limit: std::num::NonZeroU32::new(1_000_000).unwrap(),
            rate_burst: std::num::NonZeroU32::new(1_000_000).unwrap(),
            processors: 0,
        };
        tokio::spawn(ocelot_hookhandler::run(
            settings,
            listener,
            std::future::pending(),
        ));
        ocelot_tests::wait_for_port(address.port(), Duration::from_secs(30))
            .await
            .unwrap();
        let fixture = format!(
            "{}/../hookhandler/tests/fixtures/webhooks/github/push_branch.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut body: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
        body["repository"]["full_name"] = "team/ingest".into();
        let body = body.to_string().into_bytes();
        let signature = providers::sign(Provider::GitHub, &body, SECRET);
        Ingest {
            url: format!("http://{address}/hooks/github"),
            database,
            body: Arc::new(body),
            signature: Arc::new(signature),
            _nats: nats,
            _key_dir: key_dir,
        }
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.database.url, tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Sends the deliveries `ids` at once; each answer is passed, as it arrives, to `then`
    /// (with the delivery id and a database connection of its own).
    async fn deliver_all<F, Fut>(
        &self,
        ids: Vec<String>,
        then: F,
    ) -> Vec<tokio::task::JoinHandle<u16>>
    where
        F: Fn(String, u16, tokio_postgres::Client) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let mut tasks = Vec::new();
        for id in ids {
            let client = self.client().await;
            let (url, body, signature, then) = (
                self.url.clone(),
                self.body.clone(),
                self.signature.clone(),
                then.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let headers = [
                    ("X-GitHub-Event", "push"),
                    ("X-GitHub-Delivery", id.as_str()),
                    (signature.0, signature.1.as_str()),
                ];
                let answer = ocelot_tests::http::post(&url, &headers, &body)
                    .await
                    .unwrap();
                then(id.clone(), answer.status, client).await;
                answer.status
            }));
        }
        tasks
    }

    async fn recorded(&self, client: &tokio_postgres::Client) -> i64 {
        client
            .query_one("SELECT count(*) FROM webhook_deliveries", &[])
            .await
            .unwrap()
            .get(0)
    }
}

fn ids(prefix: &str) -> Vec<String> {
    (0..DELIVERIES).map(|n| format!("{prefix}-{n}")).collect()
}

async fn statuses(tasks: Vec<tokio::task::JoinHandle<u16>>) -> Vec<u16> {
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_answered_202_is_already_committed_and_none_is_answered_while_the_insert_waits()
{
    let ingest = Ingest::start().await;
    // the table locked against inserts: the deliveries' groups wait at their INSERT
    let locker = ingest.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE webhook_deliveries IN SHARE MODE")
        .await
        .unwrap();
    let tasks = ingest
        .deliver_all(ids("locked"), |id, status, client| async move {
            if status == 202 {
                // answered: a fresh connection sees the committed row at once
                let rows = client
                    .query(
                        "SELECT 1 FROM webhook_deliveries WHERE provider = 'github' AND delivery_id = $1",
                        &[&id],
                    )
                    .await
                    .unwrap();
                assert_eq!(rows.len(), 1, "delivery {id} answered 202 before it was committed");
            }
        })
        .await;
    let watcher = ingest.client().await;
    wait_until(
        "the deliveries' INSERT waiting for the lock",
        Duration::from_secs(30),
        || async {
            let row = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO webhook_deliveries%'",
                    &[],
                )
                .await
                .ok()?;
            (row.get::<_, i64>(0) > 0).then_some(())
        },
    )
    .await
    .unwrap();
    for task in &tasks {
        assert!(
            !task.is_finished(),
            "a delivery was answered while its insert waited"
        );
    }
    locker.batch_execute("ROLLBACK").await.unwrap();
    let statuses = statuses(tasks).await;
    assert!(statuses.iter().all(|&status| status == 202), "{statuses:?}");
    assert_eq!(ingest.recorded(&watcher).await, DELIVERIES as i64);
    let commits: i64 = watcher
        .query_one(
            "SELECT count(DISTINCT xmin::TEXT) FROM webhook_deliveries",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!("{DELIVERIES} deliveries recorded in {commits} commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_insert_answers_every_delivery_of_its_group_with_an_error_and_records_none() {
    let ingest = Ingest::start().await;
    let admin = ingest.client().await;
    // every insert fails (as a full disk or a broken constraint would)
    admin
        .batch_execute(
            "CREATE FUNCTION refuse_deliveries() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON webhook_deliveries
                 FOR EACH ROW EXECUTE FUNCTION refuse_deliveries();",
        )
        .await
        .unwrap();
    let failed = statuses(ingest.deliver_all(ids("refused"), |_, _, _| async {}).await).await;
    assert!(
        failed.iter().all(|&status| status == 503),
        "every delivery of a failed group is answered 503: {failed:?}"
    );
    assert_eq!(ingest.recorded(&admin).await, 0);
    // the sender delivers them again once the database takes them
    admin
        .batch_execute("DROP TRIGGER refuse ON webhook_deliveries")
        .await
        .unwrap();
    let again = statuses(ingest.deliver_all(ids("refused"), |_, _, _| async {}).await).await;
    assert!(again.iter().all(|&status| status == 202), "{again:?}");
    assert_eq!(ingest.recorded(&admin).await, DELIVERIES as i64);
}
