//! Private repositories: a repo served over HTTP behind Basic authentication (`git
//! http-backend`) and one served over SSH (`sshd` running `git-shell`) build with the right
//! `vcs` / `ssh` credential, and fail cleanly, naming the repository, without it or with a
//! wrong one; an image in a private registry (registry API v2 behind Basic authentication)
//! is pulled with the `registry` login. Credential values never appear in any output.

use ocelot_tests::cluster::{CliOutput, Cluster};
use ocelot_tests::git_http::PrivateHttpGit;
use ocelot_tests::registry::PrivateRegistry;
use ocelot_tests::sshd::SshGitServer;

const YML: &str = "image: ocelot/busybox
stages:
  - name: show
    script:
      - cat notes.txt
";
const NOTES: &str = "read from the private repository";
const TOKEN: &str = "ghp_0123456789abcdefPrivateToken";

/// `ocelot build -r REPO`, which must be refused for want of authentication to `url`.
async fn build_refused(cluster: &Cluster, repo: &str, url: &str) -> CliOutput {
    let refused = cluster.ocelot(&["build", "-r", repo]).await.unwrap();
    assert_eq!(refused.code, 6, "{}", refused.both());
    assert!(
        refused
            .stderr
            .contains(&format!("authentication failed for {url}")),
        "{}",
        refused.both()
    );
    refused
}

