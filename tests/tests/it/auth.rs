//! API tokens: every RPC needs one; a missing, unknown, revoked or too weakly scoped token is
//! refused with a clear message and exit code 7. Tokens are made by `ocelot-admin token
//! create` (the first) and `ocelot token create` (by admins), listed without values, revoked.
//! The admin serves TLS when given a certificate, and the CLI trusts it through `--tls-ca`.

use ocelot_core::auth::TokenScope;
use ocelot_tests::cluster::{Cluster, bin_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_scoped_and_revocable() {
    let cluster = Cluster::start().await.unwrap();
    let repo = cluster
        .git
        .create_repo(
            "guarded",
            &[(
                "ocelot.yml",
                "image: ocelot/busybox\nstages:\n  - name: s\n    script: [true]\n",
            )],
        )
        .unwrap();
    cluster.add_repo("guarded", &repo.url).await.unwrap();

    let none = cluster.ocelot_with_token("", &["status"]).await.unwrap();
    assert_eq!(none.code, 7, "{}", none.both());
    assert!(
        none.stderr.contains("unauthenticated: no API token"),
        "{}",
        none.both()
    );
    let forged = cluster
        .ocelot_with_token(
            "ocl_0000000000000000000000000000000000000000",
            &["repos", "list"],
        )
        .await
        .unwrap();
    assert_eq!(forged.code, 7, "{}", forged.both());
    assert!(
        forged.stderr.contains("unknown or revoked"),
        "{}",
        forged.both()
    );

    let read = cluster
        .store
        .create_token("reader", TokenScope::Read)
        .await
        .unwrap();
    let listed = cluster
        .ocelot_with_token(&read, &["repos", "list", "--json"])
        .await
        .unwrap();
    assert_eq!(listed.code, 0, "{}", listed.both());
    assert!(listed.stdout.contains("guarded"));
    for args in [
        vec!["build", "-r", "guarded", "-b", "main"],
        vec!["repos", "add", "other", "git://127.0.0.1:1/x.git"],
        vec!["creds", "list"],
        vec!["token", "list"],
    ] {
        let refused = cluster.ocelot_with_token(&read, &args).await.unwrap();
        assert_eq!(refused.code, 7, "{args:?}: {}", refused.both());
        assert!(
            refused.stderr.contains("has the scope `read`"),
            "{}",
            refused.both()
        );
    }

    // an admin makes a trigger token through the API; it can list but not manage repos
    let created = cluster
        .ocelot(&["token", "create", "--name", "ci", "--scope", "trigger"])
        .await
        .unwrap();
    assert_eq!(created.code, 0, "{}", created.both());
    let trigger = created.stdout.trim().to_string();
    assert!(trigger.starts_with("ocl_"), "{}", created.both());
    let tokens = cluster.ocelot(&["token", "list", "--json"]).await.unwrap();
    assert!(
        tokens.stdout.contains("\"ci\"") && !tokens.stdout.contains(&trigger),
        "{}",
        tokens.both()
    );
    let status = cluster
        .ocelot_with_token(&trigger, &["status"])
        .await
        .unwrap();
    assert_eq!(status.code, 0, "{}", status.both());
    let no_admin = cluster
        .ocelot_with_token(&trigger, &["repos", "remove", "guarded"])
        .await
        .unwrap();
    assert_eq!(no_admin.code, 7, "{}", no_admin.both());

    let revoked = cluster.ocelot(&["token", "revoke", "ci"]).await.unwrap();
    assert_eq!(revoked.code, 0, "{}", revoked.both());
    let after = cluster
        .ocelot_with_token(&trigger, &["status"])
        .await
        .unwrap();
    assert_eq!(after.code, 7, "{}", after.both());
    assert!(
        after.stderr.contains("unknown or revoked"),
        "{}",
        after.both()
    );

    // the first token comes from the server side
    let output = tokio::process::Command::new(bin_dir().unwrap().join("ocelot-admin"))
        .args(["token", "create", "--name", "first", "--scope", "read"])
        .env("OCELOT_DATABASE_URL", &cluster.database.url)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let first = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let with_first = cluster
        .ocelot_with_token(&first, &["repos", "list"])
        .await
        .unwrap();
    assert_eq!(with_first.code, 0, "{}", with_first.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_serves_tls_and_the_cli_trusts_it_only_through_its_ca() {
    let cluster = Cluster::start_spec(ocelot_tests::cluster::ClusterSpec {
        tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(cluster.admin_url.starts_with("https://"));
    let repo = cluster
        .git
        .create_repo(
            "tls",
            &[(
                "ocelot.yml",
                "image: ocelot/busybox\nstages:\n  - name: a\n    script: [echo over-tls]\n",
            )],
        )
        .unwrap();
    cluster.add_repo("tls", &repo.url).await.unwrap();
    let built = cluster.ocelot(&["build", "-r", "tls"]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    assert!(built.stdout.contains("over-tls"), "{}", built.both());

    // without the CA, the admin's certificate is not trusted: unreachable, saying why
    let ca = cluster.tls_ca.clone().unwrap();
    let untrusted = cluster
        .ocelot(&["repos", "list", "--tls-ca", "/dev/null"])
        .await
        .unwrap();
    assert_eq!(untrusted.code, 2, "{}", untrusted.both());
    assert!(
        untrusted.stderr.contains("is not a PEM certificate"),
        "{}",
        untrusted.both()
    );
    let other_ca =
        ocelot_tests::tls::TestCertificates::generate(&ca.parent().unwrap().join("other")).unwrap();
    let other = other_ca.ca.display().to_string();
    let untrusted = cluster
        .ocelot(&["repos", "list", "--tls-ca", &other])
        .await
        .unwrap();
    assert_eq!(untrusted.code, 5, "{}", untrusted.both());
    assert!(
        untrusted.stderr.contains("certificate"),
        "{}",
        untrusted.both()
    );
    // a CA is only for an https:// admin: a plain address with one is a usage error
    let plain = cluster
        .ocelot(&[
            "repos",
            "list",
            "--admin",
            &cluster.admin_url.replace("https://", "http://"),
        ])
        .await
        .unwrap();
    assert_eq!(plain.code, 2, "{}", plain.both());
    assert!(
        plain.stderr.contains("--tls-ca is for an https:// admin"),
        "{}",
        plain.both()
    );
}
