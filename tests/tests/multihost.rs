//! Workers as separate hosts: two containers on a private Docker network, run from an image
//! imported from this machine's binaries (scripts/worker-image.sh, no registry), reaching
//! Postgres, NATS and git on the network's gateway. The worker running a build is cut off the
//! network (`docker network disconnect`) mid-build and reconnected after the other worker
//! took the build over: the build completes once, on the other worker, and the cut-off
//! worker writes nothing after its fence moved (it finds itself fenced out when it is back).

// helpers of tests may panic like the tests themselves
#![allow(clippy::unwrap_used)]

use ocelot_core::BuildState;
use ocelot_core::build_state::StageState;
use ocelot_core::ids::BuildId;
use ocelot_core::store::Store;
use ocelot_tests::cluster::bin_dir;
use ocelot_tests::git::GitServer;
use ocelot_tests::nats::{NatsServer, NatsUser};
use ocelot_tests::pg_server::PostgresServer;
use ocelot_tests::services::ServiceProcess;
use ocelot_tests::{attempt, free_port, wait_until};
use std::process::Command;
use std::time::{Duration, Instant};

const COUNTING_YML: &str = r#"image: ocelot/busybox
stages:
  - name: count
    script:
      - 'i=0; while [ $i -lt 60 ]; do echo "line $i"; i=$((i+1)); sleep 0.2; done'
"#;

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Removes the test's containers, network and image, whatever happens.
struct DockerThings {
    network: String,
    image: String,
    containers: Vec<String>,
    /// The installation whose build and warm containers (made by the workers in
    /// `containers` on this Docker host) go too.
    instance: Option<String>,
}

impl Drop for DockerThings {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = Command::new("docker")
                .args(["rm", "-f", container])
                .output();
        }
        if let Some(instance) = &self.instance {
            ocelot_tests::cluster::remove_docker_leftovers(instance);
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
        let _ = Command::new("docker").args(["rmi", &self.image]).output();
    }
}

