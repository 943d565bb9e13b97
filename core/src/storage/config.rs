//! Where objects are stored, from flags or the environment: `--storage dir:/path` (a
//! directory on this machine, the default) or `--storage s3://bucket[/prefix]` (any
//! S3-compatible server: `--storage-endpoint`, `--storage-region`, credentials from
//! `OCELOT_STORAGE_ACCESS_KEY_ID`/`OCELOT_STORAGE_SECRET_ACCESS_KEY` or the usual `AWS_*`
//! variables).

use super::StorageError;
use clap::Args;
use std::path::PathBuf;

/// `--storage`.
pub const OCELOT_STORAGE: &str = "OCELOT_STORAGE";
/// `--storage-endpoint`.
pub const OCELOT_STORAGE_ENDPOINT: &str = "OCELOT_STORAGE_ENDPOINT";
/// `--storage-region`.
pub const OCELOT_STORAGE_REGION: &str = "OCELOT_STORAGE_REGION";
/// The S3 access key id (else `AWS_ACCESS_KEY_ID`).
pub const OCELOT_STORAGE_ACCESS_KEY_ID: &str = "OCELOT_STORAGE_ACCESS_KEY_ID";
/// The S3 secret access key (else `AWS_SECRET_ACCESS_KEY`).
pub const OCELOT_STORAGE_SECRET_ACCESS_KEY: &str = "OCELOT_STORAGE_SECRET_ACCESS_KEY";
/// `--storage-credential`.
pub const OCELOT_STORAGE_CREDENTIAL: &str = "OCELOT_STORAGE_CREDENTIAL";

/// Where a service keeps and reads artifacts (and caches).
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Object storage: `dir:/path` (a directory on this machine) or `s3://bucket[/prefix]`
    /// (S3 or an S3-compatible server); default: `dir:` a folder `ocelot-storage` in the
    /// system's temporary directory. Every worker and admin must name the same storage
    #[arg(long = "storage", env = OCELOT_STORAGE)]
    pub storage: Option<String>,
    /// S3 endpoint of an S3-compatible server, e.g. http://127.0.0.1:9000 (default: AWS)
    #[arg(long = "storage-endpoint", env = OCELOT_STORAGE_ENDPOINT)]
    pub endpoint: Option<String>,
    /// S3 region
    #[arg(long = "storage-region", env = OCELOT_STORAGE_REGION, default_value = "us-east-1")]
    pub region: String,
    /// S3 access key id (else AWS_ACCESS_KEY_ID)
    #[arg(long = "storage-access-key-id", env = OCELOT_STORAGE_ACCESS_KEY_ID, hide_env_values = true)]
    pub access_key_id: Option<String>,
    /// S3 secret access key (else AWS_SECRET_ACCESS_KEY); prefer the environment to the command line
    #[arg(long = "storage-secret-access-key", env = OCELOT_STORAGE_SECRET_ACCESS_KEY, hide_env_values = true)]
    pub secret_access_key: Option<String>,
    /// The S3 key from the credential of this name (kind `storage`: `ocelot creds add
    /// storage NAME --prefix '' --username KEY_ID`, the secret key as its value), read from
    /// the secret store at start; instead of the key in the environment
    #[arg(long = "storage-credential", env = OCELOT_STORAGE_CREDENTIAL, conflicts_with_all = ["access_key_id", "secret_access_key"])]
    pub credential: Option<String>,
}

impl StorageArgs {
    /// The directory `dir` (for tests and embedded set-ups).
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        StorageArgs {
            storage: Some(format!("dir:{}", dir.into().display())),
            endpoint: None,
            region: "us-east-1".to_string(),
            access_key_id: None,
            secret_access_key: None,
            credential: None,
        }
    }

    /// These settings with the key of the `storage` credential `--storage-credential`
    /// names (when it names one), read from `secrets`.
    pub async fn with_credential(
        mut self,
        secrets: &impl crate::secrets::SecretStore,
    ) -> Result<StorageArgs, StorageError> {
        let Some(name) = self.credential.clone() else {
            return Ok(self);
        };
        let missing = || {
            StorageError::Config(format!(
                "--storage-credential names `{name}`, and there is no storage credential of \
                 that name: add it with `printf %s \"$SECRET_KEY\" | ocelot creds add storage \
                 {name} --prefix '' --username ACCESS_KEY_ID`"
            ))
        };
        // a storage credential is stored with the empty prefix, which covers every name
        let credentials = secrets.for_repo("").await.map_err(|error| {
            StorageError::Config(format!(
                "reading the storage credential `{name}` from the secret store: {error}"
            ))
        })?;
        let credential = credentials
            .into_iter()
            .find(|c| c.info.kind == crate::secrets::CredentialKind::Storage && c.info.name == name)
            .ok_or_else(missing)?;
        self.access_key_id = credential.info.details.username.clone();
        self.secret_access_key = Some(credential.value.expose().to_string());
        Ok(self)
    }

    /// What `--storage` names.
    pub fn location(&self) -> Result<Location, StorageError> {
        match &self.storage {
            None => Ok(Location::Dir(std::env::temp_dir().join("ocelot-storage"))),
            Some(text) => Location::parse(text),
        }
    }
}

/// A parsed `--storage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory on this machine.
    Dir(PathBuf),
    /// An S3 bucket, and a key prefix within it (no leading or trailing `/`).
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// `dir:/path`, a plain absolute path, or `s3://bucket[/prefix]`.
    pub fn parse(text: &str) -> Result<Location, StorageError> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StorageError::Config(format!(
                    "`{text}` names no bucket: write s3://BUCKET or s3://BUCKET/PREFIX"
                )));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        let path = text.strip_prefix("dir:").unwrap_or(text);
        if path.is_empty() || text.contains("://") {
            return Err(StorageError::Config(format!(
                "`{text}` is neither dir:/PATH nor s3://BUCKET[/PREFIX]"
            )));
        }
        Ok(Location::Dir(PathBuf::from(path)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(path) => write!(f, "dir:{}", path.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            Location::parse("dir:/var/lib/ocelot").unwrap(),
            Location::Dir("/var/lib/ocelot".into())
        );
        assert_eq!(
            Location::parse("/srv/o").unwrap(),
            Location::Dir("/srv/o".into())
        );
        assert_eq!(
            Location::parse("s3://ci/artifacts/").unwrap(),
            Location::S3 {
                bucket: "ci".into(),
                prefix: "artifacts".into()
            }
        );
        assert_eq!(Location::parse("s3://ci").unwrap().to_string(), "s3://ci");
        assert!(Location::parse("s3:///x").is_err());
        assert!(Location::parse("gs://x").is_err());
        assert!(Location::parse("dir:").is_err());
    }
}
