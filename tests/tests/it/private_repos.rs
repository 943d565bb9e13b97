//! Private repositories: a repo served over HTTP behind Basic authentication (`git
//! http-backend`) and one served over SSH (`sshd` running `git-shell`) build with the right
//! `vcs` / `ssh` credential, and fail cleanly, naming the repository, without it or with a
//! wrong one; an image in a private registry (registry API v2 behind Basic authentication)
//! is pulled with the `registry` login. Credential values never appear in any output.
//! A `vcs` token goes only to the host it is bound to (the same server under another name
//! gets nothing), and credentials in a repo URL are refused (old rows: never fetched).

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

/// `ocelot creds add registry NAME SCOPE... --registry HOST --username USER`, the password
/// on standard input.
async fn add_registry_login(
    cluster: &Cluster,
    name: &str,
    scope: &[&str],
    host: &str,
    username: &str,
    password: &str,
) -> CliOutput {
    let mut args = vec!["creds", "add", "registry", name];
    args.extend_from_slice(scope);
    args.extend_from_slice(&["--registry", host, "--username", username]);
    cluster
        .ocelot_with_input(&args, password.as_bytes())
        .await
        .unwrap()
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

    let added = add_registry_login(
        &cluster,
        "team-registry",
        &["--prefix", "pu"],
        &host,
        "puller",
        PASSWORD,
    )
    .await;
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

/// The attack: repo `thief` names the private image that repo `owner` pulled with its
/// registry login onto the same worker, hoping to run in it without any login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_image_pulled_for_one_repo_is_not_used_by_another() {
    const PASSWORD: &str = "registry-pass-9d2f4a";
    let registry = PrivateRegistry::start("ocelot/busybox", "owner", PASSWORD)
        .await
        .unwrap();
    let host = registry.host();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let image = format!("{host}/team/private-tools-{suffix}");
    let cluster = Cluster::start().await.unwrap();
    let yml = format!(
        "image: {image}\nstages:\n  - name: inside\n    script:\n      - echo \"ran in the private image\"\n"
    );
    for name in ["owner", "thief"] {
        let repo = cluster
            .git
            .create_repo(name, &[("ocelot.yml", yml.as_str())])
            .unwrap();
        cluster.add_repo(name, &repo.url).await.unwrap();
    }
    let added = add_registry_login(
        &cluster,
        "owner-registry",
        &["-r", "owner"],
        &host,
        "owner",
        PASSWORD,
    )
    .await;
    assert_eq!(added.code, 0, "{}", added.both());

    // the owner's build pulls the image with its login: it is now on the worker's host
    let owned = cluster.ocelot(&["build", "-r", "owner"]).await.unwrap();
    assert_eq!(owned.code, 0, "{}", owned.both());
    assert!(
        owned.stdout.contains("ran in the private image"),
        "{}",
        owned.both()
    );
    let present = tokio::process::Command::new("docker")
        .args(["image", "inspect", &format!("{image}:latest")])
        .output()
        .await
        .unwrap();
    assert!(
        present.status.success(),
        "the image is not on the Docker host"
    );

    // the thief has no login: refused, its script never ran in the image
    let stolen = cluster.ocelot(&["build", "-r", "thief"]).await.unwrap();
    assert_eq!(stolen.code, 3, "{}", stolen.both());
    assert!(
        stolen
            .both()
            .contains("was pulled on this worker with another build's login"),
        "{}",
        stolen.both()
    );
    assert!(
        !stolen.stdout.contains("ran in the private image"),
        "{}",
        stolen.both()
    );

    // the owner still builds (pulling again with its own login)
    let again = cluster.ocelot(&["build", "-r", "owner"]).await.unwrap();
    let _ = tokio::process::Command::new("docker")
        .args(["rmi", "-f", &format!("{image}:latest")])
        .output()
        .await;
    assert_eq!(again.code, 0, "{}", again.both());
    assert!(
        again.stdout.contains("ran in the private image"),
        "{}",
        again.both()
    );
    for output in [&added, &owned, &stolen, &again] {
        assert!(!output.both().contains(PASSWORD), "{}", output.both());
    }
}

