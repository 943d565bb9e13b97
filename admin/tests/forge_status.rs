//! Commit statuses against HTTP exchanges recorded from each forge's API documentation
//! (`tests/exchanges/forge_status/`), replayed by a loopback server that fails the test when
//! a request differs from the recording (method, path, authentication header, JSON body):
//! success, a bad token, an unknown repo, a refused status, a 5xx then success, and rate
//! limits (`Retry-After`, GitHub's secondary limit and `x-ratelimit-reset`).

use ocelot_admin::forge::ForgeApi;
use ocelot_admin::forge::status::{StatusUpdate, send_status};
use ocelot_admin::notifier::outcome::{Outcome, retry_delay};
use ocelot_core::BuildState;
use ocelot_core::forge::Forge;
use ocelot_core::secrets::SecretValue;
use ocelot_http_replay::{Replay, recording};
use std::time::Duration;

const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

fn token(forge: Forge) -> &'static str {
    match forge {
        Forge::GitHub => "ghp_OcelotTestTokenNotARealOne0000000000",
        Forge::GitLab => "glpat-OcelotTestTokenNotReal0",
        Forge::Bitbucket => "ATCTOcelotTestTokenNotARealOne000",
        Forge::Gitea => "0123456789abcdef0123456789abcdef01234567",
    }
}

fn api(forge: Forge, replay: &Replay) -> ForgeApi {
    let base = match forge {
        Forge::Gitea => format!("{}/api/v1", replay.url()),
        _ => replay.url(),
    };
    ForgeApi {
        forge,
        api_url: base,
        path: "octo-org/hello-world".into(),
        username: None,
        token: SecretValue::new(token(forge).into()),
    }
}

