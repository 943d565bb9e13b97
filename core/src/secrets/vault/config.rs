//! Where Vault is and how Ocelot logs in: [`VaultConfig`] (address, [`VaultAuth`], KV mount
//! and prefix) and the services' [`VaultArgs`] flags that describe it.

use crate::env_vars;
use crate::secrets::SecretError;
use std::fmt;
use std::path::PathBuf;

/// The KV v2 mount Ocelot uses unless told otherwise.
pub const DEFAULT_MOUNT: &str = "secret";
/// The path under the mount where Ocelot keeps its credentials unless told otherwise.
pub const DEFAULT_PREFIX: &str = "ocelot";
/// Where the AppRole auth method is mounted unless told otherwise.
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";

/// How Ocelot authenticates to Vault. `Debug` never shows the token or the secret id.
#[derive(Clone)]
pub enum VaultAuth {
    Token(String),
    AppRole {
        /// Where the AppRole auth method is mounted (`approle`).
        mount: String,
        role_id: String,
        secret_id: String,
    },
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultAuth::Token(_) => f.write_str("Token(***)"),
            VaultAuth::AppRole { mount, role_id, .. } => f
                .debug_struct("AppRole")
                .field("mount", mount)
                .field("role_id", role_id)
                .field("secret_id", &"***")
                .finish(),
        }
    }
}

/// Where credentials live in Vault and how to get there.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// `https://vault.example:8200`
    pub address: String,
    pub auth: VaultAuth,
    /// Mount path of the KV v2 engine (`secret`).
    pub mount: String,
    /// Path under the mount holding Ocelot's credentials (`ocelot`).
    pub prefix: String,
}

impl VaultConfig {
    /// `address` and `auth` with the default mount and prefix.
    pub fn new(address: &str, auth: VaultAuth) -> Self {
        VaultConfig {
            address: address.to_string(),
            auth,
            mount: DEFAULT_MOUNT.to_string(),
            prefix: DEFAULT_PREFIX.to_string(),
        }
    }

    /// Checks the address and trims the mount and prefix of slashes.
    pub(super) fn checked(mut self) -> Result<Self, SecretError> {
        self.address = self.address.trim().trim_end_matches('/').to_string();
        let url_ok = url::Url::parse(&self.address)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host());
        if !url_ok {
            return Err(SecretError::Invalid(format!(
                "the Vault address `{}` is not an http(s) URL (e.g. https://vault.example:8200)",
                self.address
            )));
        }
        self.mount = self.mount.trim().trim_matches('/').to_string();
        self.prefix = self.prefix.trim().trim_matches('/').to_string();
        for (what, value) in [("mount", &self.mount), ("prefix", &self.prefix)] {
            if value.is_empty() || value.split('/').any(|part| matches!(part, "" | "." | "..")) {
                return Err(SecretError::Invalid(format!(
                    "the Vault {what} `{value}` is not a path (e.g. `secret`, `ocelot` or `ci/ocelot`)"
                )));
            }
        }
        if let VaultAuth::AppRole { mount, role_id, .. } = &mut self.auth {
            *mount = mount.trim().trim_matches('/').to_string();
            if mount.is_empty() || role_id.trim().is_empty() {
                return Err(SecretError::Invalid(
                    "an AppRole login needs a role id and the auth method's mount path".into(),
                ));
            }
        }
        Ok(self)
    }
}

/// Where Vault is and how Ocelot logs in, for the services (used with `--secret-store vault`).
#[derive(Debug, Clone, clap::Args)]
pub struct VaultArgs {
    /// Vault address, e.g. https://vault.example:8200. Ocelot authenticates with AppRole when
    /// a role id is given, else with the token in VAULT_TOKEN. VAULT_CACERT, VAULT_CAPATH and
    /// VAULT_SKIP_VERIFY work as for the Vault CLI
    #[arg(long = "vault-addr", env = env_vars::VAULT_ADDR)]
    pub vault_addr: Option<String>,
    /// AppRole role id; the secret id comes from --vault-secret-id-file or
    /// OCELOT_VAULT_SECRET_ID
    #[arg(long = "vault-role-id", env = env_vars::OCELOT_VAULT_ROLE_ID)]
    pub vault_role_id: Option<String>,
    /// File holding the AppRole secret id
    #[arg(long = "vault-secret-id-file", env = env_vars::OCELOT_VAULT_SECRET_ID_FILE)]
    pub vault_secret_id_file: Option<PathBuf>,
    /// Mount path of the AppRole auth method
    #[arg(long = "vault-approle-mount", env = env_vars::OCELOT_VAULT_APPROLE_MOUNT, default_value = DEFAULT_APPROLE_MOUNT)]
    pub vault_approle_mount: String,
    /// Mount path of the KV version 2 secrets engine holding the credentials
    #[arg(long = "vault-mount", env = env_vars::OCELOT_VAULT_MOUNT, default_value = DEFAULT_MOUNT)]
    pub vault_mount: String,
    /// Path under the mount where Ocelot keeps its credentials
    #[arg(long = "vault-prefix", env = env_vars::OCELOT_VAULT_PREFIX, default_value = DEFAULT_PREFIX)]
    pub vault_prefix: String,
}

