//! Credentials: an `env` secret reaches the build's environment, and its value (and its
//! base64 and URL encodings, also when written in pieces or over two lines) appears nowhere:
//! not in the CLI's output, not in the stored log, not in a replay; listings never show it.
//! A wrong master key is refused with a clear error.

use crate::{queued_build_id, repo_with};
use ocelot_core::secrets::cipher::MasterKey;
use ocelot_core::secrets::{PostgresSecrets, SecretError};
use ocelot_core::store::Store;
use ocelot_tests::cluster::Cluster;

const SECRET: &str = "s3cr3t/V4lue+9f8e7d6c5b4aX";

const YML: &str = r#"image: ocelot/busybox
stages:
  - name: leak
    script:
      - echo "plain $API_TOKEN end"
      - printf '%s' "$API_TOKEN" | base64
      - printf 'pieces=%s' "${API_TOKEN%??????????}"; printf '%s done\n' "${API_TOKEN#${API_TOKEN%??????????}}"
      - echo "${API_TOKEN%??????????}"; echo "${API_TOKEN#${API_TOKEN%??????????}} was split over two lines"
      - echo "url $(printf %s "$API_TOKEN" | sed 's|/|%2F|g; s|+|%2B|g')" >&2
      - test "$(printf %s "$API_TOKEN" | wc -c)" -eq 26
      - echo "length ok"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_secret_reaches_the_build_and_never_its_log() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(&cluster, "masked", YML, &[]).await;
    let short = cluster
        .ocelot_with_input(
            &["creds", "add", "env", "API_TOKEN", "-r", "masked"],
            b"abc",
        )
        .await
        .unwrap();
    assert_eq!(short.code, 6, "{}", short.both());
    assert!(short.stderr.contains("shorter than 4"), "{}", short.both());
    let added = cluster
        .ocelot_with_input(
            &["creds", "add", "env", "API_TOKEN", "-r", "masked"],
            format!("{SECRET}\n").as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(added.code, 0, "{}", added.both());
    assert!(!added.both().contains(SECRET));

    let built = cluster.ocelot(&["build", "-r", "masked"]).await.unwrap();
    assert_eq!(built.code, 0, "{}", built.both());
    assert!(built.stdout.contains("length ok"), "{}", built.both());
    assert!(built.stdout.contains("plain *** end"), "{}", built.both());
    assert!(
        built
            .stdout
            .contains("secrets in the environment: API_TOKEN"),
        "{}",
        built.both()
    );
    let fragments = [SECRET, &SECRET[..16], &SECRET[10..]];
    let encoded = ocelot_core::secrets::mask::Masker::new([SECRET]);
    for text in [&built.stdout, &built.stderr] {
        for fragment in fragments {
            assert!(
                !text.contains(fragment),
                "`{fragment}` leaked:\n{}",
                built.both()
            );
        }
        assert_eq!(
            encoded.mask_line(text),
            *text,
            "an encoding of the secret leaked:\n{text}"
        );
    }

    let build_id = queued_build_id(&built);
    let build = cluster.store.get_build(build_id).await.unwrap();
    let stored: String = cluster
        .store
        .lines(build_id, build.attempt)
        .await
        .unwrap()
        .iter()
        .map(|l| format!("{}\n", l.text))
        .collect();
    assert!(
        !stored.contains(SECRET) && !stored.contains(&SECRET[..16]),
        "{stored}"
    );
    let replay = cluster
        .ocelot(&["watch", &build_id.to_string()])
        .await
        .unwrap();
    assert_eq!(replay.stdout, built.stdout);

    let listed = cluster.ocelot(&["creds", "list", "--json"]).await.unwrap();
    assert_eq!(listed.code, 0, "{}", listed.both());
    assert!(listed.stdout.contains("API_TOKEN") && listed.stdout.contains("repo masked"));
    assert!(!listed.stdout.contains(SECRET));
    let (client, connection) =
        tokio_postgres::connect(&cluster.database.url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let sealed: Vec<u8> = client
        .query_one(
            "SELECT ciphertext FROM credentials WHERE name = 'API_TOKEN'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !String::from_utf8_lossy(&sealed).contains(SECRET),
        "stored in the clear"
    );

    let removed = cluster
        .ocelot(&["creds", "remove", "env", "API_TOKEN", "-r", "masked"])
        .await
        .unwrap();
    assert_eq!(removed.code, 0, "{}", removed.both());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_master_key_is_refused_at_start_up() {
    let cluster = Cluster::start().await.unwrap();
    repo_with(
        &cluster,
        "keyed",
        "image: ocelot/busybox\nstages:\n  - name: s\n    script: [true]\n",
        &[],
    )
    .await;
    let added = cluster
        .ocelot_with_input(
            &["creds", "add", "env", "TOKEN", "--prefix", "ke"],
            b"value-1234",
        )
        .await
        .unwrap();
    assert_eq!(added.code, 0, "{}", added.both());
    let store = Store::connect(&cluster.database.url).await.unwrap();
    let wrong = MasterKey::from_hex(&MasterKey::generate_hex().unwrap()).unwrap();
    let refused = PostgresSecrets::new(store, Some(wrong)).await.unwrap_err();
    assert!(
        matches!(refused, SecretError::WrongMasterKey { .. }),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("not the one the stored credentials were encrypted with")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_keeps_every_secret_readable() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::start().await.unwrap();
    repo_with(
        &cluster,
        "rotated",
        "image: ocelot/busybox\nstages:\n  - name: s\n    script: [true]\n",
        &[],
    )
    .await;
    for (name, value) in [("ONE", "first-value-1"), ("TWO", "second-value-2")] {
        let added = cluster
            .ocelot_with_input(
                &["creds", "add", "env", name, "-r", "rotated"],
                value.as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(added.code, 0, "{}", added.both());
    }
    let old_file = cluster.dir.path().join("master.key");
    let new_file = cluster.dir.path().join("new.key");
    std::fs::write(&new_file, MasterKey::generate_hex().unwrap()).unwrap();
    std::fs::set_permissions(&new_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rotate = tokio::process::Command::new(
        ocelot_tests::cluster::bin_dir()
            .unwrap()
            .join("ocelot-admin"),
    )
    .args(["rotate-key", "--new-key-file"])
    .arg(&new_file)
    .env("OCELOT_DATABASE_URL", &cluster.database.url)
    .env("OCELOT_MASTER_KEY_FILE", &old_file)
    .output()
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&rotate.stderr);
    assert!(rotate.status.success(), "{said}");
    assert!(said.contains("re-encrypted 2 credential(s)"), "{said}");

    let store = Store::connect(&cluster.database.url).await.unwrap();
    let new = MasterKey::from_file(&new_file).unwrap();
    let old = MasterKey::from_file(&old_file).unwrap();
    use ocelot_core::secrets::SecretStore;
    let secrets = PostgresSecrets::new(store.clone(), Some(new))
        .await
        .unwrap();
    let mut values: Vec<String> = secrets
        .for_repo("rotated")
        .await
        .unwrap()
        .iter()
        .map(|c| c.value.expose().to_string())
        .collect();
    values.sort();
    assert_eq!(values, vec!["first-value-1", "second-value-2"]);
    assert!(matches!(
        PostgresSecrets::new(store, Some(old)).await,
        Err(SecretError::WrongMasterKey { .. })
    ));
}

/// The storage's key can live in the secret store: `ocelot creds add storage NAME --prefix ''
/// --username KEY_ID` (refused with any other scope or without the key id), read by
/// `--storage-credential NAME`; a build never gets it; an unknown name says how to add it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_key_comes_from_a_storage_credential() {
    use ocelot_core::secrets::SecretStore;
    use ocelot_core::storage::{Storage, StorageArgs};
    let cluster = Cluster::start_with(vec![]).await.unwrap();
    let add = |args: &'static [&'static str]| {
        let cluster = &cluster;
        async move {
            cluster
                .ocelot_with_input(args, b"the-secret-key-42")
                .await
                .unwrap()
        }
    };
    let scoped = add(&[
        "creds",
        "add",
        "storage",
        "s3",
        "--prefix",
        "team/",
        "--username",
        "AKIA1",
    ])
    .await;
    assert_ne!(scoped.code, 0, "{}", scoped.both());
    assert!(scoped.stderr.contains("--prefix ''"), "{}", scoped.both());
    let no_id = add(&["creds", "add", "storage", "s3", "--prefix", ""]).await;
    assert_ne!(no_id.code, 0, "{}", no_id.both());
    assert!(no_id.stderr.contains("access key id"), "{}", no_id.both());
    let added = add(&[
        "creds",
        "add",
        "storage",
        "s3",
        "--prefix",
        "",
        "--username",
        "AKIA1",
    ])
    .await;
    assert_eq!(added.code, 0, "{}", added.both());

    let key = MasterKey::from_file(&cluster.dir.path().join("master.key")).unwrap();
    let secrets = PostgresSecrets::new(cluster.store.clone(), Some(key))
        .await
        .unwrap();
    let s3 = ocelot_tests::s3::S3Server::start().await.unwrap();
    let mut args = s3.storage_args("from-credential");
    args.access_key_id = None;
    args.secret_access_key = None;
    args.credential = Some("s3".to_string());
    let resolved: StorageArgs = args.clone().with_credential(&secrets).await.unwrap();
    assert_eq!(resolved.access_key_id.as_deref(), Some("AKIA1"));
    assert_eq!(
        resolved.secret_access_key.as_deref(),
        Some("the-secret-key-42")
    );
    let storage = Storage::open(&resolved).unwrap();
    let mut writer = storage.writer("probe");
    writer.write(b"x").await.unwrap();
    writer.finish().await.unwrap();
    assert_eq!(storage.list("").await.unwrap().len(), 1);

    // a build's credentials never hand it out: it is no env, file or login
    let build_credentials =
        ocelot_core::secrets::BuildCredentials::new(secrets.for_repo("app").await.unwrap());
    assert!(build_credentials.env().is_empty());

    args.credential = Some("other".to_string());
    let missing = args
        .with_credential(&secrets)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("ocelot creds add storage other --prefix ''"),
        "{missing}"
    );
}
