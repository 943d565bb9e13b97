//! The secret a delivery is verified with: its repo's (opened with the master key), or, for
//! an unknown repo or one whose secret cannot be used, a random one that no sender knows.
//! Both paths cost the same work (a lookup, opening a sealed value, an HMAC), and the
//! handler answers both the same way, so a sender cannot tell registered repos apart.

use ocelot_core::model::Repo;
use ocelot_core::secrets::cipher::MasterKey;
use ocelot_core::secrets::{SecretError, webhook};
use ocelot_core::store::StoredWebhookSecret;

/// The name the stand-in secret is sealed for (no repo has it: names have no `:`).
const STAND_IN_REPO: &str = ":unknown";

#[derive(Debug)]
pub(crate) struct HookSecrets {
    key: Option<MasterKey>,
    /// A random secret, new in every process, verified against when the repo's own cannot
    /// be; a delivery signed with it is still refused.
    stand_in: String,
    stand_in_sealed: Option<StoredWebhookSecret>,
}

/// What to verify a delivery with.
pub(crate) struct VerifyWith {
    pub(crate) secret: String,
    /// Whether the secret is the repo's own: only then may a verified delivery be accepted.
    pub(crate) repos_own: bool,
}

impl HookSecrets {
    pub(crate) fn new(key: Option<MasterKey>) -> Result<HookSecrets, SecretError> {
        let stand_in = MasterKey::generate_hex()?;
        let stand_in_sealed = match &key {
            Some(key) => Some(StoredWebhookSecret::Sealed(webhook::seal(
                key,
                STAND_IN_REPO,
                &stand_in,
            )?)),
            None => None,
        };
        Ok(HookSecrets {
            key,
            stand_in,
            stand_in_sealed,
        })
    }

    fn stand_in(&self) -> VerifyWith {
        // the same work as opening a repo's sealed secret
        let secret = match &self.stand_in_sealed {
            Some(sealed) => webhook::open(self.key.as_ref(), STAND_IN_REPO, sealed)
                .unwrap_or_else(|_| self.stand_in.clone()),
            None => self.stand_in.clone(),
        };
        VerifyWith {
            secret,
            repos_own: false,
        }
    }

    /// The secret to verify a delivery for `found` (the repo and its stored secret) with.
    pub(crate) fn verify_with(
        &self,
        found: Option<&(Repo, Option<StoredWebhookSecret>)>,
    ) -> VerifyWith {
        let Some((repo, stored)) = found else {
            return self.stand_in();
        };
        let Some(stored) = stored else {
            tracing::warn!(repo = %repo.name, "repo has no webhook secret: its deliveries are refused (remove and add it again with `ocelot repos add`)");
            return self.stand_in();
        };
        match webhook::open(self.key.as_ref(), &repo.name, stored) {
            Ok(secret) => VerifyWith {
                secret,
                repos_own: true,
            },
            Err(error) => {
                tracing::error!(repo = %repo.name, %error, "cannot open the repo's webhook secret: its deliveries are refused (give the hookhandler the master key the admin uses)");
                self.stand_in()
            }
        }
    }
}
