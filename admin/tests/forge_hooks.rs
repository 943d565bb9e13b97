//! Webhooks registered for you: creating and removing a repo's forge webhook against HTTP
//! exchanges recorded from each forge's API documentation (`tests/exchanges/forge_hooks/`),
//! and a refusal shown in the forge's own words.

use ocelot_admin::forge::ForgeApi;
use ocelot_admin::forge::hooks::{HookError, create_hook, remove_hook};
use ocelot_core::forge::Forge;
use ocelot_core::secrets::SecretValue;
use ocelot_http_replay::{Replay, recording};

const HOOK: &str = "https://hooks.ci.example/hooks/github";
const SECRET: &str = "whsec-OcelotTestSecret-7d1e";

fn token(forge: Forge) -> &'static str {
    match forge {
        Forge::GitHub => "ghp_OcelotTestTokenNotARealOne0000000000",
        Forge::GitLab => "glpat-OcelotTestTokenNotReal0",
        Forge::Bitbucket => "ATCTOcelotTestTokenNotARealOne000",
        Forge::Gitea => "0123456789abcdef0123456789abcdef01234567",
    }
}

async fn replay(forge: Forge, what: &str) -> (Replay, ForgeApi) {
    let replay = Replay::start(recording!("forge_hooks", &format!("{forge}_{what}"))).await;
    let api_url = match forge {
        Forge::Gitea => format!("{}/api/v1", replay.url()),
        _ => replay.url(),
    };
    let api = ForgeApi {
        forge,
        api_url,
        path: "octo-org/hello-world".into(),
        username: None,
        token: SecretValue::new(token(forge).into()),
    };
    (replay, api)
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("an HTTP client")
}

#[tokio::test]
async fn each_forge_creates_and_removes_the_hook() {
    for forge in Forge::ALL {
        let (created, api) = replay(forge, "create").await;
        create_hook(&client(), &api, HOOK, SECRET)
            .await
            .unwrap_or_else(|e| panic!("{forge}: {e}"));
        created.finish();
        let (removed, api) = replay(forge, "remove").await;
        assert_eq!(
            remove_hook(&client(), &api, HOOK)
                .await
                .unwrap_or_else(|e| panic!("{forge}: {e}")),
            1,
            "{forge}: only the hook with our URL"
        );
        removed.finish();
    }
}

#[tokio::test]
async fn a_refusal_is_shown_in_the_forges_words() {
    for (forge, status, words) in [
        (Forge::GitHub, 404, "Not Found"),
        (Forge::GitLab, 403, "insufficient_scope"),
        (Forge::Bitbucket, 403, "required privilege scopes"),
        (Forge::Gitea, 404, "couldn't be found"),
    ] {
        let (refused, api) = replay(forge, "error").await;
        let error = create_hook(&client(), &api, HOOK, SECRET)
            .await
            .expect_err("refused");
        refused.finish();
        match &error {
            HookError::Refused {
                status: got,
                message,
                ..
            } => {
                assert_eq!(*got, status, "{forge}");
                assert!(message.contains(words), "{forge}: {error}");
            }
            other => panic!("{forge}: {other}"),
        }
        let text = error.to_string();
        assert!(text.contains("octo-org/hello-world"), "{text}");
        assert!(
            !text.contains(token(forge)) && !text.contains(SECRET),
            "{text}"
        );
    }
}
