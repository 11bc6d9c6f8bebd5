//! Why an operation did not happen, in the words of the deployment, not of HTTP: the edge
//! turns each into its status and Directus body in one place (`http::error`).

use crate::cluster::shared::SharedError;
use crate::records::RecordError;
use llp_spec::FieldError;

/// Why an operation was refused or failed.
#[derive(Debug)]
pub enum Error {
    /// The record, the deployment or the pod is unknown to the caller (or not theirs).
    NotFound(String),
    /// A value the caller gave cannot be used, on `field` when known.
    Invalid { field: Option<String>, message: String },
    /// The deployment spec is invalid, every problem listed.
    Validation(Vec<FieldError>),
    /// The change conflicts with another deployment (a hostname, a volume's name).
    Conflict { field: String, message: String },
    /// The deployment's previous objects are still being deleted: retry shortly.
    StillDeleting { objects: Vec<String> },
    /// The change would take the owner over their group's quota.
    OverQuota(String),
    /// The GPU reservations active now do not cover the change.
    NotEnoughResources(llp_spec::reservations::Shortfall),
    /// A deploy stopped at `object` because the cluster failed; the next deploy repairs it.
    PartlyApplied { object: String },
    /// A dependency (`the cluster`) failed.
    Unavailable { dependency: &'static str },
    /// A dependency did not answer in time.
    Timeout { dependency: &'static str },
    /// The record source refused or failed.
    Records(RecordError),
    /// The caller has the most sessions of `kind` open, in every replica together.
    TooManySessions {
        kind: crate::cluster::sessions::SessionKind,
        max: usize,
    },
}

impl From<RecordError> for Error {
    fn from(error: RecordError) -> Self {
        Error::Records(error)
    }
}

impl Error {
    /// A failed cluster request: what Kubernetes says means "not found", "conflict" or
    /// "invalid" is that, with its message; no answer in time is a timeout; anything else
    /// names the cluster as unavailable (the detail goes to the log).
    pub fn cluster(error: kube::Error) -> Self {
        match &error {
            kube::Error::Api(status) if status.code == 404 => {
                tracing::info!(%error, "the cluster says not found");
                Error::NotFound(format!("not found in the cluster: {}", status.message))
            }
            kube::Error::Api(status) if status.code == 409 => {
                tracing::info!(%error, "the cluster says conflict");
                Error::Conflict {
                    field: String::new(),
                    message: format!(
                        "the cluster refused a conflicting change ({}); try again.",
                        status.message
                    ),
                }
            }
            kube::Error::Api(status) if status.code == 400 || status.code == 422 => {
                tracing::info!(%error, "the cluster says invalid");
                Error::Invalid {
                    field: None,
                    message: format!("the cluster refused it: {}", status.message),
                }
            }
            _ if crate::cluster::calls::timed_out(&error) => {
                tracing::error!(%error, "the cluster did not answer in time");
                Error::Timeout {
                    dependency: "the cluster",
                }
            }
            _ => {
                tracing::error!(%error, "cluster request failed");
                Error::Unavailable {
                    dependency: "the cluster",
                }
            }
        }
    }

    /// A session of `kind` that could not be opened (see [`crate::cluster::sessions`]).
    pub fn session(kind: crate::cluster::sessions::SessionKind, error: crate::cluster::sessions::OpenError) -> Self {
        use crate::cluster::sessions::OpenError;
        match error {
            OpenError::Full { max } => Error::TooManySessions { kind, max },
            OpenError::Cluster(error) => Error::cluster(error),
            OpenError::Timeout(_) => Error::Timeout {
                dependency: "the cluster",
            },
        }
    }

    /// A shared volume's claim: someone else's name is a conflict, one still being deleted a
    /// conflict to retry, a cluster failure as [`Error::cluster`].
    pub fn shared(error: SharedError) -> Self {
        match error {
            SharedError::Foreign { claim } => Error::Conflict {
                field: "volumes".into(),
                message: format!(
                    "volumes: a volume claim named `{claim}` already exists and is not one of your shared volumes; ask an administrator."
                ),
            },
            SharedError::Deleting { claim } => Error::StillDeleting {
                objects: vec![format!("claim {claim}")],
            },
            SharedError::Cluster { source, .. } => Error::cluster(source),
        }
    }

    /// A removal that stopped (see [`crate::cluster::removal`]).
    pub fn removal(error: crate::cluster::removal::RemovalError) -> Self {
        match error {
            crate::cluster::removal::RemovalError::Cluster(error) => Error::cluster(error),
            crate::cluster::removal::RemovalError::Shared(error) => Error::shared(error),
        }
    }

    /// A value the caller gave, on `field`, cannot be used.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}
