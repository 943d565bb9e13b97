//! API tokens: every RPC needs one; a missing, unknown, revoked or too weakly scoped token is
//! refused with a clear message and exit code 7. Tokens are made by `ocelot-admin token
//! create` (the first) and `ocelot token create` (by admins), listed without values, revoked.
//! The admin serves TLS when given a certificate, and the CLI trusts it through `--tls-ca`.
//! Wrong tokens cost the database no write; the CLI keeps its token off plain `http://` to
//! other machines.

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

/// Every row of `api_tokens` as Postgres keeps it: a write of any kind (an update of
/// `last_used_at`, an insert) changes a row's `ctid`/`xmin` or the set of rows.
async fn token_rows(client: &tokio_postgres::Client) -> Vec<(i64, String, String)> {
    client
        .query(
            "SELECT id, ctid::text, xmin::text FROM api_tokens ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// The next transaction id Postgres will hand out: it moves only when something writes.
async fn next_xid(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_with_a_wrong_token_cost_no_database_write() {
    let cluster = Cluster::start().await.unwrap();
    let (client, connection) =
        tokio_postgres::connect(&cluster.database.url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let reader = cluster
        .store
        .create_token("reader", TokenScope::Read)
        .await
        .unwrap();
    let revoked = cluster
        .store
        .create_token("gone", TokenScope::Admin)
        .await
        .unwrap();
    cluster.store.revoke_token("gone").await.unwrap();

    let rows_before = token_rows(&client).await;
    let xid_before = next_xid(&client).await;
    const CALLS: usize = 30;
    for call in 0..CALLS {
        let token = match call % 3 {
            0 => "ocl_0000000000000000000000000000000000000000".to_string(),
            1 => revoked.clone(),
            _ => format!("{reader}x"),
        };
        let refused = cluster
            .ocelot_with_token(&token, &["status"])
            .await
            .unwrap();
        assert_eq!(refused.code, 7, "{}", refused.both());
    }
    assert_eq!(
        token_rows(&client).await,
        rows_before,
        "a refused call wrote to api_tokens"
    );
    let spent = next_xid(&client).await - xid_before;
    assert!(
        spent < CALLS as i64,
        "{CALLS} refused calls used {spent} write transactions"
    );

    // a right token is marked used once, not once per call
    let first = cluster
        .ocelot_with_token(&reader, &["repos", "list"])
        .await
        .unwrap();
    assert_eq!(first.code, 0, "{}", first.both());
    let marked = token_rows(&client).await;
    assert_ne!(marked, rows_before, "the first call marks the token used");
    let started = std::time::Instant::now();
    let mut changes = 0;
    let mut last = marked;
    for _ in 0..10 {
        let again = cluster
            .ocelot_with_token(&reader, &["repos", "list"])
            .await
            .unwrap();
        assert_eq!(again.code, 0, "{}", again.both());
        let now = token_rows(&client).await;
        if now != last {
            changes += 1;
        }
        last = now;
    }
    // at most once a minute: a slow machine may cross one minute boundary per minute taken
    let allowed = started.elapsed().as_secs() / 60;
    assert!(
        changes <= allowed,
        "10 calls within {:?} updated the token {changes} times",
        started.elapsed()
    );
    let listed = cluster.ocelot(&["token", "list", "--json"]).await.unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let reader_row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "reader")
        .unwrap();
    assert_ne!(reader_row["last_used_at_ms"], 0, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_no_token_over_plain_http_off_this_machine() {
    let cluster = Cluster::start().await.unwrap();
    let ocelot = bin_dir().unwrap().join("ocelot");
    // 192.0.2.1 (TEST-NET-1) is never contacted: the refusal comes before any connection
    for (address, extra) in [
        ("http://192.0.2.1:50051", None),
        ("192.0.2.1:50051", None),
        ("http://ci.example:50051", None),
        (
            "http://192.0.2.1:50051",
            Some(("OCELOT_ALLOW_INSECURE", "0")),
        ),
    ] {
        let mut command = tokio::process::Command::new(&ocelot);
        command
            .args(["repos", "list", "--admin", address])
            .env("OCELOT_TOKEN", &cluster.token)
            .env_remove("OCELOT_TLS_CA")
            .env_remove("OCELOT_ALLOW_INSECURE")
            .kill_on_drop(true);
        if let Some((name, value)) = extra {
            command.env(name, value);
        }
        let output = command.output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{address}: {stderr}");
        assert!(
            stderr.contains("refusing to send the API token over plain http://")
                && stderr.contains("--allow-insecure")
                && stderr.contains("--tls-ca"),
            "{address}: {stderr}"
        );
        assert!(!stderr.contains("cannot reach"), "{address}: {stderr}");
        assert!(!stderr.contains(&cluster.token), "{stderr}");
    }
    // loopback needs no flag, and the flag (from its variable) is understood
    for allow in [None, Some("1")] {
        let mut command = tokio::process::Command::new(&ocelot);
        command
            .args(["repos", "list", "--admin", &cluster.admin_url])
            .env("OCELOT_TOKEN", &cluster.token)
            .env_remove("OCELOT_ALLOW_INSECURE")
            .kill_on_drop(true);
        if let Some(value) = allow {
            command.env("OCELOT_ALLOW_INSECURE", value);
        }
        let output = command.output().await.unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let localhost = cluster.admin_url.replace("127.0.0.1", "localhost");
    let by_name = tokio::process::Command::new(&ocelot)
        .args(["repos", "list", "--admin", &localhost])
        .env("OCELOT_TOKEN", &cluster.token)
        .env_remove("OCELOT_ALLOW_INSECURE")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_ne!(
        by_name.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&by_name.stderr)
    );
}
