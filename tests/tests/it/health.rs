//! Readiness while a dependency is down: the admin's gRPC health service says NOT_SERVING
//! and the `/readyz` of the hookhandler, the worker and the poller answer 503 naming NATS
//! while NATS is away; all are ready again by themselves once it is back. `/healthz`
//! (liveness) stays 200 throughout.

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

/// Every `/readyz` of the cluster: (service, status, body).
async fn readyz(cluster: &Cluster) -> Vec<(String, u16, String)> {
    let mut bases = cluster.health_urls.clone();
    if let Some(hooks) = &cluster.hooks_url {
        bases.push(("hookhandler".to_string(), hooks.clone()));
    }
    let mut answers = Vec::new();
    for (name, base) in bases {
        let (status, body) = match ocelot_tests::http::get(&format!("{base}/readyz")).await {
            Ok(answer) => (answer.status, answer.body),
            Err(error) => (0, error.to_string()),
        };
        answers.push((name, status, body));
    }
    answers
}

fn all_answer(answers: &[(String, u16, String)], status: u16) -> bool {
    answers.len() == 3 && answers.iter().all(|(_, s, _)| *s == status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_report_not_ready_while_nats_is_down_and_recover() {
    let mut cluster = Cluster::start_spec(ClusterSpec {
        hookhandler: Some(HookSpec::default()),
        pollers: 1,
        health_endpoints: true,
        ..ClusterSpec::default()
    })
    .await
    .unwrap();
    assert_eq!(admin_status(&cluster).await, Some(ServingStatus::Serving));
    // the workers and pollers start after the admin answers
    let answers = wait_until(
        "every /readyz to answer 200",
        Duration::from_secs(30),
        || async {
            let answers = readyz(&cluster).await;
            all_answer(&answers, 200).then_some(answers)
        },
    )
    .await
    .unwrap();
    assert!(
        answers.iter().all(|(_, _, body)| body == "ready\n"),
        "{answers:?}"
    );

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
    let answers = wait_until(
        "every /readyz to answer 503",
        Duration::from_secs(20),
        || async {
            let answers = readyz(&cluster).await;
            all_answer(&answers, 503).then_some(answers)
        },
    )
    .await
    .unwrap();
    for (name, _, body) in &answers {
        assert!(
            body.starts_with("not ready: ") && body.contains("NATS disconnected"),
            "{name}: {body}"
        );
    }
    for (name, base) in &cluster.health_urls {
        let healthz = ocelot_tests::http::get(&format!("{base}/healthz"))
            .await
            .unwrap();
        assert_eq!(healthz.status, 200, "{name}");
    }

    cluster.nats.start_again().await.unwrap();
    wait_until(
        "the admin to serve again",
        Duration::from_secs(30),
        || async { (admin_status(&cluster).await == Some(ServingStatus::Serving)).then_some(()) },
    )
    .await
    .unwrap();
    wait_until(
        "every /readyz to be 200 again",
        Duration::from_secs(30),
        || async { all_answer(&readyz(&cluster).await, 200).then_some(()) },
    )
    .await
    .unwrap();
}
