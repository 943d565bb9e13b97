//! Readiness while a dependency is down: the admin's gRPC health service says NOT_SERVING
//! and the hookhandler's `/readyz` answers 503 naming NATS while NATS is away; both are
//! ready again by themselves once it is back. `/healthz` (liveness) stays 200 throughout.

use ocelot_tests::cluster::{Cluster, ClusterSpec, HookSpec};
use ocelot_tests::wait_until;
use std::time::Duration;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn admin_status(cluster: &Cluster) -> Option<ServingStatus> {
    let channel = cluster.channel().await.ok()?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    Some(answer.into_inner().status())
}

async fn readyz(cluster: &Cluster) -> Option<(u16, String)> {
    let url = format!("{}/readyz", cluster.hooks_url.as_deref()?);
    let answer = ocelot_tests::http::get(&url).await.ok()?;
    Some((answer.status, answer.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_report_not_ready_while_nats_is_down_and_recover() {
    let mut cluster = Cluster::start_spec(ClusterSpec {
        hookhandler: Some(HookSpec::default()),
        ..ClusterSpec::default()
    })
    .await
    .unwrap();
    assert_eq!(admin_status(&cluster).await, Some(ServingStatus::Serving));
    assert_eq!(readyz(&cluster).await, Some((200, "ready\n".to_string())));

    cluster.nats.kill().await.unwrap();
    wait_until(
        "the admin to say NOT_SERVING",
        Duration::from_secs(20),
        || async {
            (admin_status(&cluster).await == Some(ServingStatus::NotServing)).then_some(())
        },
    )
    .await
    .unwrap();
    let (status, body) = readyz(&cluster).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not ready: NATS disconnected"), "{body}");
    let healthz = ocelot_tests::http::get(&format!(
        "{}/healthz",
        cluster.hooks_url.as_deref().unwrap()
    ))
    .await
    .unwrap();
    assert_eq!(healthz.status, 200);

    cluster.nats.start_again().await.unwrap();
    wait_until(
        "the admin to serve again",
        Duration::from_secs(30),
        || async { (admin_status(&cluster).await == Some(ServingStatus::Serving)).then_some(()) },
    )
    .await
    .unwrap();
    wait_until(
        "/readyz to be 200 again",
        Duration::from_secs(30),
        || async { (readyz(&cluster).await?.0 == 200).then_some(()) },
    )
    .await
    .unwrap();
}
