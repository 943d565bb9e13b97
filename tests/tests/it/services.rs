//! Service containers (`services:`), on the local `ocelot/busybox` image: an HTTP server
//! (busybox `httpd`) is waited for by its port, reached by name from the build, boxed like
//! the build container with its share of the build's limits, and gone with the build; a
//! service that never gets healthy, or exits, errors the build naming it, with its log; a
//! failing build shows its services' log lines, a passing one only with `watch --services`.

use crate::{queued_build_id, repo_with, status_json};
use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use ocelot_core::ids::BuildId;
use ocelot_tests::cluster::{Cluster, WorkerSpec};
use ocelot_tests::wait_until;
use std::collections::HashMap;
use std::time::Duration;

/// A web server with a page, waited for by port; a build that fetches the page by the
/// service's name, then holds until the test, done inspecting the containers, lets it go
/// (creates `/tmp/go` in the build container).
const WEB_YML: &str = r#"image: ocelot/busybox
resources: { memory: 256m, pids: 200 }
services:
  - name: web
    image: ocelot/busybox
    env: ["GREETING=hello from the web service"]
    command: 'echo "web service starting"; mkdir -p /www && echo "$GREETING" > /www/index.html && exec httpd -f -p 8080 -h /www'
    wait: { port: 8080, timeout: 20s }
stages:
  - name: fetch
    script:
      - wget -qO- http://web:8080/index.html
  - name: hold
    script:
      - 'i=0; until [ -e /tmp/go ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 1; sleep 0.1; done'
"#;

async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

/// Containers (running or not) of the cluster's installation labelled with `build_id`.
async fn labelled_containers(
    docker: &Docker,
    cluster: &Cluster,
    build_id: BuildId,
    extra: &[String],
) -> Vec<bollard::models::ContainerSummary> {
    let mut labels = vec![
        format!("io.ocelot.instance={}", cluster.instance),
        format!("io.ocelot.build-id={build_id}"),
    ];
    labels.extend_from_slice(extra);
    let filters = HashMap::from([("label".to_string(), labels)]);
    docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap()
}

