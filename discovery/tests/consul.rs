//! Consul registration and discovery against HTTP exchanges recorded from Consul's API
//! documentation (`tests/exchanges/consul/`), replayed by a loopback server that fails the
//! test when a request differs from the recording. No Consul agent runs here.

use ocelot_discovery::consul::{
    ConsulArgs, ConsulClient, ConsulError, ServiceAddress, ServiceDefinition, ServiceRegistration,
    consul_service_name,
};
use ocelot_http_replay::{Replay, recording};
use std::time::Duration;

const TOKEN: &str = "6a1253d2-1785-24fd-91c2-f8e78c745511";

fn admin_definition() -> ServiceDefinition {
    let mut definition = ServiceDefinition::new("ocelot-admin", "ocelot-admin-ci-1-50051");
    definition.address = Some("10.1.10.12".into());
    definition.port = 50051;
    definition.tags = vec!["ocelot".into(), "v1".into()];
    definition.ttl = Duration::from_millis(300);
    definition.deregister_after = Duration::from_secs(90);
    definition
}

/// Waits until the replay has served `count` requests matching `needle`.
async fn wait_for(replay: &Replay, needle: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = replay
            .served()
            .iter()
            .filter(|line| line.contains(needle))
            .count();
        if seen >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {seen} of {count} `{needle}` requests after 10 s: {:?}",
            replay.served()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn registers_passes_its_ttl_check_periodically_and_deregisters() {
    let replay = Replay::start(recording!("consul", "register_pass_deregister")).await;
    let client = ConsulClient::new(&replay.url(), Some(TOKEN.into())).unwrap();
    let registration = ServiceRegistration::register(client, admin_definition())
        .await
        .unwrap();
    assert_eq!(
        replay.served().first().map(String::as_str),
        Some("PUT /v1/agent/service/register?replace-existing-checks=true"),
        "registering comes before any heartbeat"
    );
    // the heartbeat runs on its own, every third of the 300 ms TTL
    wait_for(&replay, "/v1/agent/check/pass/", 3).await;
    registration.deregister().await.unwrap();
    let served = replay.served();
    assert_eq!(
        served.last().map(String::as_str),
        Some("PUT /v1/agent/service/deregister/ocelot-admin-ci-1-50051")
    );
    // no heartbeat after deregistering
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(replay.served(), served);
    replay.finish();
}

#[tokio::test]
async fn registers_again_when_the_agent_forgot_the_check() {
    let replay = Replay::start(recording!("consul", "reregister_after_agent_restart")).await;
    let client = ConsulClient::new(&replay.url(), None).unwrap();
    let mut definition = ServiceDefinition::new("ocelot-worker", "ocelot-worker-ci-1");
    definition.ttl = Duration::from_millis(300);
    let registration = ServiceRegistration::register(client, definition)
        .await
        .unwrap();
    wait_for(&replay, "/v1/agent/service/register", 2).await;
    wait_for(&replay, "/v1/agent/check/pass/", 2).await;
    registration.deregister().await.unwrap();
    replay.finish();
}

#[tokio::test]
async fn a_refused_registration_says_why_without_the_token() {
    let replay = Replay::start(recording!("consul", "register_denied")).await;
    let client = ConsulClient::new(&replay.url(), Some(TOKEN.into())).unwrap();
    let error = ServiceRegistration::register(client, admin_definition())
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(403));
    let message = error.to_string();
    assert!(
        message.contains("PUT /v1/agent/service/register")
            && message.contains("403")
            && message.contains("lacks permission 'service:write'"),
        "{message}"
    );
    assert!(!message.contains(TOKEN), "{message}");
    assert!(!format!("{error:?}").contains(TOKEN));
    replay.finish();
}

#[tokio::test]
async fn resolves_a_healthy_instance_from_the_health_endpoint() {
    let replay = Replay::start(recording!("consul", "health_service")).await;
    let client = ConsulClient::new(&replay.url(), Some(TOKEN.into())).unwrap();
    let address = client.resolve("ocelot-admin").await.unwrap();
    assert_eq!(
        address,
        ServiceAddress {
            host: "10.1.10.12".into(),
            port: 8000
        }
    );
    assert_eq!(address.url("http"), "http://10.1.10.12:8000");
    replay.finish();
}

#[tokio::test]
async fn an_instance_without_an_address_resolves_to_its_node() {
    let replay = Replay::start(recording!("consul", "health_service_node_address")).await;
    // what the CLI does with `--admin consul://ocelot-admin` and CONSUL_HTTP_ADDR
    let args = ConsulArgs {
        consul_addr: Some(replay.url()),
        consul_token_file: None,
    };
    let name = consul_service_name("consul://ocelot-admin").unwrap();
    let address = args
        .client_or_default()
        .unwrap()
        .resolve(name)
        .await
        .unwrap();
    assert_eq!(address.to_string(), "10.1.10.12:50051");
    replay.finish();
}

#[tokio::test]
async fn no_healthy_instance_is_a_clear_error() {
    let replay = Replay::start(recording!("consul", "health_service_none")).await;
    let client = ConsulClient::new(&replay.url(), None).unwrap();
    let error = client.resolve("ocelot-admin").await.unwrap_err();
    assert!(
        matches!(&error, ConsulError::NoHealthyInstance(name) if name == "ocelot-admin"),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "Consul knows no healthy instance of service `ocelot-admin`"
    );
    replay.finish();
}

#[tokio::test]
async fn an_unreachable_agent_is_named() {
    // a port nothing listens on: bind one, then free it
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = ConsulClient::new(&format!("http://{address}"), Some(TOKEN.into())).unwrap();
    let error = client.resolve("ocelot-admin").await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot reach Consul at http://{address}")),
        "{message}"
    );
    assert!(!message.contains(TOKEN));
}

#[tokio::test]
async fn names_that_do_not_fit_a_url_path_are_refused_before_any_request() {
    let replay = Replay::start(Vec::new()).await;
    let client = ConsulClient::new(&replay.url(), None).unwrap();
    assert!(matches!(
        client.resolve("../v1/kv/x").await,
        Err(ConsulError::Name(_))
    ));
    let bad_id = ServiceDefinition::new("ocelot-admin", "a/b");
    assert!(matches!(
        ServiceRegistration::register(client, bad_id).await,
        Err(ConsulError::Name(_))
    ));
    assert!(replay.served().is_empty());
    replay.finish();
}

#[test]
fn registration_is_off_without_an_address() {
    assert!(ConsulArgs::default().client().unwrap().is_none());
}

/// The replay is strict: a payload that differs from the recording (here the TTL) fails.
#[tokio::test]
#[should_panic(expected = "body: expected")]
async fn the_replay_fails_a_request_that_differs_from_the_recording() {
    let replay = Replay::start(recording!("consul", "register_pass_deregister")).await;
    let client = ConsulClient::new(&replay.url(), Some(TOKEN.into())).unwrap();
    let mut definition = admin_definition();
    definition.ttl = Duration::from_secs(30);
    let refused = ServiceRegistration::register(client, definition).await;
    assert_eq!(refused.map(|_| ()).unwrap_err().status(), Some(599));
    replay.finish();
}