/// Installs, on this (the Docker) host, the rules `--build-host-access external` leaves to the
/// operator, unless they are there (`-C` checks first).
fn install_host_firewall_rules() {
    for rule in ocelot_worker::host_firewall_rules() {
        let mut words: Vec<&str> = rule.split_whitespace().collect();
        let program = words.remove(0);
        let mut check = words.clone();
        check[0] = "-C";
        let present = Command::new(program).args(&check).status().unwrap();
        if !present.success() {
            let inserted = Command::new(program).args(&words).output().unwrap();
            assert!(
                inserted.status.success(),
                "{rule}: {}",
                String::from_utf8_lossy(&inserted.stderr)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_cut_off_mid_build_is_fenced_and_the_build_completes_once_elsewhere() {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut things = DockerThings {
        network: format!("ocelot-mh-{suffix}"),
        image: format!("ocelot/services:mh-{suffix}"),
        containers: Vec::new(),
        instance: None,
    };
    docker(&["network", "create", &things.network]);
    let gateway = docker(&[
        "network",
        "inspect",
        &things.network,
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
    ]);
    let subnet = docker(&[
        "network",
        "inspect",
        &things.network,
        "-f",
        "{{(index .IPAM.Config 0).Subnet}}",
    ]);
    let bin = bin_dir().unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/worker-image.sh");
    let built = Command::new("bash")
        .arg(&script)
        .arg(&bin)
        .arg(&things.image)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    // Postgres, NATS and git on the network's gateway; the admin on loopback
    let dir = tempfile::tempdir().unwrap();
    let postgres = PostgresServer::start_on(&gateway, Some(&subnet)).unwrap();
    let database_url = postgres.create_database("ocelot").await.unwrap();
    let nats = NatsServer::start_on(&gateway).await.unwrap();
    let git = GitServer::start_on(&dir.path().join("git"), &gateway)
        .await
        .unwrap();
    let store = Store::connect(&database_url).await.unwrap();
    things.instance = Some(store.instance_id().await.unwrap());
    let token = store
        .create_token("multihost", ocelot_core::auth::TokenScope::Admin)
        .await
        .unwrap();
    let master_key = ocelot_core::secrets::cipher::MasterKey::generate_hex().unwrap();
    let admin_address = format!("127.0.0.1:{}", free_port().unwrap());
    // the admin reaches Postgres on loopback, the worker hosts on the gateway
    let env = vec![
        ("OCELOT_DATABASE_URL".to_string(), database_url.clone()),
        ("OCELOT_NATS_URL".to_string(), nats.url.clone()),
        ("OCELOT_MASTER_KEY".to_string(), master_key.clone()),
    ];
    // each service as its own NATS user; the worker containers get the password itself
    let mut worker_env = env.clone();
    worker_env[0].1 = postgres.url_at("ocelot");
    worker_env.push(("OCELOT_NATS_USER".to_string(), "worker".to_string()));
    worker_env.push((
        "OCELOT_NATS_PASSWORD".to_string(),
        nats.password(NatsUser::Worker).unwrap(),
    ));
    let env = [env, nats.env(NatsUser::Admin)].concat();
    let _admin = ServiceProcess::start(
        "admin",
        &bin.join("ocelot-admin"),
        &[
            "--listen".to_string(),
            admin_address.clone(),
            "--cache-dir".to_string(),
            dir.path().join("admin").to_string_lossy().to_string(),
        ],
        &env,
        &dir.path().join("admin.log"),
    )
    .unwrap();

    // the workers run in containers (their iptables would guard their own network namespace,
    // not the Docker host's): the operator, this test, keeps builds off the host, and the
    // workers are told so (`--build-host-access external`)
    install_host_firewall_rules();
    // two worker hosts
    for index in 0..2 {
        let name = format!("ocelot-mh-{suffix}-worker-{index}");
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--network".into(),
            things.network.clone(),
            "-v".into(),
            "/var/run/docker.sock:/var/run/docker.sock".into(),
        ];
        for (key, value) in &worker_env {
            args.push("-e".into());
            args.push(format!("{key}={value}"));
        }
        args.extend(
            [
                "-e",
                "RUST_LOG=info",
                &things.image,
                "ocelot-worker",
                "--worker-id",
                &format!("mh-worker-{index}"),
                "--concurrency",
                "1",
                "--job-ack-wait",
                "6s",
                "--check-every",
                "1s",
                "--sweep-every",
                "1s",
                "--min-free-disk-mib",
                "1",
                "--build-host-access",
                "external",
            ]
            .map(str::to_string),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args);
        things.containers.push(name);
    }
    let registry = ocelot_core::queue::Bus::connect(
        &nats.args(NatsUser::Admin),
        ocelot_core::queue::Setup::Streams,
    )
    .await
    .unwrap();
    let joined = wait_until(
        "both worker hosts to join",
        Duration::from_secs(60),
        || async {
            let workers = registry.list_workers().await.ok()?;
            (workers.len() == 2).then_some(())
        },
    )
    .await;
    if let Err(error) = joined {
        let logs: Vec<String> = things
            .containers
            .iter()
            .map(|c| docker(&["logs", "--tail", "20", c]))
            .collect();
        panic!("{error}\n{}", logs.join("\n---\n"));
    }

    let ocelot = |args: &[&str]| {
        let output = Command::new(bin.join("ocelot"))
            .args(args)
            .env("OCELOT_ADMIN", format!("http://{admin_address}"))
            .env("OCELOT_TOKEN", &token)
            .env_remove("OCELOT_TLS_CA")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "ocelot {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let repo = git
        .create_repo("counting", &[("ocelot.yml", COUNTING_YML)])
        .unwrap();
    ocelot(&["repos", "add", "counting", &repo.url]);
    let build_id: BuildId = ocelot(&["build", "-r", "counting", "--no-follow"])
        .parse()
        .unwrap();

    // the build runs on one host and printed a few lines: cut that host off
    let first = wait_until("the build to run", Duration::from_secs(60), || async {
        let build = store.get_build(build_id).await.ok()?;
        let lines = store.lines(build_id, attempt(1)).await.ok()?;
        (build.state == BuildState::Running && lines.len() >= 5).then_some(build)
    })
    .await
    .unwrap();
    let cut_off_worker = first.worker.clone().unwrap();
    let cut_off = format!(
        "ocelot-mh-{suffix}-worker-{}",
        cut_off_worker.trim_start_matches("mh-worker-")
    );
    docker(&["network", "disconnect", &things.network, &cut_off]);
    let partitioned = Instant::now();

    // the other host takes the build over once the job's ack wait has passed
    let moved = wait_until("a second attempt", Duration::from_secs(60), || async {
        let build = store.get_build(build_id).await.ok()?;
        (build.attempt == attempt(2)).then_some(build)
    })
    .await
    .unwrap();
    let taken_over_after = partitioned.elapsed();
    assert_ne!(moved.worker.as_deref(), Some(cut_off_worker.as_str()));
    let lines_at_fence = store.lines(build_id, attempt(1)).await.unwrap().len();
    docker(&["network", "connect", &things.network, &cut_off]);

    let done = wait_until("the build to finish", Duration::from_secs(120), || async {
        let build = store.get_build(build_id).await.ok()?;
        build.state.is_final().then_some(build)
    })
    .await
    .unwrap();
    assert_eq!(done.state, BuildState::Passed, "{:?}", done.reason);
    assert_eq!(done.attempt, attempt(2));
    let texts: Vec<String> = store
        .lines(build_id, attempt(2))
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .filter(|t| t.starts_with("line "))
        .collect();
    let want: Vec<String> = (0..60).map(|i| format!("line {i}")).collect();
    assert_eq!(texts, want, "the second attempt ran the stage once, whole");

    // back on the network, the cut-off worker learns it lost the build and writes nothing
    let fenced = wait_until(
        "the cut-off worker to find itself fenced out",
        Duration::from_secs(120),
        || async {
            let logs = Command::new("docker")
                .args(["logs", &cut_off])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&logs.stdout).to_string()
                + &String::from_utf8_lossy(&logs.stderr);
            (text.contains("a newer attempt owns the build")
                || text.contains("the build is no longer this attempt's"))
            .then_some(())
        },
    )
    .await;
    if let Err(error) = fenced {
        panic!("{error}\n{}", docker(&["logs", "--tail", "40", &cut_off]));
    }
    assert_eq!(
        store.lines(build_id, attempt(1)).await.unwrap().len(),
        lines_at_fence,
        "the cut-off worker wrote lines after its fence moved"
    );
    let stages = store.stages(build_id, attempt(1)).await.unwrap();
    assert!(
        stages
            .iter()
            .all(|s| matches!(s.state, StageState::Pending | StageState::Running)),
        "the cut-off worker recorded a stage result after its fence moved: {stages:?}"
    );
    // the lost attempt's log stays readable
    let replay = Command::new(bin.join("ocelot"))
        .args(["watch", &build_id.to_string(), "--attempt", "1", "--json"])
        .env("OCELOT_ADMIN", format!("http://{admin_address}"))
        .env("OCELOT_TOKEN", &token)
        .output()
        .unwrap();
    let events: Vec<ocelot_core::events::BuildEvent> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let replayed: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            ocelot_core::events::EventKind::Line { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    let stored: Vec<String> = store
        .lines(build_id, attempt(1))
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(replayed, stored);
    assert!(events.iter().all(|e| e.attempt == attempt(1)));
    assert!(
        matches!(&events.last().unwrap().kind, ocelot_core::events::EventKind::Result { reason, .. }
            if reason.starts_with("attempt 1 ended without a result")),
        "{:?}",
        events.last()
    );
    let final_build = store.get_build(build_id).await.unwrap();
    assert_eq!(
        (final_build.state, final_build.attempt),
        (BuildState::Passed, attempt(2))
    );

    // no build container is left once the lost attempt's is swept
    let instance = store.instance_id().await.unwrap();
    wait_until(
        "no build container left",
        Duration::from_secs(60),
        || async {
            docker(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=io.ocelot.instance={instance}"),
                // a build's, not a worker's warm container
                "--filter",
                "name=^/ocelot-build-",
            ])
            .is_empty()
            .then_some(())
        },
    )
    .await
    .unwrap();
    let figures = format!(
        "multi-host figures: build {build_id} taken over {:.1} s after its worker was cut off; attempt 1 kept {lines_at_fence} lines and wrote none after its fence moved, attempt 2 ran all 60",
        taken_over_after.as_secs_f64()
    );
    eprintln!("{figures}");
    // scripts/test.sh prints it after the run (cargo test hides a passing test's output)
    std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("multihost-figures.txt"),
        format!("{figures}\n"),
    )
    .unwrap();
    drop(things);
}
