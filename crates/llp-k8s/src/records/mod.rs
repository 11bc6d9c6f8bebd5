//! Record sources: who the caller is, and the deployment records they may read. Two
//! implementations: the real LLP API (Directus, read with the caller's token; to come) and
//! an embedded SQLite file for laptops and the demo ([`embedded`]).

pub mod embedded;

use llp_spec::Record;
use serde::Serialize;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// User id (the records' `user_created`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Groups, for limits.
    pub groups: Vec<String>,
    /// Admins may act on every record.
    pub admin: bool,
}

impl Identity {
    /// Whether this caller may act on `record`.
    pub fn may_access(&self, record: &Record) -> bool {
        self.admin || record.user_created.as_deref() == Some(self.id.as_str())
    }
}

/// Why a record source could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No token, or one nobody holds.
    #[error("invalid or missing token")]
    Unauthorized,
    /// The record does not exist, or the caller may not see it (the same answer, so that
    /// ids of others' records cannot be probed).
    #[error("record not found")]
    NotFound,
    /// The request is not valid (a field of the wrong type, …).
    #[error("{0}")]
    Invalid(String),
    /// The record source failed.
    #[error("record store failed: {0}")]
    Unavailable(String),
}