/// Stores `value` as the vcs credential `host-token` of `private-http`, user `builder`.
async fn add_token(cluster: &Cluster, value: &[u8]) -> CliOutput {
    cluster
        .ocelot_with_input(
            &[
                "creds",
                "add",
                "vcs",
                "host-token",
                "-r",
                "private-http",
                "--username",
                "builder",
            ],
            value,
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_http_repo_builds_with_its_token_and_only_with_it() {
    let cluster = Cluster::start().await.unwrap();
    cluster
        .git
        .create_repo("private-http", &[("ocelot.yml", YML), ("notes.txt", NOTES)])
        .unwrap();
    let server = PrivateHttpGit::start(cluster.git.root(), "builder", TOKEN)
        .await
        .unwrap();
    let url = server.url("private-http");
    cluster.add_repo("private-http", &url).await.unwrap();

    // no credential: refused, naming the repository
    let refused = build_refused(&cluster, "private-http", &url).await;
    assert!(
        refused
            .stderr
            .contains("none is configured for this repository"),
        "{}",
        refused.both()
    );
    assert!(
        server.refused() > 0,
        "the server did not ask for credentials"
    );

    // a wrong token: offered, and refused by the server
    let wrong = add_token(&cluster, b"not-the-token").await;
    assert_eq!(wrong.code, 0, "{}", wrong.both());
    let refused = build_refused(&cluster, "private-http", &url).await;
    assert!(
        refused.stderr.contains("the server refused the credential"),
        "{}",
        refused.both()
    );
    assert!(
        !refused.both().contains("not-the-token"),
        "{}",
        refused.both()
    );

    // the right token (replacing the wrong one): the admin resolves, the worker clones
    let added = add_token(&cluster, format!("{TOKEN}\n").as_bytes()).await;
    assert_eq!(added.code, 0, "{}", added.both());
    let built = cluster
        .ocelot(&["build", "-r", "private-http"])
        .await
        .unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    assert!(built.stdout.contains(NOTES), "{}", built.both());
    let listed = cluster.ocelot(&["creds", "list"]).await.unwrap();
    assert!(listed.stdout.contains("user builder"), "{}", listed.both());
    for output in [&refused, &added, &built, &listed] {
        assert!(!output.both().contains(TOKEN), "{}", output.both());
    }
}

/// Stores the ssh credential `deploy-key` (key file, known_hosts file), then builds
/// `private-ssh`: the `creds add` and `build` outputs.
async fn add_key_and_build(
    cluster: &Cluster,
    key_file: &str,
    known_hosts_file: &str,
) -> (CliOutput, CliOutput) {
    let added = cluster
        .ocelot(&[
            "creds",
            "add",
            "ssh",
            "deploy-key",
            "-r",
            "private-ssh",
            "--from-file",
            key_file,
            "--known-hosts-file",
            known_hosts_file,
        ])
        .await
        .unwrap();
    assert_eq!(added.code, 0, "{}", added.both());
    let built = cluster
        .ocelot(&["build", "-r", "private-ssh"])
        .await
        .unwrap();
    (added, built)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ssh_repo_builds_with_its_key_and_checks_the_host_key() {
    let cluster = Cluster::start().await.unwrap();
    cluster
        .git
        .create_repo("private-ssh", &[("ocelot.yml", YML), ("notes.txt", NOTES)])
        .unwrap();
    let server = SshGitServer::start(cluster.git.root()).await.unwrap();
    let url = server.url("private-ssh");
    cluster.add_repo("private-ssh", &url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    // no key: refused, naming the repository
    build_refused(&cluster, "private-ssh", &url).await;

    // the key, but a known_hosts entry of another server: the host key check refuses it
    let key_file = dir.path().join("id_ed25519");
    std::fs::write(&key_file, &server.client_key).unwrap();
    let other_hosts = dir.path().join("other_known_hosts");
    let other = SshGitServer::start(cluster.git.root()).await.unwrap();
    std::fs::write(&other_hosts, &other.known_hosts).unwrap();
    let key_arg = key_file.display().to_string();
    let other_arg = other_hosts.display().to_string();
    let (_, refused) = add_key_and_build(&cluster, &key_arg, &other_arg).await;
    assert_eq!(refused.code, 6, "{}", refused.both());
    assert!(
        refused
            .stderr
            .contains("is not in the credential's known_hosts"),
        "{}",
        refused.both()
    );

    // the key with the server's own known_hosts line: builds
    let hosts = dir.path().join("known_hosts");
    std::fs::write(&hosts, &server.known_hosts).unwrap();
    let hosts_arg = hosts.display().to_string();
    let (added, built) = add_key_and_build(&cluster, &key_arg, &hosts_arg).await;
    assert_eq!(built.code, 0, "{}", built.both());
    assert!(built.stdout.contains(NOTES), "{}", built.both());
    let listed = cluster.ocelot(&["creds", "list"]).await.unwrap();
    assert!(
        listed.stdout.contains("host key checked"),
        "{}",
        listed.both()
    );
    // no line of the private key shows anywhere
    let key_lines: Vec<&str> = server
        .client_key
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    for output in [&refused, &added, &built, &listed] {
        for line in &key_lines {
            assert!(!output.both().contains(line), "{}", output.both());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_from_a_private_registry_is_pulled_with_its_login() {
    const PASSWORD: &str = "registry-pass-5b7c1e";
    let registry = PrivateRegistry::start("ocelot/busybox", "puller", PASSWORD)
        .await
        .unwrap();
    let host = registry.host();
    let image = format!("{host}/team/private-busybox");
    let cluster = Cluster::start().await.unwrap();
    let yml = format!(
        "image: {image}\nstages:\n  - name: pulled\n    script:\n      - echo \"ran in the pulled image\"\n"
    );
    let repo = cluster
        .git
        .create_repo("pulls", &[("ocelot.yml", yml.as_str())])
        .unwrap();
    cluster.add_repo("pulls", &repo.url).await.unwrap();

    // no login: the build errors, naming the registry and how to add a login
    let refused = cluster.ocelot(&["build", "-r", "pulls"]).await.unwrap();
    assert_eq!(refused.code, 3, "{}", refused.both());
    assert!(
        refused
            .both()
            .contains(&format!("authentication failed for registry {host}")),
        "{}",
        refused.both()
    );

    let added = cluster
        .ocelot_with_input(
            &[
                "creds",
                "add",
                "registry",
                "team-registry",
                "--prefix",
                "pu",
                "--registry",
                &host,
                "--username",
                "puller",
            ],
            PASSWORD.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(added.code, 0, "{}", added.both());
    let built = cluster.ocelot(&["build", "-r", "pulls"]).await.unwrap();
    let _ = tokio::process::Command::new("docker")
        .args(["rmi", "-f", &format!("{image}:latest")])
        .output()
        .await;
    assert_eq!(built.code, 0, "{}", built.both());
    assert!(
        built.stdout.contains("ran in the pulled image"),
        "{}",
        built.both()
    );
    for output in [&refused, &added, &built] {
        assert!(!output.both().contains(PASSWORD), "{}", output.both());
    }
}
