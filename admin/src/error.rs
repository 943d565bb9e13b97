//! Admin errors and their one mapping to gRPC statuses.

use ocelot_core::git::GitError;
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
}

fn git_status(error: &GitError) -> Status {
    match error {
        GitError::BranchNotFound { .. } | GitError::CommitNotFound { .. } => {
            Status::not_found(error.to_string())
        }
        _ => Status::failed_precondition(error.to_string()),
    }
}

fn store_status(error: &StoreError) -> Status {
    match error {
        StoreError::NotFound(_) => Status::not_found(error.to_string()),
        StoreError::Conflict(_) => Status::already_exists(error.to_string()),
        StoreError::Unavailable(_) => Status::unavailable(error.to_string()),
        _ => {
            tracing::error!(%error, "store error");
            Status::internal(error.to_string())
        }
    }
}

impl From<AdminError> for Status {
    fn from(error: AdminError) -> Self {
        match &error {
            AdminError::Invalid(message) => Status::invalid_argument(message.clone()),
            AdminError::Store(store) => store_status(store),
            AdminError::Trigger(TriggerError::Store(store)) => store_status(store),
            AdminError::Trigger(TriggerError::Git(git)) => git_status(git),
            AdminError::Trigger(TriggerError::Secrets(_)) => {
                Status::failed_precondition(error.to_string())
            }
            AdminError::Trigger(TriggerError::Internal(_)) => {
                tracing::error!(%error, "trigger failed");
                Status::internal(error.to_string())
            }
        }
    }
}