/// Waits until no container labelled with `build_id` is left (build and services).
async fn wait_all_gone(docker: &Docker, cluster: &Cluster, build_id: BuildId) {
    cluster.wait_containers_gone(build_id).await;
    wait_until(
        &format!("every container of build {build_id} to be removed"),
        Duration::from_secs(30),
        || async {
            labelled_containers(docker, cluster, build_id, &[])
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await
    .unwrap();
}

/// The stored log of the build's attempt, one line each.
async fn log_of(cluster: &Cluster, build_id: BuildId) -> Vec<(String, String)> {
    let build = cluster.store.get_build(build_id).await.unwrap();
    let lines = cluster.store.lines(build.id, build.attempt).await.unwrap();
    lines
        .into_iter()
        .map(|line| (line.stage, line.text))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_is_reached_by_name_boxed_like_the_build_and_removed_with_it() {
    let cluster = Cluster::start().await.unwrap();
    let docker = docker().await;
    repo_with(&cluster, "web", WEB_YML, &[]).await;
    let queued = cluster
        .ocelot(&["build", "-r", "web", "--no-follow"])
        .await
        .unwrap();
    assert_eq!(queued.code, 0, "{}", queued.both());
    let build_id: BuildId = queued.stdout.trim().parse().unwrap();

    // while the build runs: the service's container, named and labelled after the build,
    // on the build's network under its name, in the same box, with half the build's limits
    // (a running one: listed while just created, a container has been seen to vanish
    // before it could be inspected on a loaded machine)
    let service = wait_until("the service container", Duration::from_secs(60), || {
        let (docker, cluster) = (&docker, &cluster);
        async move {
            let found = labelled_containers(
                docker,
                cluster,
                build_id,
                &["io.ocelot.service=web".to_string()],
            )
            .await;
            let running = found
                .into_iter()
                .find(|c| c.state.as_ref().is_some_and(|s| s.to_string() == "running"))?;
            docker
                .inspect_container(running.id.as_deref()?, None)
                .await
                .ok()?;
            Some(running)
        }
    })
    .await
    .unwrap();
    let name = service.names.clone().unwrap_or_default().join(",");
    assert!(
        name.starts_with(&format!("/ocelot-build-{build_id}-1-svc-web-")),
        "{name}"
    );
    let inspected = match docker
        .inspect_container(service.id.as_deref().unwrap(), None)
        .await
    {
        Ok(inspected) => inspected,
        Err(error) => {
            let watched = cluster
                .ocelot(&["watch", &build_id.to_string(), "--services"])
                .await
                .unwrap();
            panic!("{error}: {service:#?}\n{}", watched.both());
        }
    };
    let host = inspected.host_config.unwrap();
    assert_eq!(host.memory, Some(128 << 20));
    assert_eq!(host.memory_swap, Some(128 << 20));
    assert_eq!(host.pids_limit, Some(100));
    assert_eq!(
        host.security_opt,
        Some(vec!["no-new-privileges".to_string()])
    );
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    let networks = inspected
        .network_settings
        .and_then(|settings| settings.networks)
        .unwrap_or_default();
    assert_eq!(networks.len(), 1, "{networks:?}");
    let (_, endpoint) = networks.into_iter().next().unwrap();
    assert!(
        endpoint
            .aliases
            .unwrap_or_default()
            .contains(&"web".to_string()),
        "the service is reachable as `web`"
    );
    // the build container has the other half
    let build_container = labelled_containers(&docker, &cluster, build_id, &[])
        .await
        .into_iter()
        .find(|c| {
            !c.labels
                .as_ref()
                .is_some_and(|l| l.contains_key("io.ocelot.service"))
        })
        .unwrap();
    let build_host = docker
        .inspect_container(build_container.id.as_deref().unwrap(), None)
        .await
        .unwrap()
        .host_config
        .unwrap();
    assert_eq!(build_host.memory, Some(128 << 20));
    assert_eq!(build_host.pids_limit, Some(100));
    let go = std::process::Command::new("docker")
        .args([
            "exec",
            build_container.id.as_deref().unwrap(),
            "touch",
            "/tmp/go",
        ])
        .output()
        .unwrap();
    assert!(
        go.status.success(),
        "{}",
        String::from_utf8_lossy(&go.stderr)
    );

    let watched = cluster
        .ocelot(&["watch", &build_id.to_string()])
        .await
        .unwrap();
    assert_eq!(watched.code, 0, "{}", watched.both());
    assert!(
        watched.stdout.contains("hello from the web service"),
        "the build fetched the page by the service's name:\n{}",
        watched.both()
    );
    // a passing build's services' lines are kept but shown only when asked for
    assert!(
        !watched.stdout.contains("web service starting"),
        "{}",
        watched.both()
    );
    let with_services = cluster
        .ocelot(&["watch", &build_id.to_string(), "--services"])
        .await
        .unwrap();
    assert_eq!(with_services.code, 0, "{}", with_services.both());
    assert!(
        with_services.stdout.contains("web service starting"),
        "{}",
        with_services.both()
    );
    let log = log_of(&cluster, build_id).await;
    assert!(
        log.iter()
            .any(|(stage, text)| stage == "service:web" && text == "web service starting"),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|(_, text)| text.starts_with("service `web` ready after")),
        "{log:#?}"
    );
    wait_all_gone(&docker, &cluster, build_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_that_never_gets_healthy_or_exits_errors_the_build_naming_it() {
    let cluster = Cluster::start().await.unwrap();
    let docker = docker().await;
    let never_healthy = r#"image: ocelot/busybox
services:
  - name: db
    image: ocelot/busybox
    command: 'echo "db is up but never ready"; exec sleep 600'
    wait: { command: "false", timeout: 3s }
stages:
  - name: test
    script: [echo the stage ran]
"#;
    repo_with(&cluster, "unhealthy", never_healthy, &[]).await;
    let built = cluster.ocelot(&["build", "-r", "unhealthy"]).await.unwrap();
    assert_eq!(built.code, 3, "errored:\n{}", built.both());
    assert!(
        built
            .stderr
            .contains("service `db` did not become healthy within 3s: `false`: exit code 1"),
        "{}",
        built.both()
    );
    assert!(!built.stdout.contains("the stage ran"), "{}", built.both());
    // its log is shown: the build did not pass
    assert!(
        built.stdout.contains("db is up but never ready"),
        "{}",
        built.both()
    );
    let build_id = queued_build_id(&built);
    let status = status_json(&cluster, build_id).await;
    assert_eq!(status["state"], "errored", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("service `db`"),
        "{status}"
    );
    wait_all_gone(&docker, &cluster, build_id).await;

    let exits = r#"image: ocelot/busybox
services:
  - name: cache
    image: ocelot/busybox
    command: 'echo "cache: out of memory, giving up" >&2; exit 3'
    wait: { port: 6379 }
stages:
  - name: test
    script: [echo the stage ran]
"#;
    repo_with(&cluster, "exits", exits, &[]).await;
    let built = cluster.ocelot(&["build", "-r", "exits"]).await.unwrap();
    assert_eq!(built.code, 3, "errored:\n{}", built.both());
    assert!(
        built
            .stderr
            .contains("service `cache` exited (exit code 3) before it became healthy"),
        "{}",
        built.both()
    );
    assert!(
        built.stdout.contains("cache: out of memory, giving up"),
        "{}",
        built.both()
    );
    assert!(!built.stdout.contains("the stage ran"), "{}", built.both());
    wait_all_gone(&docker, &cluster, queued_build_id(&built)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_build_shows_its_services_log() {
    let cluster = Cluster::start().await.unwrap();
    let docker = docker().await;
    let yml = r#"image: ocelot/busybox
services:
  - name: api
    image: ocelot/busybox
    command: [sh, -c, 'echo "api: listening"; echo "api: request for /missing" >&2; exec sleep 600']
stages:
  - name: test
    script:
      - echo "testing against the api"
      - exit 1
"#;
    repo_with(&cluster, "failing", yml, &[]).await;
    let built = cluster.ocelot(&["build", "-r", "failing"]).await.unwrap();
    assert_eq!(built.code, 1, "failed:\n{}", built.both());
    for line in [
        "testing against the api",
        "api: listening",
        "api: request for /missing",
    ] {
        assert!(built.stdout.contains(line), "{line}:\n{}", built.both());
    }
    // after the stage's own lines
    let stage_at = built.stdout.find("testing against the api").unwrap();
    let service_at = built.stdout.find("api: listening").unwrap();
    assert!(stage_at < service_at, "{}", built.both());
    let build_id = queued_build_id(&built);
    let log = log_of(&cluster, build_id).await;
    assert!(
        log.iter()
            .any(|(stage, text)| stage == "service:api" && text == "api: request for /missing"),
        "{log:#?}"
    );
    wait_all_gone(&docker, &cluster, build_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_build_takes_its_services_with_it() {
    let cluster = Cluster::start().await.unwrap();
    let docker = docker().await;
    let yml = r#"image: ocelot/busybox
services:
  - name: db
    image: ocelot/busybox
    command: [sleep, "600"]
stages:
  - name: long
    script:
      - echo "the long stage runs"
      - sleep 600
"#;
    repo_with(&cluster, "long", yml, &[]).await;
    let queued = cluster
        .ocelot(&["build", "-r", "long", "--no-follow"])
        .await
        .unwrap();
    assert_eq!(queued.code, 0, "{}", queued.both());
    let build_id: BuildId = queued.stdout.trim().parse().unwrap();
    wait_until("the long stage", Duration::from_secs(60), || async {
        log_of(&cluster, build_id)
            .await
            .iter()
            .any(|(_, text)| text == "the long stage runs")
            .then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        labelled_containers(&docker, &cluster, build_id, &[])
            .await
            .len(),
        2,
        "the build's container and its service's"
    );
    let killed = cluster
        .ocelot(&["kill", &build_id.to_string()])
        .await
        .unwrap();
    assert_eq!(killed.code, 0, "{}", killed.both());
    // gone by the time kill returns: removed with the build container
    let left = labelled_containers(&docker, &cluster, build_id, &[]).await;
    assert!(left.is_empty(), "{left:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_build_in_a_warm_container_reaches_its_services_on_the_warm_network() {
    let cluster = Cluster::start_with(vec![WorkerSpec {
        concurrency: 1,
        ..WorkerSpec::default()
    }])
    .await
    .unwrap();
    let docker = docker().await;
    let yml = WEB_YML.replace(
        "      - 'i=0; until [ -e /tmp/go ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 1; sleep 0.1; done'",
        "      - echo \"host=$(hostname)\"",
    );
    assert_ne!(yml, WEB_YML);
    repo_with(&cluster, "web", &yml, &[]).await;
    let first = cluster.ocelot(&["build", "-r", "web"]).await.unwrap();
    assert_eq!(first.code, 0, "{}", first.both());
    // the worker keeps a warm container for the image and the build's share of the limits
    let filters = HashMap::from([(
        "label".to_string(),
        vec![
            format!("io.ocelot.instance={}", cluster.instance),
            "io.ocelot.warm-until".to_string(),
        ],
    )]);
    let warm = wait_until("a warm container", Duration::from_secs(30), || async {
        let listed = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .ok()?;
        let names = listed.first()?.names.clone()?;
        names
            .iter()
            .any(|n| n.starts_with("/ocelot-warm-"))
            .then(|| listed[0].id.clone())
            .flatten()
    })
    .await
    .unwrap();
    let second = cluster.ocelot(&["build", "-r", "web"]).await.unwrap();
    assert_eq!(second.code, 0, "{}", second.both());
    assert!(
        second.stdout.contains(&format!("host={}", &warm[..12])),
        "the build ran in the warm container:\n{}",
        second.both()
    );
    assert!(
        second.stdout.contains("hello from the web service"),
        "{}",
        second.both()
    );
    wait_all_gone(&docker, &cluster, queued_build_id(&second)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweeper_removes_a_service_container_a_dead_worker_left() {
    let cluster = Cluster::start().await.unwrap();
    let docker = docker().await;
    repo_with(
        &cluster,
        "done",
        "image: ocelot/busybox\nstages:\n  - name: a\n    script: [echo done]\n",
        &[],
    )
    .await;
    let built = cluster.ocelot(&["build", "-r", "done"]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    let finished = queued_build_id(&built);
    // what a worker killed mid-build leaves: a running service container of the attempt
    let name = format!(
        "ocelot-build-{finished}-1-svc-db-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let labels = [
        format!("io.ocelot.instance={}", cluster.instance),
        format!("io.ocelot.build-id={finished}"),
        "io.ocelot.attempt=1".to_string(),
        "io.ocelot.worker-id=a-dead-worker".to_string(),
        "io.ocelot.service=db".to_string(),
    ];
    let mut args = vec!["run", "-d", "--name", &name];
    for label in &labels {
        args.extend(["--label", label]);
    }
    args.extend(["ocelot/busybox", "sleep", "600"]);
    let started = std::process::Command::new("docker")
        .args(&args)
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    wait_until(
        "the leftover service container to be swept",
        Duration::from_secs(90),
        || async {
            labelled_containers(
                &docker,
                &cluster,
                finished,
                &["io.ocelot.service=db".to_string()],
            )
            .await
            .is_empty()
            .then_some(())
        },
    )
    .await
    .unwrap();
}
