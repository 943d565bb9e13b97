//! The bus trusts no one it does not know: NATS admits only the services' users, each
//! allowed only its part (scripts/nats-auth.conf). A client without credentials (a build
//! container) cannot connect; a hookhandler or poller may not cancel builds, read logs or
//! take jobs; a worker may not cancel builds nor read other builds' logs; a result forged
//! on a build's log subject is dropped by the admin (it disagrees with Postgres), so a
//! watching `ocelot build` still reports the real result. Each test then checks that the
//! cluster still builds.

use crate::repo_with;
use ocelot_core::BuildState;
use ocelot_core::events::{BuildEvent, EventKind};
use ocelot_core::ids::{BuildId, Seq};
use ocelot_core::queue::{Bus, Setup};
use ocelot_tests::cluster::{Cluster, bin_dir};
use ocelot_tests::nats::{NatsServer, NatsUser};
use ocelot_tests::services::ServiceProcess;
use ocelot_tests::{free_port, wait_for_port, wait_until};
use std::time::Duration;
use tokio::sync::mpsc;

/// Registers `name`, whose stage waits until the test releases it ([`release`]), then passes
/// or fails.
async fn waiting_repo(cluster: &Cluster, name: &str, pass: bool) {
    let end = if pass { "exit 0" } else { "exit 1" };
    let yml = format!(
        "image: ocelot/busybox\nstages:\n  - name: wait\n    script:\n      - echo waiting\n      - while [ ! -e /tmp/release ]; do sleep 0.2; done\n      - echo released\n      - {end}\n"
    );
    repo_with(cluster, name, &yml, &[]).await;
}

/// Lets the waiting stage of `build_id` go on: the file it waits for, made in its container
/// (once the container runs).
async fn release(cluster: &Cluster, build_id: BuildId) {
    wait_until(
        "the file to be made in the build's container",
        Duration::from_secs(60),
        || async {
            let containers = cluster.containers_of_build(build_id).await.ok()?;
            let container = containers.first()?;
            let output = tokio::process::Command::new("docker")
                .args(["exec", container, "touch", "/tmp/release"])
                .output()
                .await
                .ok()?;
            output.status.success().then_some(())
        },
    )
    .await
    .unwrap();
}

/// The cluster still builds: a new repo's build passes.
async fn still_builds(cluster: &Cluster, name: &str) {
    repo_with(
        cluster,
        name,
        "image: ocelot/busybox\nstages:\n  - name: fine\n    script: [echo still building]\n",
        &[],
    )
    .await;
    let output = cluster.ocelot(&["build", "-r", name]).await.unwrap();
    assert_eq!(output.code, 0, "{}", output.both());
    assert!(
        output.stdout.contains("still building"),
        "{}",
        output.both()
    );
}

/// The build of `cluster`'s only repo once its stage started (its events up to then are
/// stored; the stage waits for [`release`]).
async fn running_build(cluster: &Cluster) -> BuildId {
    wait_until("the stage to start", Duration::from_secs(60), || async {
        let build = cluster.builds().await.ok()?.into_iter().next()?;
        let events = cluster
            .store
            .events(
                build.id,
                build.attempt,
                Seq::START,
                Seq::from(u64::MAX),
                100,
            )
            .await
            .ok()?;
        events
            .iter()
            .any(|event| matches!(event.kind, EventKind::StageStarted { .. }))
            .then_some(build.id)
    })
    .await
    .unwrap()
}

/// A raw NATS client as `user` (its own inbox, as the services use), and the errors the
/// server sends it.
async fn client_as(
    nats: &NatsServer,
    user: NatsUser,
) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (errors, received) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_user_and_password(
        user.name().to_string(),
        nats.password(user).unwrap(),
    )
    .custom_inbox_prefix(ocelot_core::queue::inbox_prefix(Some(user.name())))
    .event_callback(move |event| {
        let errors = errors.clone();
        async move {
            if let async_nats::Event::ServerError(error) = event {
                let _ = errors.send(error.to_string());
            }
        }
    })
    .connect(nats.url.as_str())
    .await
    .unwrap();
    (client, received)
}

