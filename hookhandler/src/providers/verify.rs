//! Signature verification and signing for every provider.
//!
//! GitHub, Bitbucket Cloud and Gitea/Forgejo sign the raw body with
//! HMAC-SHA256 keyed by the webhook secret; the tag is compared through
//! [`Mac::verify_slice`], which is constant time. GitLab sends the secret
//! itself in `X-Gitlab-Token`; both sides are hashed with SHA-256 first and
//! the digests compared with [`subtle::ConstantTimeEq`], so neither the
//! content nor the length of the secret leaks through timing.
//!
//! An empty secret never verifies: it would let anyone sign.
//!
//! The tests here are the ones every provider shares: `tests::check_signatures`
//! (run by each provider's tests) and the property test that `parse` and `verify`
//! never panic on arbitrary headers and bytes.

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{HookError, Provider, header_any};

type HmacSha256 = Hmac<Sha256>;

/// GitHub's signature header (`sha256=<hex>`).
pub const GITHUB_SIGNATURE: &str = "X-Hub-Signature-256";
/// GitLab's token header (the secret itself).
pub const GITLAB_TOKEN: &str = "X-Gitlab-Token";
/// Bitbucket Cloud's signature header (`sha256=<hex>`).
pub const BITBUCKET_SIGNATURE: &str = "X-Hub-Signature";
/// Gitea's signature header (`<hex>`, no prefix).
pub const GITEA_SIGNATURE: &str = "X-Gitea-Signature";
/// Forgejo's signature header (`<hex>`, no prefix).
pub const FORGEJO_SIGNATURE: &str = "X-Forgejo-Signature";

/// Verifies the request with the repo's secret, in constant time.
pub fn verify(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
) -> Result<(), HookError> {
    match provider {
        Provider::GitHub => {
            let value = signature_header(headers, &[GITHUB_SIGNATURE])?;
            verify_hmac(prefixed_hex(value)?, body, secret)
        }
        Provider::Bitbucket => {
            let value = signature_header(headers, &[BITBUCKET_SIGNATURE])?;
            verify_hmac(prefixed_hex(value)?, body, secret)
        }
        Provider::Gitea => {
            let value = signature_header(headers, &[GITEA_SIGNATURE, FORGEJO_SIGNATURE])?;
            verify_hmac(value, body, secret)
        }
        Provider::GitLab => match headers.get(GITLAB_TOKEN) {
            // Compared as raw bytes: a token may hold any character.
            Some(token) if !token.is_empty() => verify_token(token.as_bytes(), secret),
            _ => Err(HookError::MissingSignature(GITLAB_TOKEN)),
        },
    }
}

/// For tests and tools: the header name and value that sign `body` with
/// `secret` for `provider`.
pub fn sign(provider: Provider, body: &[u8], secret: &str) -> (&'static str, String) {
    match provider {
        Provider::GitHub => (
            GITHUB_SIGNATURE,
            format!("sha256={}", hmac_hex(body, secret)),
        ),
        Provider::Bitbucket => (
            BITBUCKET_SIGNATURE,
            format!("sha256={}", hmac_hex(body, secret)),
        ),
        Provider::Gitea => (GITEA_SIGNATURE, hmac_hex(body, secret)),
        Provider::GitLab => (GITLAB_TOKEN, secret.to_string()),
    }
}

/// The signature header's value; absent → [`HookError::MissingSignature`].
fn signature_header<'h>(
    headers: &'h HeaderMap,
    names: &[&'static str],
) -> Result<&'h str, HookError> {
    match header_any(headers, names) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(HookError::MissingSignature(
            names.first().copied().unwrap_or(GITHUB_SIGNATURE),
        )),
        // A header that is not even ASCII cannot be a valid signature.
        Err(_) => Err(HookError::BadSignature),
    }
}

/// The hex after `sha256=`; any other algorithm is a mismatch.
fn prefixed_hex(value: &str) -> Result<&str, HookError> {
    value.strip_prefix("sha256=").ok_or(HookError::BadSignature)
}

fn verify_hmac(hex_tag: &str, body: &[u8], secret: &str) -> Result<(), HookError> {
    if secret.is_empty() {
        return Err(HookError::BadSignature);
    }
    let tag = hex::decode(hex_tag.trim()).map_err(|_| HookError::BadSignature)?;
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| HookError::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| HookError::BadSignature)
}

