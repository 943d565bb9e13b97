//! Admin errors and their one mapping to gRPC statuses: every handler returns an
//! [`AdminError`] (or a source error it converts from), and only this module decides the
//! status code, so the same failure gets the same code on every path.

use ocelot_core::git::GitError;
use ocelot_core::secrets::SecretError;
use ocelot_core::store::StoreError;
use ocelot_core::trigger::TriggerError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

fn git_status(error: &GitError) -> Status {
    match error {
        GitError::BranchNotFound { .. } | GitError::CommitNotFound { .. } => {
            Status::not_found(error.to_string())
        }
        _ => Status::failed_precondition(error.to_string()),
    }
}

pub(crate) fn store_status(error: &StoreError) -> Status {
    match error {
        StoreError::NotFound(_) => Status::not_found(error.to_string()),
        StoreError::Conflict(_) => Status::already_exists(error.to_string()),
        StoreError::Unavailable(_) => Status::unavailable(error.to_string()),
        StoreError::Refused(_) => Status::failed_precondition(error.to_string()),
        _ => {
            tracing::error!(%error, "store error");
            Status::internal(error.to_string())
        }
    }
}

/// A secret store's failure: a bad request, a missing or wrong master key (the operator's to
/// fix), Vault failing or refusing (unavailable: the same on every path).
fn secret_status(error: &SecretError, message: String) -> Status {
    match error {
        SecretError::Invalid(_) => Status::invalid_argument(message),
        SecretError::NoMasterKey | SecretError::WrongMasterKey { .. } => {
            Status::failed_precondition(message)
        }
        SecretError::Store(store) => store_status(store),
        SecretError::Backend(_) => Status::unavailable(message),
        SecretError::Cipher(_) => {
            tracing::error!(%message, "credential cipher error");
            Status::internal(message)
        }
    }
}

impl From<AdminError> for Status {
    fn from(error: AdminError) -> Self {
        match &error {
            AdminError::Invalid(message) => Status::invalid_argument(message.clone()),
            AdminError::Store(store) => store_status(store),
            AdminError::Secret(secret) => secret_status(secret, error.to_string()),
            AdminError::Trigger(TriggerError::Store(store)) => store_status(store),
            AdminError::Trigger(TriggerError::Git(git)) => git_status(git),
            AdminError::Trigger(TriggerError::Secrets(secret)) => {
                secret_status(secret, error.to_string())
            }
            AdminError::Trigger(TriggerError::NotOnBranch { .. }) => {
                Status::failed_precondition(error.to_string())
            }
            AdminError::Trigger(TriggerError::GitTask(_)) => {
                tracing::error!(error = %ocelot_core::error_chain::error_chain(&error), "trigger failed");
                Status::internal(error.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn a_vault_outage_is_unavailable_on_every_path() {
        let direct = Status::from(AdminError::from(SecretError::Backend(
            "Vault: sealed".into(),
        )));
        let through_a_trigger = Status::from(AdminError::from(TriggerError::Secrets(
            SecretError::Backend("Vault: sealed".into()),
        )));
        assert_eq!(direct.code(), Code::Unavailable);
        assert_eq!(through_a_trigger.code(), Code::Unavailable);
    }

    #[test]
    fn store_errors_keep_their_kind() {
        let code = |e: StoreError| Status::from(AdminError::from(e)).code();
        assert_eq!(code(StoreError::NotFound("build 7".into())), Code::NotFound);
        assert_eq!(
            code(StoreError::Conflict("exists".into())),
            Code::AlreadyExists
        );
        assert_eq!(
            code(StoreError::Unavailable("down".into())),
            Code::Unavailable
        );
        assert_eq!(code(StoreError::Query("bad".into())), Code::Internal);
        let through_secrets = Status::from(AdminError::from(SecretError::Store(
            StoreError::Unavailable("down".into()),
        )));
        assert_eq!(through_secrets.code(), Code::Unavailable);
    }

    #[test]
    fn a_missing_master_key_is_the_operators_to_fix() {
        let status = Status::from(AdminError::from(SecretError::NoMasterKey));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.message().contains("OCELOT_MASTER_KEY_FILE"));
    }
}
