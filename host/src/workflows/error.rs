//! Why a workflow call was refused, for the API to map to a status.

use crate::model::validate::ValidationError;
use crate::store::StoreError;

/// Why a workflow call was refused.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// A field of the definition is missing or wrong.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// No workflow of the tenant has this name.
    #[error("no workflow named {0:?}")]
    NotFound(String),
    /// No workflow run of the tenant has this id.
    #[error("no workflow run with id {0:?}")]
    RunNotFound(String),
    /// The workflow run is over (cancel) or still going or succeeded
    /// (retry).
    #[error("{0}")]
    Conflict(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