fn update(state: BuildState) -> StatusUpdate {
    StatusUpdate {
        commit: SHA.into(),
        state,
        context: "ocelot/octo-org/hello-world".into(),
        target_url: Some("https://ci.example/builds/42".into()),
        description: format!("Ocelot build #7: {}", state.as_str().replace('_', " ")),
        fallback_url: "https://unused.example/".into(),
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// Replays `name`, sending `state` once per exchange; the outcomes, in order.
async fn replay(forge: Forge, name: &str, state: BuildState) -> Vec<Outcome> {
    let exchanges = recording!("forge_status", name);
    let tries = exchanges.len();
    let replay = Replay::start(exchanges).await;
    let api = api(forge, &replay);
    let client = client();
    let mut outcomes = Vec::new();
    for _ in 0..tries {
        outcomes.push(send_status(&client, &api, &update(state)).await);
    }
    replay.finish();
    outcomes
}

fn gave_up_with(outcome: &Outcome, words: &[&str]) {
    match outcome {
        Outcome::GiveUp(error) => {
            for word in words {
                assert!(error.contains(word), "`{word}` missing from: {error}");
            }
        }
        other => panic!("expected to give up, got {other:?}"),
    }
}

fn retried_after(outcome: &Outcome) -> Option<Duration> {
    match outcome {
        Outcome::Retry { after, .. } => *after,
        other => panic!("expected a retry, got {other:?}"),
    }
}

#[tokio::test]
async fn each_forge_takes_a_final_status() {
    for (forge, name) in [
        (Forge::GitHub, "github_success"),
        (Forge::GitLab, "gitlab_success"),
        (Forge::Bitbucket, "bitbucket_success"),
        (Forge::Gitea, "gitea_success"),
    ] {
        assert_eq!(
            replay(forge, name, BuildState::Passed).await,
            vec![Outcome::Sent],
            "{name}"
        );
    }
}

#[tokio::test]
async fn refusals_are_given_up_with_the_forges_words() {
    let cases: [(Forge, &str, BuildState, &[&str]); 12] = [
        (
            Forge::GitHub,
            "github_401",
            BuildState::Passed,
            &["401", "Bad credentials"],
        ),
        (
            Forge::GitHub,
            "github_404",
            BuildState::Passed,
            &["404", "Not Found"],
        ),
        (
            Forge::GitHub,
            "github_422",
            BuildState::Passed,
            &["422", "No commit found"],
        ),
        (
            Forge::GitLab,
            "gitlab_401",
            BuildState::Passed,
            &["401 Unauthorized"],
        ),
        (
            Forge::GitLab,
            "gitlab_404",
            BuildState::Passed,
            &["404 Project Not Found"],
        ),
        (
            Forge::GitLab,
            "gitlab_400_transition",
            BuildState::Running,
            &["400", "Cannot transition status"],
        ),
        (
            Forge::Bitbucket,
            "bitbucket_401",
            BuildState::Passed,
            &["401", "Unauthorized"],
        ),
        (
            Forge::Bitbucket,
            "bitbucket_404",
            BuildState::Passed,
            &["Repository octo-org/hello-world not found"],
        ),
        (
            Forge::Bitbucket,
            "bitbucket_403_scope",
            BuildState::Passed,
            &["403", "required privilege scopes"],
        ),
        (
            Forge::Gitea,
            "gitea_401",
            BuildState::Passed,
            &["401", "token is required"],
        ),
        (
            Forge::Gitea,
            "gitea_404",
            BuildState::Passed,
            &["404", "couldn't be found"],
        ),
        (
            Forge::Gitea,
            "gitea_422",
            BuildState::Passed,
            &["422", "Invalid Url"],
        ),
    ];
    for (forge, name, state, words) in cases {
        let outcomes = replay(forge, name, state).await;
        assert_eq!(outcomes.len(), 1, "{name}");
        gave_up_with(&outcomes[0], words);
        // the token never reaches the recorded error
        if let Outcome::GiveUp(error) = &outcomes[0] {
            assert!(!error.contains(token(forge)), "{name}: {error}");
        }
    }
}

#[tokio::test]
async fn a_server_error_is_retried_until_the_status_is_set() {
    for (forge, name) in [
        (Forge::GitHub, "github_5xx_then_201"),
        (Forge::GitLab, "gitlab_5xx_then_201"),
        (Forge::Bitbucket, "bitbucket_5xx_then_201"),
        (Forge::Gitea, "gitea_5xx_then_201"),
    ] {
        let outcomes = replay(forge, name, BuildState::Passed).await;
        assert_eq!(outcomes.len(), 2, "{name}");
        assert_eq!(retried_after(&outcomes[0]), None, "{name}");
        assert_eq!(outcomes[1], Outcome::Sent, "{name}");
    }
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let minute = Some(Duration::from_secs(60));
    for (forge, name) in [
        (Forge::GitHub, "github_429"),
        (Forge::GitLab, "gitlab_429"),
        (Forge::Bitbucket, "bitbucket_429"),
    ] {
        let outcomes = replay(forge, name, BuildState::Passed).await;
        assert_eq!(retried_after(&outcomes[0]), minute, "{name}");
        // the next try is not before the forge's time
        assert!(retry_delay(Duration::from_secs(2), 1, minute) >= Duration::from_secs(60));
    }
    // an HTTP date (2100) and GitHub's x-ratelimit-reset (2100): far ahead
    let far = Duration::from_secs(365 * 24 * 3600);
    let gitea = replay(Forge::Gitea, "gitea_429", BuildState::Passed).await;
    assert!(retried_after(&gitea[0]).is_some_and(|after| after > far));
    let reset = replay(Forge::GitHub, "github_secondary_reset", BuildState::Running).await;
    assert!(retried_after(&reset[0]).is_some_and(|after| after > far));
    // GitHub's secondary limit: a 403 that is not a refusal
    let secondary = replay(
        Forge::GitHub,
        "github_secondary_retry_after",
        BuildState::Running,
    )
    .await;
    assert_eq!(retried_after(&secondary[0]), Some(Duration::from_secs(30)));
}

#[test]
fn bitbucket_needs_a_url_and_gets_the_fallback() {
    let api = ForgeApi {
        forge: Forge::Bitbucket,
        api_url: "https://api.bitbucket.org/2.0/".into(),
        path: "ws/slug".into(),
        username: Some("ci-bot".into()),
        token: SecretValue::new("app-password".into()),
    };
    let mut queued = update(BuildState::Queued);
    queued.target_url = None;
    let (url, body) = ocelot_admin::forge::status::status_request(&api, &queued)
        .expect("a queued build has a status");
    assert_eq!(
        url,
        format!("https://api.bitbucket.org/2.0/repositories/ws/slug/commit/{SHA}/statuses/build")
    );
    assert_eq!(body["url"], "https://unused.example/");
    assert_eq!(body["state"], "INPROGRESS");
    assert!(
        ocelot_admin::forge::status::status_request(&api, &update(BuildState::Skipped)).is_none()
    );
}