/// Stores `value` as the vcs credential `NAME` of `repo` (user `builder`), with `--host`
/// when given.
async fn add_bound_token(
    cluster: &Cluster,
    name: &str,
    repo: &str,
    host: Option<&str>,
    value: &[u8],
) -> CliOutput {
    let mut args = vec![
        "creds",
        "add",
        "vcs",
        name,
        "-r",
        repo,
        "--username",
        "builder",
    ];
    if let Some(host) = host {
        args.extend(["--host", host]);
    }
    cluster.ocelot_with_input(&args, value).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vcs_token_is_sent_to_its_own_host_only() {
    let cluster = Cluster::start().await.unwrap();
    cluster
        .git
        .create_repo("private-http", &[("ocelot.yml", YML), ("notes.txt", NOTES)])
        .unwrap();
    let server = PrivateHttpGit::start(cluster.git.root(), "builder", TOKEN)
        .await
        .unwrap();
    // the same server under two host names: a repo that names `localhost`, a token bound to
    // 127.0.0.1. To the token they are different hosts.
    let url = server.url_on("localhost", "private-http");
    cluster.add_repo("elsewhere", &url).await.unwrap();
    let added = add_bound_token(
        &cluster,
        "tok",
        "elsewhere",
        Some("127.0.0.1"),
        TOKEN.as_bytes(),
    )
    .await;
    assert_eq!(added.code, 0, "{}", added.both());
    assert!(
        added.stderr.contains("sent to 127.0.0.1 only"),
        "{}",
        added.both()
    );
    let refused = build_refused(&cluster, "elsewhere", &url).await;
    assert!(
        refused
            .stderr
            .contains("none is configured for this repository"),
        "{}",
        refused.both()
    );
    assert!(server.refused() > 0, "the server was never asked");
    assert_eq!(
        server.offered(),
        0,
        "a token bound to 127.0.0.1 was sent to localhost"
    );

    // a token for a prefix names its host; a host is a host, not a URL
    for args in [
        vec!["creds", "add", "vcs", "wide", "--prefix", "team/"],
        vec![
            "creds",
            "add",
            "vcs",
            "wide",
            "--prefix",
            "team/",
            "--host",
            "https://x.example/",
        ],
    ] {
        let no_host = cluster
            .ocelot_with_input(&args, TOKEN.as_bytes())
            .await
            .unwrap();
        assert_eq!(no_host.code, 6, "{}", no_host.both());
        assert!(no_host.stderr.contains("host"), "{}", no_host.both());
    }

    // bound to the repo's host, the same token builds
    let rebound = add_bound_token(
        &cluster,
        "tok",
        "elsewhere",
        Some("LocalHost"),
        TOKEN.as_bytes(),
    )
    .await;
    assert_eq!(rebound.code, 0, "{}", rebound.both());
    let built = cluster.ocelot(&["build", "-r", "elsewhere"]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    assert!(built.stdout.contains(NOTES), "{}", built.both());
    assert!(server.offered() > 0);

    // by default a repo's token is bound to the host of the repo's URL
    cluster
        .add_repo("direct", &server.url("private-http"))
        .await
        .unwrap();
    let derived = add_bound_token(&cluster, "tok", "direct", None, TOKEN.as_bytes()).await;
    assert_eq!(derived.code, 0, "{}", derived.both());
    assert!(
        derived.stderr.contains("sent to 127.0.0.1 only"),
        "{}",
        derived.both()
    );
    let listed = cluster.ocelot(&["creds", "list"]).await.unwrap();
    assert!(
        listed.stdout.contains("host 127.0.0.1") && listed.stdout.contains("host localhost"),
        "{}",
        listed.both()
    );

    // a token stored before hosts existed goes nowhere; the upgrade (V12) binds a repo's
    // token to its repo's host, and it builds again
    let (client, connection) =
        tokio_postgres::connect(&cluster.database.url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "UPDATE credentials SET details = details - 'host' WHERE kind = 'vcs' AND scope = 'direct'",
            &[],
        )
        .await
        .unwrap();
    let offered = server.offered();
    let legacy = cluster.ocelot(&["creds", "list"]).await.unwrap();
    assert!(legacy.stdout.contains("NO HOST"), "{}", legacy.both());
    build_refused(&cluster, "direct", &server.url("private-http")).await;
    assert_eq!(server.offered(), offered, "an unbound token was sent");
    let migration = include_str!("../../../core/src/store/migrations/V12__token_repo_scopes.sql");
    let binding = &migration[migration.find("UPDATE credentials").unwrap()..];
    client.batch_execute(binding).await.unwrap();
    let rebuilt = cluster.ocelot(&["build", "-r", "direct"]).await.unwrap();
    assert_eq!(rebuilt.code, 0, "{}", rebuilt.both());
    for output in [
        &added, &refused, &rebound, &built, &derived, &listed, &rebuilt,
    ] {
        assert!(!output.both().contains(TOKEN), "{}", output.both());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_a_repo_url_are_refused_and_old_ones_never_used() {
    let cluster = Cluster::start().await.unwrap();
    let repo = cluster
        .git
        .create_repo("private-http", &[("ocelot.yml", YML), ("notes.txt", NOTES)])
        .unwrap();
    let server = PrivateHttpGit::start(cluster.git.root(), "builder", TOKEN)
        .await
        .unwrap();
    let leaky = server
        .url("private-http")
        .replace("http://", &format!("http://builder:{TOKEN}@"));
    let token_as_user = server
        .url("private-http")
        .replace("http://", &format!("http://{TOKEN}@"));
    for url in [&leaky, &token_as_user] {
        let refused = cluster
            .ocelot(&["repos", "add", "leaky", url])
            .await
            .unwrap();
        assert_eq!(refused.code, 6, "{}", refused.both());
        assert!(
            refused.stderr.contains("carries credentials")
                && refused.stderr.contains("ocelot creds add vcs"),
            "{}",
            refused.both()
        );
        assert!(!refused.both().contains(TOKEN), "{}", refused.both());
    }
    // an SSH user name is no credential
    for (name, url) in [
        ("ssh-url", "ssh://git@127.0.0.1:1/app.git"),
        ("scp-like", "git@127.0.0.1:app.git"),
    ] {
        let added = cluster.ocelot(&["repos", "add", name, url]).await.unwrap();
        assert_eq!(added.code, 0, "{}", added.both());
    }

    // a row registered before the refusal: listed without its token, never fetched
    let (client, connection) =
        tokio_postgres::connect(&cluster.database.url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO repos (name, url, default_branch) VALUES ('legacy', $1, 'main')",
            &[&leaky],
        )
        .await
        .unwrap();
    let listed = cluster.ocelot(&["repos", "list", "--json"]).await.unwrap();
    assert_eq!(listed.code, 0, "{}", listed.both());
    assert!(
        listed.stdout.contains("legacy") && listed.stdout.contains("***@"),
        "{}",
        listed.both()
    );
    let build = cluster.ocelot(&["build", "-r", "legacy"]).await.unwrap();
    assert_eq!(build.code, 6, "{}", build.both());
    assert!(
        build.stderr.contains("carries credentials"),
        "{}",
        build.both()
    );
    for output in [&listed, &build] {
        assert!(!output.both().contains(TOKEN), "{}", output.both());
    }
    assert_eq!(
        server.offered(),
        0,
        "the legacy URL's credentials were sent"
    );
    assert_eq!(server.refused(), 0, "the legacy URL was fetched");

    // the way it should be: the URL without credentials, the token as a credential
    cluster
        .add_repo("private-http", &server.url("private-http"))
        .await
        .unwrap();
    let added = add_bound_token(&cluster, "tok", "private-http", None, TOKEN.as_bytes()).await;
    assert_eq!(added.code, 0, "{}", added.both());
    let built = cluster
        .ocelot(&["build", "-r", "private-http"])
        .await
        .unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    assert!(built.stdout.contains(NOTES), "{}", built.both());

    // a checkout whose remote URL carries the token: `ocelot build` finds the repo by the URL
    // without it, and the token never leaves the machine
    let checkout = cluster.dir.path().join("checkout");
    repo.clone_to(&checkout).unwrap();
    let set = std::process::Command::new("git")
        .args(["remote", "set-url", "origin", &leaky])
        .current_dir(&checkout)
        .status()
        .unwrap();
    assert!(set.success());
    let from_checkout = cluster.ocelot_in(&checkout, &["build"]).await.unwrap();
    assert_eq!(from_checkout.code, 0, "{}", from_checkout.both());
    assert!(
        from_checkout.stdout.contains(NOTES),
        "{}",
        from_checkout.both()
    );
    assert!(
        !from_checkout.both().contains(TOKEN),
        "{}",
        from_checkout.both()
    );
}
