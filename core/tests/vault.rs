//! `VaultSecrets` against HTTP exchanges recorded from Vault's API documentation
//! (`tests/exchanges/vault/`), replayed by a loopback server that fails the test when a
//! request differs from the recording (method, path, token header, JSON body). No Vault
//! server runs here.

use ocelot_core::secrets::select::{SecretBackend, Secrets};
use ocelot_core::secrets::vault::{VaultAuth, VaultConfig, VaultSecrets};
use ocelot_core::secrets::{
    CredentialDetails, CredentialKind, Scope, SecretError, SecretStore, SecretValue,
};
use ocelot_core::store::StoreError;
use ocelot_http_replay::{Exchange, Replay, recording};
use std::time::{Duration, SystemTime};

const TOKEN: &str = "hvs.CAESIOcelotTestTokenNotARealOne0000000";
const ROLE_ID: &str = "59d6d1ca-47bb-4e7e-a40b-8be3bc5a0ba8";
const SECRET_ID: &str = "84896a0c-1347-aa90-a4f6-aca8b7558780";
const APPROLE_TOKEN: &str = "5b1a0318-679c-9c45-e5c6-d1b9a9035d49";

fn recordings(names: &[&str]) -> Vec<Exchange> {
    names
        .iter()
        .flat_map(|name| recording!("vault", name))
        .collect()
}

fn approle() -> VaultAuth {
    VaultAuth::AppRole {
        mount: "approle".into(),
        role_id: ROLE_ID.into(),
        secret_id: SECRET_ID.into(),
    }
}

async fn with_token(replay: &Replay) -> VaultSecrets {
    VaultSecrets::connect(VaultConfig::new(
        &replay.url(),
        VaultAuth::Token(TOKEN.into()),
    ))
    .await
    .expect("a token needs no request")
}

fn time(rfc3339: &str) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("an RFC 3339 time")
        .into()
}

fn value(text: &str) -> SecretValue {
    SecretValue::new(text.into())
}

fn acme_app() -> Scope {
    Scope::Repo("acme/app".into())
}

fn ci_bot() -> CredentialDetails {
    CredentialDetails {
        username: Some("ci-bot".into()),
        host: Some("github.com".into()),
        ..CredentialDetails::default()
    }
}

#[tokio::test]
async fn add_replace_list_read_and_remove_with_a_token() {
    let replay = Replay::start(recordings(&[
        "add_new",
        "add_replace",
        "add_vcs",
        "list",
        "for_repo",
        "remove",
        "remove_missing",
    ]))
    .await;
    let vault = with_token(&replay).await;
    let none = CredentialDetails::default();

    vault
        .add(
            "API_TOKEN",
            CredentialKind::Env,
            &acme_app(),
            &none,
            &value("tok-1234-abcd"),
        )
        .await
        .unwrap();
    // adding again replaces, keeping the first creation time
    vault
        .add(
            "API_TOKEN",
            CredentialKind::Env,
            &acme_app(),
            &none,
            &value("tok-5678-efgh"),
        )
        .await
        .unwrap();
    vault
        .add(
            "github",
            CredentialKind::Vcs,
            &Scope::Prefix("acme/".into()),
            &ci_bot(),
            &value("ghp_0123456789abcdef"),
        )
        .await
        .unwrap();

    let listed = vault.list().await.unwrap();
    let shown = format!("{listed:?}");
    for secret in ["tok-5678-efgh", "ghp_0123456789abcdef"] {
        assert!(!shown.contains(secret), "a listing shows a value: {shown}");
    }
    assert_eq!(listed.len(), 2, "{shown}");
    // ordered as the Postgres store orders them: scope kind, scope, kind, name
    assert_eq!(
        (listed[0].name.as_str(), listed[0].kind, &listed[0].scope),
        (
            "github",
            CredentialKind::Vcs,
            &Scope::Prefix("acme/".into())
        )
    );
    assert_eq!(listed[0].details, ci_bot());
    assert_eq!(listed[0].created_at, time("2018-03-22T02:36:43.986212308Z"));
    assert_eq!(listed[0].updated_at, listed[0].created_at);
    assert_eq!(
        (listed[1].name.as_str(), listed[1].kind, &listed[1].scope),
        ("API_TOKEN", CredentialKind::Env, &acme_app())
    );
    assert_eq!(listed[1].details, CredentialDetails::default());
    assert_eq!(listed[1].created_at, time("2018-03-22T02:24:06.945319214Z"));
    assert_eq!(listed[1].updated_at, time("2018-03-22T02:36:33.954880664Z"));

    let build = vault.for_repo("acme/app").await.unwrap();
    let read: Vec<(&str, &str)> = build
        .iter()
        .map(|c| (c.info.name.as_str(), c.value.expose()))
        .collect();
    // the repo's own credential first, then the prefix's
    assert_eq!(
        read,
        [
            ("API_TOKEN", "tok-5678-efgh"),
            ("github", "ghp_0123456789abcdef")
        ]
    );
    assert_eq!(build[1].info.details.username.as_deref(), Some("ci-bot"));

    vault
        .remove("API_TOKEN", CredentialKind::Env, &acme_app())
        .await
        .unwrap();
    let missing = vault
        .remove("GONE", CredentialKind::Env, &acme_app())
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, SecretError::Store(StoreError::NotFound(_))),
        "{missing:?}"
    );
    assert_eq!(
        missing.to_string(),
        "credential env `GONE` (repo acme/app) not found"
    );
    replay.finish();
}