/// Waits for the server's permission error about `subject`.
async fn refused(errors: &mut mpsc::UnboundedReceiver<String>, what: &str, subject: &str) {
    let wanted = format!("permissions violation for {what} to \"{subject}\"");
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(error) = errors.recv().await {
            if error.to_lowercase().contains(&wanted.to_lowercase()) {
                return Some(error);
            }
            eprintln!("(another server error: {error})");
        }
        None
    })
    .await;
    assert!(
        matches!(found, Ok(Some(_))),
        "no `{wanted}` from the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_nats_credentials_cannot_connect() {
    let cluster = Cluster::start().await.unwrap();
    // as a build container would: no user, no password
    let anonymous = async_nats::ConnectOptions::new()
        .connect(cluster.nats.url.as_str())
        .await;
    let Err(error) = anonymous else {
        panic!("a client without credentials connected");
    };
    assert_eq!(
        error.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation,
        "{error}"
    );
    // a service's user with a guessed password
    let guessed =
        async_nats::ConnectOptions::with_user_and_password("worker".into(), "guess".into())
            .connect(cluster.nats.url.as_str())
            .await;
    let Err(error) = guessed else {
        panic!("a guessed password was accepted");
    };
    assert_eq!(
        error.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation,
        "{error}"
    );
    still_builds(&cluster, "after-anonymous").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_and_workers_may_not_cancel_read_logs_or_take_jobs() {
    let cluster = Cluster::start().await.unwrap();
    waiting_repo(&cluster, "guarded", true).await;
    let build = {
        let cluster = &cluster;
        async move { cluster.ocelot(&["build", "-r", "guarded"]).await.unwrap() }
    };
    let attacks = async {
        let build_id = running_build(&cluster).await;
        let cancel = format!("ocelot.cancel.{build_id}");
        for user in [NatsUser::Hookhandler, NatsUser::Poller, NatsUser::Worker] {
            let (client, mut errors) = client_as(&cluster.nats, user).await;
            // cancel the running build
            client.publish(cancel.clone(), "".into()).await.unwrap();
            client.flush().await.unwrap();
            refused(&mut errors, "publish", &cancel).await;
            // read every build's log
            let _logs = client.subscribe("logs.>").await.unwrap();
            client.flush().await.unwrap();
            refused(&mut errors, "subscription", "logs.>").await;
            if user != NatsUser::Worker {
                // pull (drain) the workers' jobs
                let next = "$JS.API.CONSUMER.MSG.NEXT.OCELOT_JOBS.jobs-default";
                client
                    .publish_with_reply(next, client.new_inbox(), "1".into())
                    .await
                    .unwrap();
                client.flush().await.unwrap();
                refused(&mut errors, "publish", next).await;
                // or delete the job stream
                let delete = "$JS.API.STREAM.DELETE.OCELOT_JOBS";
                client
                    .publish_with_reply(delete, client.new_inbox(), "".into())
                    .await
                    .unwrap();
                client.flush().await.unwrap();
                refused(&mut errors, "publish", delete).await;
            }
            eprintln!("{}: refused", user.name());
        }
        release(&cluster, build_id).await;
        build_id
    };
    let (built, build_id) = tokio::join!(build, attacks);
    // the build was not cancelled: it ran to its end and passed
    assert_eq!(built.code, 0, "{}", built.both());
    assert!(built.stdout.contains("released"), "{}", built.both());
    let stored = cluster.store.get_build(build_id).await.unwrap();
    assert_eq!(stored.state, BuildState::Passed);
    still_builds(&cluster, "after-attacks").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_forged_on_the_bus_is_dropped_and_the_real_one_reported() {
    let cluster = Cluster::start().await.unwrap();
    waiting_repo(&cluster, "forged", false).await;
    // an admin of its own, as a process, to read what it logs
    let port = free_port().unwrap();
    let env = [
        vec![
            (
                "OCELOT_DATABASE_URL".to_string(),
                cluster.database.url.clone(),
            ),
            (
                "OCELOT_MASTER_KEY_FILE".to_string(),
                cluster
                    .dir
                    .path()
                    .join("master.key")
                    .to_string_lossy()
                    .to_string(),
            ),
            ("RUST_LOG".to_string(), "info".to_string()),
        ],
        cluster.nats.env(NatsUser::Admin),
    ]
    .concat();
    let admin = ServiceProcess::start(
        "admin",
        &bin_dir().unwrap().join("ocelot-admin"),
        &[
            "--listen".to_string(),
            format!("127.0.0.1:{port}"),
            "--cache-dir".to_string(),
            cluster
                .dir
                .path()
                .join("own-admin")
                .to_string_lossy()
                .to_string(),
        ],
        &env,
        &cluster.dir.path().join("admin.log"),
    )
    .unwrap();
    wait_for_port(port, Duration::from_secs(30)).await.unwrap();
    let watcher = tokio::process::Command::new(bin_dir().unwrap().join("ocelot"))
        .args(["build", "-r", "forged"])
        .current_dir(cluster.dir.path())
        .env("OCELOT_ADMIN", format!("http://127.0.0.1:{port}"))
        .env("OCELOT_TOKEN", &cluster.token)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let forger = async {
        let build_id = running_build(&cluster).await;
        let build = cluster.store.get_build(build_id).await.unwrap();
        // with a worker's credentials: a passed result on the build's log subject
        let bus = Bus::connect(&cluster.nats.args(NatsUser::Worker), Setup::Streams)
            .await
            .unwrap();
        let forged = BuildEvent {
            build_id,
            attempt: build.attempt,
            seq: Seq::from(1_000),
            at_ms: 0,
            kind: EventKind::Result {
                state: BuildState::Passed,
                reason: String::new(),
                duration_ms: 1,
                line_count: 1,
                log_sha256: "0".repeat(64),
            },
        };
        bus.publish_event(&forged).await.unwrap().await.unwrap();
        wait_until(
            "the admin to drop the forged result",
            Duration::from_secs(60),
            || async {
                let log = std::fs::read_to_string(&admin.log).unwrap_or_default();
                log.contains("dropped a result event from the log bus that disagrees with Postgres")
                    .then_some(())
            },
        )
        .await
        .unwrap();
        // only now may the build end (it fails)
        release(&cluster, build_id).await;
        build_id
    };
    let (watched, build_id) = tokio::join!(watcher, forger);
    let watched = watched.unwrap();
    let stdout = String::from_utf8_lossy(&watched.stdout);
    let stderr = String::from_utf8_lossy(&watched.stderr);
    let both = format!("{stdout}\n---\n{stderr}");
    assert_eq!(watched.status.code(), Some(1), "{both}");
    assert!(stderr.contains("FAILED"), "{both}");
    assert!(!stderr.contains("PASSED"), "{both}");
    assert!(stdout.contains("released"), "{both}");
    let log = std::fs::read_to_string(&admin.log).unwrap();
    assert!(
        log.contains("the build is still running in Postgres"),
        "{log}"
    );
    assert_eq!(
        cluster.store.get_build(build_id).await.unwrap().state,
        BuildState::Failed
    );
    still_builds(&cluster, "after-forgery").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_reach_a_tls_only_nats_with_its_ca_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = ocelot_tests::tls::TestCertificates::generate(dir.path()).unwrap();
    let nats = NatsServer::start_tls(&certificates).await.unwrap();
    // with the CA (and a user): the streams are set up, the registry answers
    let mut admin = nats.args(NatsUser::Admin);
    admin.nats_tls_ca = Some(certificates.ca.clone());
    let bus = Bus::connect(&admin, Setup::Streams).await.unwrap();
    assert!(bus.list_workers().await.unwrap().is_empty());
    // a hookhandler over TLS publishes jobs into the streams the admin made
    let mut hookhandler = nats.args(NatsUser::Hookhandler);
    hookhandler.nats_tls_ca = Some(certificates.ca.clone());
    let publisher = Bus::connect(&hookhandler, Setup::PublishOnly)
        .await
        .unwrap();
    publisher
        .publish_job(
            "default",
            &ocelot_core::model::Job {
                build_id: BuildId::from(1),
                trace_id: None,
            },
        )
        .await
        .unwrap();
    // without TLS: the server refuses the plain connection
    let plain = async_nats::ConnectOptions::with_user_and_password(
        "admin".into(),
        nats.password(NatsUser::Admin).unwrap(),
    )
    .connect(nats.url.as_str())
    .await;
    assert!(plain.is_err(), "a client without TLS connected");
    // TLS without the CA (the system's roots do not know it): refused
    let unknown_ca = async_nats::ConnectOptions::with_user_and_password(
        "admin".into(),
        nats.password(NatsUser::Admin).unwrap(),
    )
    .require_tls(true)
    .connect(nats.url.as_str())
    .await;
    let Err(error) = unknown_ca else {
        panic!("a server certificate of an unknown CA was trusted");
    };
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    // the first connection still works
    assert!(bus.list_workers().await.unwrap().is_empty());
}