fn verify_token(token: &[u8], secret: &str) -> Result<(), HookError> {
    if secret.is_empty() {
        return Err(HookError::BadSignature);
    }
    let given = Sha256::digest(token);
    let expected = Sha256::digest(secret.as_bytes());
    if bool::from(given.as_slice().ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(HookError::BadSignature)
    }
}

/// Lowercase hex HMAC-SHA256 of `body` keyed by `secret`.
fn hmac_hex(body: &[u8], secret: &str) -> String {
    match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC accepts keys of any length; this arm is unreachable in practice
        // and yields a value that never verifies.
        Err(_) => String::new(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use http::{HeaderMap, HeaderName, HeaderValue};
    use proptest::prelude::*;

    use super::super::{HookError, Provider, parse, verify};

    const PROVIDERS: [Provider; 4] = [
        Provider::GitHub,
        Provider::GitLab,
        Provider::Bitbucket,
        Provider::Gitea,
    ];

    /// verify OK, tampered body, wrong secret, missing and garbled
    /// signature header, and `sign` round-tripping through `verify`.
    pub(crate) fn check_signatures(provider: Provider, base: &HeaderMap, body: &[u8]) {
        let secret = "It's a Secret to Everybody";
        let (name, value) = super::sign(provider, body, secret);
        let signed = |value: &str| {
            let mut map = base.clone();
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
            map
        };
        let good = signed(&value);
        verify(provider, &good, body, secret).expect("signed request verifies");

        let mut tampered = body.to_vec();
        tampered.extend_from_slice(b" ");
        let result = verify(provider, &good, &tampered, secret);
        if provider == Provider::GitLab {
            // GitLab's token does not cover the body.
            assert!(result.is_ok(), "{result:?}");
        } else {
            assert!(matches!(result, Err(HookError::BadSignature)), "{result:?}");
        }

        let result = verify(provider, &good, body, "another secret");
        assert!(matches!(result, Err(HookError::BadSignature)), "{result:?}");
        let result = verify(provider, &good, body, "");
        assert!(matches!(result, Err(HookError::BadSignature)), "{result:?}");

        let result = verify(provider, base, body, secret);
        assert!(
            matches!(result, Err(HookError::MissingSignature(n)) if n == name),
            "{result:?}"
        );

        if provider != Provider::GitLab {
            let truncated = value.get(..value.len() - 2).expect("long value");
            for garbled in ["sha256=zz", "sha1=0123", "", "sha256=", truncated] {
                let result = verify(provider, &signed(garbled), body, secret);
                assert!(result.is_err(), "{garbled:?} verified");
            }
        }
    }

    /// Every header the parsers and `verify` read.
    #[rustfmt::skip]
    const HEADER_NAMES: &[&str] = &[
        "x-github-event", "x-github-delivery", "x-hub-signature-256", "x-gitlab-event",
        "x-gitlab-token", "idempotency-key", "x-gitlab-event-uuid", "x-gitlab-webhook-uuid",
        "x-event-key", "x-request-uuid", "x-hook-uuid", "x-hub-signature", "x-gitea-event",
        "x-gitea-delivery", "x-gitea-signature", "x-forgejo-event", "x-forgejo-delivery",
        "x-forgejo-signature",
    ];

    #[rustfmt::skip]
    const EVENTS: &[&str] = &[
        "ping", "push", "pull_request", "Push Hook", "Tag Push Hook", "Merge Request Hook",
        "repo:push", "pullrequest:created", "sha256=ab",
    ];

    fn random_headers() -> impl Strategy<Value = HeaderMap> {
        let value = prop_oneof![
            prop::sample::select(EVENTS).prop_map(|s| s.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..16),
        ];
        let pairs = prop::collection::vec((prop::sample::select(HEADER_NAMES), value), 0..10);
        pairs.prop_map(|pairs| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                if let Ok(value) = HeaderValue::from_bytes(&value) {
                    map.append(HeaderName::from_static(name), value);
                }
            }
            map
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            Just(b"{}".to_vec()),
            Just(
                br#"{"repository":{"full_name":"a/b"},"ref":"refs/heads/x","after":"1"}"#.to_vec()
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// `identify`, `parse` and `verify` on arbitrary bytes and headers never panic (each
        /// provider's tests also run `parse` on mutated fixtures).
        #[test]
        fn never_panics_on_arbitrary_input(
            provider in prop::sample::select(&PROVIDERS[..]),
            headers in random_headers(),
            body in body(),
        ) {
            let _ = super::super::identify(provider, &body);
            let _ = parse(provider, &headers, &body);
            let _ = verify(provider, &headers, &body, "secret");
        }
    }
}
