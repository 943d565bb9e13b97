//! The harness itself: a server it started is gone once dropped, with every process it
//! forked (also those serving a connection still open), and its port accepts no more
//! connections. `git daemon` once left its `git-daemon` child listening after every test.

use ocelot_tests::git::GitServer;
use ocelot_tests::git_http::PrivateHttpGit;
use ocelot_tests::nats::NatsServer;
use ocelot_tests::pg_server::PostgresServer;
use ocelot_tests::process::{ProcessInfo, descendants, group_is_gone, group_members, process_info};
use ocelot_tests::services::ServiceProcess;
use ocelot_tests::sshd::SshGitServer;
use ocelot_tests::wait_until;
use std::time::Duration;

async fn accepts_connections(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// The program name of process `pid` (`/proc/PID/comm`).
fn program_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The live processes of group `pgid` and the descendants of its leader.
fn processes_of(pgid: i32) -> Vec<ProcessInfo> {
    let mut all = group_members(pgid);
    for process in descendants(pgid) {
        if !all.iter().any(|p| p.pid == process.pid) {
            all.push(process);
        }
    }
    all
}

/// Waits until the leader of `pgid` has forked at least `more` processes besides itself.
async fn wait_for_forks(what: &str, pgid: i32, more: usize) -> Vec<ProcessInfo> {
    wait_until(what, Duration::from_secs(10), || async {
        let all = processes_of(pgid);
        (all.len() > more).then_some(all)
    })
    .await
    .unwrap()
}

/// Right after a drop: none of `processes` is alive, nothing is left in group `pgid` (once
/// orphaned zombies were reaped), and nothing accepts connections on `port`.
async fn assert_all_gone(what: &str, pgid: i32, processes: &[ProcessInfo], port: Option<u16>) {
    assert!(!processes.is_empty(), "{what}: no process to check");
    let alive: Vec<&ProcessInfo> = processes.iter().filter(|p| p.still_alive()).collect();
    assert!(alive.is_empty(), "{what} left processes alive: {alive:?}");
    assert!(
        group_members(pgid).is_empty(),
        "{what} left processes in its group: {:?}",
        group_members(pgid)
    );
    wait_until(
        &format!("{what}'s process group to be reaped"),
        Duration::from_secs(10),
        || async { group_is_gone(pgid).then_some(()) },
    )
    .await
    .unwrap();
    if let Some(port) = port {
        assert!(
            !accepts_connections(port).await,
            "{what}: port {port} still accepts connections"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_git_server_leaves_no_git_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let git = GitServer::start(&dir.path().join("git")).await.unwrap();
    let repo = git.create_repo("served", &[("a.txt", "a")]).unwrap();
    repo.clone_to(&dir.path().join("clone")).unwrap();
    let pid = git.pid();
    assert_eq!(program_of(pid), "git-daemon", "not the daemon itself");
    // a connection that sends nothing: the daemon forked a process to serve it
    let _open = tokio::net::TcpStream::connect(("127.0.0.1", git.port))
        .await
        .unwrap();
    let processes = wait_for_forks("git-daemon to serve the connection", pid, 1).await;
    let port = git.port;
    assert!(accepts_connections(port).await);
    drop(git);
    assert_all_gone("git-daemon", pid, &processes, Some(port)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_nats_server_is_gone() {
    let mut nats = NatsServer::start().await.unwrap();
    let pid = nats.pid().unwrap();
    let processes = processes_of(pid);
    let port = nats.port;
    // killed and started again: the second server goes on drop too
    nats.kill().await.unwrap();
    assert_all_gone("the killed nats-server", pid, &processes, Some(port)).await;
    nats.start_again().await.unwrap();
    let pid = nats.pid().unwrap();
    let processes = processes_of(pid);
    drop(nats);
    assert_all_gone("nats-server", pid, &processes, Some(port)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_ssh_server_leaves_no_sshd_even_with_a_connection_open() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = SshGitServer::start(dir.path()).await.unwrap();
    let pid = sshd.pid();
    // a connection still open: sshd forked its session process (which leaves the group)
    let _open = tokio::net::TcpStream::connect(("127.0.0.1", sshd.port))
        .await
        .unwrap();
    let processes = wait_for_forks("sshd to serve the connection", pid, 1).await;
    let port = sshd.port;
    drop(sshd);
    assert_all_gone("sshd", pid, &processes, Some(port)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_postgres_server_leaves_no_postgres() {
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .unwrap();
    let pid = server.postmaster_pid().expect("the postmaster's pid");
    assert_eq!(program_of(pid), "postgres");
    // the postmaster and its background workers
    let processes = wait_for_forks("postgres's background processes", pid, 1).await;
    let port = server.port;
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
    assert_all_gone("postgres", pid, &processes, Some(port)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_service_process_leaves_nothing_even_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = ServiceProcess::start(
        "forker",
        std::path::Path::new("/bin/sh"),
        &["-c".to_string(), "sleep 300 & sleep 300".to_string()],
        &[],
        &dir.path().join("forker.log"),
    )
    .unwrap();
    let first = service.pid().unwrap();
    let first_processes = wait_for_forks("the shell's sleeps", first, 1).await;
    // a crash (SIGKILL to the service alone) leaves what it started running, as for real
    service.kill().await.unwrap();
    let orphans: Vec<&ProcessInfo> = first_processes
        .iter()
        .filter(|p| p.pid != first && p.still_alive())
        .collect();
    assert!(!orphans.is_empty(), "the crash took the sleeps along");
    service.start_again().unwrap();
    let second = service.pid().unwrap();
    let second_processes = wait_for_forks("the shell's sleeps", second, 1).await;
    drop(service);
    assert_all_gone("the crashed service", first, &first_processes, None).await;
    assert_all_gone("the service", second, &second_processes, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_http_git_server_stops_listening() {
    let dir = tempfile::tempdir().unwrap();
    let server = PrivateHttpGit::start(dir.path(), "user", "token")
        .await
        .unwrap();
    let port = server.port;
    assert!(accepts_connections(port).await);
    drop(server);
    wait_until(
        "the HTTP git server to stop listening",
        Duration::from_secs(10),
        || async { (!accepts_connections(port).await).then_some(()) },
    )
    .await
    .unwrap();
}

#[test]
fn process_info_sees_this_process() {
    let me = i32::try_from(std::process::id()).unwrap();
    let info = process_info(me).unwrap();
    assert_eq!(info.pid, me);
    assert!(info.still_alive());
    assert_eq!(
        info.pgrp,
        rustix::process::getpgrp().as_raw_nonzero().get(),
        "{info:?}"
    );
}