impl Default for VaultArgs {
    /// No Vault: what the flags' defaults give when nothing is set.
    fn default() -> Self {
        VaultArgs {
            vault_addr: None,
            vault_role_id: None,
            vault_secret_id_file: None,
            vault_approle_mount: DEFAULT_APPROLE_MOUNT.to_string(),
            vault_mount: DEFAULT_MOUNT.to_string(),
            vault_prefix: DEFAULT_PREFIX.to_string(),
        }
    }
}

impl VaultArgs {
    /// The configuration these arguments describe, with the token (`VAULT_TOKEN`) or the
    /// AppRole secret id (its file, else `OCELOT_VAULT_SECRET_ID`) read from where they live.
    pub fn config(&self) -> Result<VaultConfig, SecretError> {
        let address = self
            .vault_addr
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                SecretError::Invalid(
                    "the Vault secret store needs VAULT_ADDR (or --vault-addr)".into(),
                )
            })?;
        let auth = match self.vault_role_id.as_deref().map(str::trim) {
            Some(role_id) if !role_id.is_empty() => {
                let secret_id = match &self.vault_secret_id_file {
                    Some(path) => std::fs::read_to_string(path).map_err(|error| {
                        SecretError::Invalid(format!(
                            "cannot read the AppRole secret id from {}: {error}",
                            path.display()
                        ))
                    })?,
                    None => std::env::var(env_vars::OCELOT_VAULT_SECRET_ID).unwrap_or_default(),
                };
                let secret_id = secret_id.trim().to_string();
                if secret_id.is_empty() {
                    return Err(SecretError::Invalid(
                        "an AppRole login needs a secret id: set OCELOT_VAULT_SECRET_ID_FILE or OCELOT_VAULT_SECRET_ID".into(),
                    ));
                }
                VaultAuth::AppRole {
                    mount: self.vault_approle_mount.clone(),
                    role_id: role_id.to_string(),
                    secret_id,
                }
            }
            _ => {
                let token = std::env::var(env_vars::VAULT_TOKEN).unwrap_or_default();
                let token = token.trim();
                if token.is_empty() {
                    return Err(SecretError::Invalid(
                        "the Vault secret store needs VAULT_TOKEN, or an AppRole (OCELOT_VAULT_ROLE_ID and OCELOT_VAULT_SECRET_ID_FILE)".into(),
                    ));
                }
                VaultAuth::Token(token.to_string())
            }
        };
        Ok(VaultConfig {
            address: address.to_string(),
            auth,
            mount: self.vault_mount.clone(),
            prefix: self.vault_prefix.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked() {
        let token = || VaultAuth::Token("hvs.x".into());
        assert!(
            VaultConfig::new("vault.example:8200", token())
                .checked()
                .is_err()
        );
        let config = VaultConfig {
            mount: "/kv/".into(),
            prefix: "ci/ocelot/".into(),
            ..VaultConfig::new("https://vault.example:8200/", token())
        }
        .checked()
        .unwrap();
        assert_eq!(
            (
                config.address.as_str(),
                config.mount.as_str(),
                config.prefix.as_str()
            ),
            ("https://vault.example:8200", "kv", "ci/ocelot")
        );
        let bad_prefix = VaultConfig {
            prefix: "a/../b".into(),
            ..VaultConfig::new("http://127.0.0.1:8200", token())
        };
        assert!(bad_prefix.checked().is_err());
    }

    #[test]
    fn debug_hides_tokens_and_secret_ids() {
        let token = format!("{:?}", VaultAuth::Token("hvs.s3cr3t".into()));
        let approle = format!(
            "{:?}",
            VaultAuth::AppRole {
                mount: "approle".into(),
                role_id: "role-1".into(),
                secret_id: "s3cr3t-id".into()
            }
        );
        assert!(!token.contains("s3cr3t") && !approle.contains("s3cr3t"));
        assert!(approle.contains("role-1"));
    }
}
