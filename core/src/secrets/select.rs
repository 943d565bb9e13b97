//! Which credential store a service uses: Postgres (sealed under the master key, the
//! default) or Vault KV v2 (`--secret-store vault`, or `OCELOT_SECRET_STORE=vault` with
//! `VAULT_ADDR`), as one [`SecretStore`].

use super::vault::{VaultArgs, VaultSecrets};
use super::{
    Credential, CredentialDetails, CredentialInfo, CredentialKind, PostgresSecrets, Scope,
    SecretError, SecretStore, SecretValue,
};
use crate::env_vars;
use crate::store::Store;

/// The kinds of credential store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretBackend {
    /// The `credentials` table, sealed under the master key.
    #[default]
    Postgres,
    /// Vault's KV version 2 secrets engine.
    Vault,
}

/// Where credentials live, for the services that read or manage them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecretStoreArgs {
    /// Where credentials live: `postgres` (sealed under the master key) or `vault` (Vault KV
    /// version 2; see --vault-addr)
    #[arg(
        long = "secret-store",
        env = env_vars::OCELOT_SECRET_STORE,
        value_enum,
        default_value_t = SecretBackend::Postgres
    )]
    pub secret_store: SecretBackend,
    #[command(flatten)]
    pub vault: VaultArgs,
}

/// The configured credential store.
#[derive(Debug, Clone)]
pub enum Secrets {
    Postgres(PostgresSecrets),
    Vault(VaultSecrets),
}

impl Secrets {
    /// Opens the store `args` choose: Postgres with the master key of `master_key` (checked
    /// against the stored credentials), or Vault (logged in, for AppRole).
    pub async fn open(
        args: &SecretStoreArgs,
        master_key: &SecretsArgs,
        store: Store,
    ) -> Result<Secrets, SecretError> {
        match args.secret_store {
            SecretBackend::Postgres => master_key.open(store).await.map(Secrets::Postgres),
            SecretBackend::Vault => VaultSecrets::connect(args.vault.config()?)
                .await
                .map(Secrets::Vault),
        }
    }

    pub fn backend(&self) -> SecretBackend {
        match self {
            Secrets::Postgres(_) => SecretBackend::Postgres,
            Secrets::Vault(_) => SecretBackend::Vault,
        }
    }
}

impl From<PostgresSecrets> for Secrets {
    fn from(store: PostgresSecrets) -> Self {
        Secrets::Postgres(store)
    }
}

impl From<VaultSecrets> for Secrets {
    fn from(store: VaultSecrets) -> Self {
        Secrets::Vault(store)
    }
}

impl SecretStore for Secrets {
    async fn add(
        &self,
        name: &str,
        kind: CredentialKind,
        scope: &Scope,
        details: &CredentialDetails,
        value: &SecretValue,
    ) -> Result<(), SecretError> {
        match self {
            Secrets::Postgres(store) => store.add(name, kind, scope, details, value).await,
            Secrets::Vault(store) => store.add(name, kind, scope, details, value).await,
        }
    }

    async fn list(&self) -> Result<Vec<CredentialInfo>, SecretError> {
        match self {
            Secrets::Postgres(store) => store.list().await,
            Secrets::Vault(store) => store.list().await,
        }
    }

    async fn remove(
        &self,
        name: &str,
        kind: CredentialKind,
        scope: &Scope,
    ) -> Result<(), SecretError> {
        match self {
            Secrets::Postgres(store) => store.remove(name, kind, scope).await,
            Secrets::Vault(store) => store.remove(name, kind, scope).await,
        }
    }

    async fn for_repo(&self, repo: &str) -> Result<Vec<Credential>, SecretError> {
        match self {
            Secrets::Postgres(store) => store.for_repo(repo).await,
            Secrets::Vault(store) => store.for_repo(repo).await,
        }
    }
}

/// Where the master key that seals credentials comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct SecretsArgs {
    /// File holding the master key (64 hex characters; must not be readable by others)
    #[arg(long = "master-key-file", env = env_vars::OCELOT_MASTER_KEY_FILE)]
    pub master_key_file: Option<std::path::PathBuf>,
}

impl SecretsArgs {
    /// The key from `--master-key-file`, else from `OCELOT_MASTER_KEY`; `None` when neither
    /// is set (credentials then cannot be used).
    pub fn load(&self) -> Result<Option<super::cipher::MasterKey>, super::cipher::CipherError> {
        use super::cipher::MasterKey;
        if let Some(path) = &self.master_key_file {
            return MasterKey::from_file(path).map(Some);
        }
        match std::env::var(env_vars::OCELOT_MASTER_KEY) {
            Ok(hex) if !hex.trim().is_empty() => MasterKey::from_hex(&hex).map(Some),
            _ => Ok(None),
        }
    }

    /// The credential store these settings describe, checked against what `store` holds.
    pub async fn open(&self, store: Store) -> Result<super::PostgresSecrets, super::SecretError> {
        super::PostgresSecrets::new(store, self.load()?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        secrets: SecretStoreArgs,
    }

    #[test]
    fn postgres_is_the_default_and_vault_is_chosen_by_flag() {
        let default = Cli::try_parse_from(["ocelot-admin"]).unwrap();
        assert_eq!(default.secrets.secret_store, SecretBackend::Postgres);
        let vault = Cli::try_parse_from([
            "ocelot-admin",
            "--secret-store",
            "vault",
            "--vault-addr",
            "https://vault.example:8200",
            "--vault-role-id",
            "role-1",
            "--vault-mount",
            "kv",
        ])
        .unwrap();
        assert_eq!(vault.secrets.secret_store, SecretBackend::Vault);
        assert_eq!(vault.secrets.vault.vault_mount, "kv");
        assert_eq!(vault.secrets.vault.vault_prefix, "ocelot");
        assert_eq!(vault.secrets.vault.vault_approle_mount, "approle");
        assert!(Cli::try_parse_from(["ocelot-admin", "--secret-store", "s3"]).is_err());
    }

    #[test]
    fn an_approle_without_a_secret_id_file_that_exists_is_refused() {
        let cli = Cli::try_parse_from([
            "ocelot-admin",
            "--secret-store",
            "vault",
            "--vault-addr",
            "https://vault.example:8200",
            "--vault-role-id",
            "role-1",
            "--vault-secret-id-file",
            "/nonexistent/secret-id",
        ])
        .unwrap();
        let error = cli.secrets.vault.config().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/secret-id"), "{error}");
    }

    #[test]
    fn an_approle_reads_its_secret_id_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret-id");
        std::fs::write(&file, "84896a0c-1347-aa90-a4f6-aca8b7558780\n").unwrap();
        let cli = Cli::try_parse_from([
            "ocelot-admin",
            "--vault-addr",
            "https://vault.example:8200",
            "--vault-role-id",
            "59d6d1ca-47bb-4e7e-a40b-8be3bc5a0ba8",
            "--vault-secret-id-file",
            file.to_str().unwrap(),
        ])
        .unwrap();
        let config = cli.secrets.vault.config().unwrap();
        match config.auth {
            super::super::vault::VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                assert_eq!(mount, "approle");
                assert_eq!(role_id, "59d6d1ca-47bb-4e7e-a40b-8be3bc5a0ba8");
                assert_eq!(secret_id, "84896a0c-1347-aa90-a4f6-aca8b7558780");
            }
            other => panic!("expected an AppRole, got {other:?}"),
        }
    }
}
