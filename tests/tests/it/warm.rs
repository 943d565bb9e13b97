//! Warm starts: after a build, its worker keeps a started container of the same image ready
//! for the next one; the next build runs in it (its hostname is that container's id), every
//! build still gets a container no other build touched, a warm container whose image name
//! now means another image is not used.

use crate::repo_with;
use bollard::Docker;
use ocelot_tests::cluster::{Cluster, WorkerSpec};
use ocelot_tests::wait_until;
use std::process::Command;
use std::time::Duration;

async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

/// The ids of the warm containers (not taken by a build) the cluster's workers keep.
async fn warm_containers(cluster: &Cluster, docker: &Docker) -> Vec<String> {
    let filters = std::collections::HashMap::from([
        (
            "label".to_string(),
            vec![
                format!("io.ocelot.instance={}", cluster.instance),
                "io.ocelot.warm-until".to_string(),
            ],
        ),
        ("name".to_string(), vec!["^/ocelot-warm-".to_string()]),
    ]);
    docker
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// Waits for exactly one warm container and returns its id.
async fn one_warm_container(cluster: &Cluster, docker: &Docker) -> String {
    wait_until("a warm container", Duration::from_secs(30), || async {
        let warm = warm_containers(cluster, docker).await;
        let running = match warm.as_slice() {
            [one] => {
                docker
                    .inspect_container(
                        one,
                        None::<bollard::query_parameters::InspectContainerOptions>,
                    )
                    .await
                    .ok()?
                    .state?
                    .running?
            }
            _ => false,
        };
        running.then(|| warm[0].clone())
    })
    .await
    .unwrap()
}

/// The value of `key=VALUE` lines in a build's output.
fn reported<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|line| line.split_once(&format!("{key}=")).map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("no {key}= in\n{stdout}"))
}

/// Each build reports its container (hostname: the container id's first 12 characters),
/// whether an earlier build's file is there, and leaves one.
const REPORTING_YML: &str = r#"image: IMAGE
stages:
  - name: report
    script:
      - echo "host=$(hostname)"
      - 'if [ -e /tmp/touched ]; then echo "touched=yes"; else echo "touched=no"; fi'
      - touch /tmp/touched
      - 'if [ -e /image-v2 ]; then echo "image=v2"; else echo "image=v1"; fi'
      - echo "workspace=$(cat marker.txt)"
"#;

fn single_worker() -> Vec<WorkerSpec> {
    vec![WorkerSpec {
        concurrency: 1,
        ..WorkerSpec::default()
    }]
}

fn docker_cli(args: &[&str]) {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Removes the test's image tag whatever happens.
struct ImageTag(String);

impl Drop for ImageTag {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.0]).output();
    }
}

/// A one-worker cluster and a repo `name` building [`REPORTING_YML`] on an image tag of the
/// test's own (removed with the returned guard), its `marker.txt` holding `marker`.
async fn one_worker_with_repo(name: &str, marker: &str) -> (Cluster, Docker, ImageTag) {
    let cluster = Cluster::start_with(single_worker()).await.unwrap();
    let docker = docker().await;
    let image = format!(
        "ocelot/warm-test:{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let tag = ImageTag(image.clone());
    docker_cli(&["tag", "ocelot/busybox", &image]);
    repo_with(
        &cluster,
        name,
        &REPORTING_YML.replace("IMAGE", &image),
        &[("marker.txt", marker)],
    )
    .await;
    (cluster, docker, tag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_build_runs_in_a_warm_container_that_no_build_touched() {
    let (cluster, docker, _tag) = one_worker_with_repo("warm", "from-the-commit").await;

    // the first build starts cold and leaves a warm container behind
    let first = cluster.ocelot(&["build", "-r", "warm"]).await.unwrap();
    assert_eq!(first.code, 0, "{}", first.both());
    let warm = one_warm_container(&cluster, &docker).await;
    assert_ne!(&warm[..12], reported(&first.stdout, "host"));

    // the second runs in it: a container nobody used, with the commit's workspace
    let second = cluster.ocelot(&["build", "-r", "warm"]).await.unwrap();
    assert_eq!(second.code, 0, "{}", second.both());
    assert_eq!(
        reported(&second.stdout, "host"),
        &warm[..12],
        "{}",
        second.both()
    );
    assert_eq!(reported(&second.stdout, "touched"), "no");
    assert_eq!(reported(&second.stdout, "workspace"), "from-the-commit");

    // it went with its build, and another one is ready, never the same container
    let next = one_warm_container(&cluster, &docker).await;
    assert_ne!(next, warm);
    let third = cluster.ocelot(&["build", "-r", "warm"]).await.unwrap();
    assert_eq!(third.code, 0, "{}", third.both());
    assert_eq!(reported(&third.stdout, "host"), &next[..12]);
    assert_eq!(reported(&third.stdout, "touched"), "no");
    wait_until(
        "the used warm containers to go",
        Duration::from_secs(30),
        || async {
            let mut gone = true;
            for id in [&warm, &next] {
                gone &= docker
                    .inspect_container(
                        id,
                        None::<bollard::query_parameters::InspectContainerOptions>,
                    )
                    .await
                    .is_err();
            }
            gone.then_some(())
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_container_of_an_image_that_changed_is_not_used() {
    let (cluster, docker, tag) = one_worker_with_repo("changing", "m").await;
    let image = tag.0.clone();
    let first = cluster.ocelot(&["build", "-r", "changing"]).await.unwrap();
    assert_eq!(first.code, 0, "{}", first.both());
    assert_eq!(reported(&first.stdout, "image"), "v1");
    let warm = one_warm_container(&cluster, &docker).await;

    // the name now means another image (as after `docker build -t` or a pull)
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM ocelot/busybox\nRUN touch /image-v2\n",
    )
    .unwrap();
    docker_cli(&[
        "build",
        "-q",
        "-t",
        &image,
        &context.path().to_string_lossy(),
    ]);

    let second = cluster.ocelot(&["build", "-r", "changing"]).await.unwrap();
    assert_eq!(second.code, 0, "{}", second.both());
    assert_eq!(reported(&second.stdout, "image"), "v2", "{}", second.both());
    assert_ne!(reported(&second.stdout, "host"), &warm[..12]);
    // the stale one is gone; the next warm container is of the new image
    let next = one_warm_container(&cluster, &docker).await;
    assert_ne!(next, warm);
    let third = cluster.ocelot(&["build", "-r", "changing"]).await.unwrap();
    assert_eq!(reported(&third.stdout, "host"), &next[..12]);
    assert_eq!(reported(&third.stdout, "image"), "v2");
}