#[tokio::test]
async fn nothing_under_the_prefix_lists_nothing_and_serves_no_build() {
    let replay = Replay::start(recordings(&["list_empty", "list_empty"])).await;
    // through the enum the services hold
    let secrets = Secrets::from(with_token(&replay).await);
    assert_eq!(secrets.backend(), SecretBackend::Vault);
    assert!(secrets.list().await.unwrap().is_empty());
    assert!(secrets.for_repo("acme/app").await.unwrap().is_empty());
    replay.finish();
}

#[tokio::test]
async fn a_file_credential_keeps_its_path_and_its_content_as_it_is() {
    let replay = Replay::start(recordings(&["add_file"])).await;
    let vault = with_token(&replay).await;
    let at = CredentialDetails {
        path: Some("~/.kube/config".into()),
        ..CredentialDetails::default()
    };
    vault
        .add(
            "kubeconfig",
            CredentialKind::File,
            &acme_app(),
            &at,
            &value("apiVersion: v1\nusers:\n- name: ci\n"),
        )
        .await
        .unwrap();
    replay.finish();
}

#[tokio::test]
async fn invalid_credentials_are_refused_before_any_request() {
    let replay = Replay::start(Vec::new()).await;
    let vault = with_token(&replay).await;
    let none = CredentialDetails::default();
    let bad_name = vault
        .add(
            "1NOT-ENV",
            CredentialKind::Env,
            &acme_app(),
            &none,
            &value("long-enough"),
        )
        .await
        .unwrap_err();
    assert!(matches!(bad_name, SecretError::Invalid(_)), "{bad_name:?}");
    let too_short = vault
        .add("X", CredentialKind::Env, &acme_app(), &none, &value("abc"))
        .await
        .unwrap_err();
    assert!(
        matches!(too_short, SecretError::Invalid(_)),
        "{too_short:?}"
    );
    let registry_without_user = vault
        .add(
            "hub",
            CredentialKind::Registry,
            &acme_app(),
            &none,
            &value("long-enough"),
        )
        .await
        .unwrap_err();
    assert!(
        registry_without_user.to_string().contains("username"),
        "{registry_without_user}"
    );
    let file_without_path = vault
        .add(
            "kubeconfig",
            CredentialKind::File,
            &acme_app(),
            &none,
            &value("apiVersion: v1"),
        )
        .await
        .unwrap_err();
    assert!(
        file_without_path.to_string().contains("--path"),
        "{file_without_path}"
    );
    assert!(replay.served().is_empty());
    replay.finish();
}

#[tokio::test]
async fn a_refusal_says_what_and_why_without_the_token() {
    let replay = Replay::start(recordings(&["forbidden"])).await;
    let vault = with_token(&replay).await;
    let error = vault.list().await.unwrap_err();
    assert!(matches!(error, SecretError::Backend(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "Vault at {} refused to list secret/metadata/ocelot: 403 permission denied (the token must be valid and its policy allow",
            replay.url()
        )),
        "{message}"
    );
    assert!(!message.contains(TOKEN) && !format!("{error:?}").contains(TOKEN));
    assert!(!format!("{vault:?}").contains(TOKEN));
    replay.finish();
}

#[tokio::test]
async fn an_unreachable_vault_is_named_without_the_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let vault = VaultSecrets::connect(VaultConfig::new(
        &format!("http://{address}"),
        VaultAuth::Token(TOKEN.into()),
    ))
    .await
    .unwrap();
    let message = vault.for_repo("acme/app").await.unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "cannot reach Vault at http://{address} to list secret/metadata/ocelot: "
        )),
        "{message}"
    );
    assert!(!message.contains(TOKEN), "{message}");
}

#[tokio::test]
async fn approle_logs_in_and_uses_the_token_it_gets() {
    let replay = Replay::start(recordings(&["approle"])).await;
    let vault = VaultSecrets::connect(VaultConfig::new(&replay.url(), approle()))
        .await
        .unwrap();
    assert!(!format!("{vault:?}").contains(SECRET_ID));
    vault
        .add(
            "github",
            CredentialKind::Vcs,
            &Scope::Prefix("acme/".into()),
            &ci_bot(),
            &value("ghp_0123456789abcdef"),
        )
        .await
        .unwrap();
    let build = vault.for_repo("acme/tools").await.unwrap();
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].value.expose(), "ghp_0123456789abcdef");
    replay.finish();
}

#[tokio::test]
async fn approle_logs_in_again_before_its_token_expires() {
    let replay = Replay::start(recordings(&["approle_relogin"])).await;
    let vault = VaultSecrets::connect(VaultConfig::new(&replay.url(), approle()))
        .await
        .unwrap();
    assert!(vault.list().await.unwrap().is_empty());
    // the 4 s lease is renewed half-way through (the margin is 30 s, at most half the lease)
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(vault.list().await.unwrap().is_empty());
    assert_eq!(
        replay.served(),
        [
            "POST /v1/auth/approle/login",
            "LIST /v1/secret/metadata/ocelot",
            "POST /v1/auth/approle/login",
            "LIST /v1/secret/metadata/ocelot"
        ]
    );
    replay.finish();
}

#[tokio::test]
async fn a_refused_approle_login_fails_at_start_without_the_secret_id() {
    let replay = Replay::start(recordings(&["approle_denied"])).await;
    let error = VaultSecrets::connect(VaultConfig::new(&replay.url(), approle()))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert_eq!(
        message,
        format!(
            "Vault at {} refused to log in with AppRole (auth/approle/login): 400 invalid role or secret ID",
            replay.url()
        )
    );
    assert!(!format!("{error:?}").contains(SECRET_ID));
    assert!(!message.contains(APPROLE_TOKEN));
    replay.finish();
}
