//! Record sources: who the caller is, and the deployment records they may read. Two
//! implementations behind [`RecordSource`]: the real LLP API ([`directus`], read with the
//! caller's token so that the LLP's own permissions decide) and an embedded SQLite file for
//! laptops and the demo ([`embedded`]).

pub mod directus;
pub mod embedded;
mod single_flight;
mod ttl_cache;

use futures::future::BoxFuture;
use llp_spec::Record;
use serde::Serialize;
use std::sync::Arc;

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

/// A bearer token (a caller's, or a configured one). Its `Debug` hides it, so it never
/// reaches a log, also when a configuration is printed.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Wraps a token as sent by the caller.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, to be sent on to the record source.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// An authenticated caller: who they are, and the token that proved it (the `directus`
/// source reads records with it, so that the LLP decides what they may read).
#[derive(Debug, Clone)]
pub struct Session {
    /// Who is calling (shared with the source's cache: a request copies no field of it).
    pub identity: Arc<Identity>,
    /// Their token.
    pub token: Token,
}

/// Where users and deployment records come from.
pub trait RecordSource: Send + Sync {
    /// What to call it in error messages: "the LLP API", "the record store".
    fn name(&self) -> &'static str;

    /// The user holding `token`.
    fn authenticate<'a>(&'a self, token: &'a Token) -> BoxFuture<'a, Result<Arc<Identity>, RecordError>>;

    /// The record `id`, if the session may read it. For [`Purpose::Look`] a source may answer
    /// from a short cache; for [`Purpose::Act`] it asks afresh.
    fn record<'a>(
        &'a self,
        session: &'a Session,
        id: &'a str,
        purpose: Purpose,
    ) -> BoxFuture<'a, Result<Arc<Record>, RecordError>>;

    /// The GPU reservations not ended at `now` that may cover a deployment of `owner`: those
    /// naming one of `deployments`, and `owner`'s own (SPEC section 10).
    fn reservations<'a>(
        &'a self,
        session: &'a Session,
        owner: &'a str,
        deployments: &'a [String],
        now: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Vec<llp_spec::reservations::Reservation>, RecordError>>;

    /// The reservations that overlap `[from, to)` and `session`'s holder may read: admins
    /// every one, others those they are among the users of (the usage report).
    fn bookings_between<'a>(
        &'a self,
        session: &'a Session,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Vec<llp_spec::reservations::Reservation>, RecordError>>;

    /// Every reservation not ended at `now`, as the service itself reads them: the `directus`
    /// source reads with its configured service token, or else with `fallback` (what that
    /// token's holder may see), and fails naming the setting when it has neither.
    fn open_reservations<'a>(
        &'a self,
        fallback: Option<&'a Token>,
        now: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Vec<llp_spec::reservations::Reservation>, RecordError>>;

    /// The id of every deployment record, as the service itself reads them (the orphan
    /// reconciler's question: which deployments still have a record). The `directus` source
    /// reads with its service token, or else with `fallback`, and fails naming the setting
    /// when it has neither.
    fn record_ids<'a>(&'a self, fallback: Option<&'a Token>) -> BoxFuture<'a, Result<Vec<String>, RecordError>>;

    /// Whether the source answers (for `/readyz`).
    fn ping(&self) -> BoxFuture<'_, Result<(), RecordError>>;
}

/// What a record is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// To show something about the deployment (status, logs, events): polled often, and
    /// harmless if a permission taken away a few seconds ago still lets it through.
    Look,
    /// To change the cluster or reveal stored data (deploy, scale, delete, secrets): the LLP
    /// is asked every time.
    Act,
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
    /// The LLP API refuses the caller this record; like Directus, it says the same for a
    /// record that does not exist.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request is not valid (a field of the wrong type, …).
    #[error("{0}")]
    Invalid(String),
    /// One field of the request is not valid.
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    /// The record source is there but failed (a database error): 503.
    #[error("{source_name} failed: {detail}")]
    Unavailable { source_name: &'static str, detail: String },
    /// The record source cannot be reached or answered nonsense: 502.
    #[error("{source_name} is unreachable or answered badly: {detail}")]
    BadGateway { source_name: &'static str, detail: String },
    /// The record source did not answer in time: 504.
    #[error("{source_name} did not answer in time")]
    Timeout { source_name: &'static str },
}

/// Where GPU holds ([`llp_spec::usage::Hold`]) are kept, with the records: the embedded
/// SQLite file, or a collection of the LLP API.
pub trait UsageStore: Send + Sync {
    /// Writes `holds`: one not known is added; a known one (same pod uid and profile) takes
    /// the end and last sighting written, and keeps its start.
    fn record<'a>(&'a self, holds: &'a [llp_spec::usage::Hold]) -> BoxFuture<'a, Result<(), RecordError>>;

    /// The holds without an end.
    fn open_holds(&self) -> BoxFuture<'_, Result<Vec<llp_spec::usage::Hold>, RecordError>>;

    /// The holds that lasted into `[from, to)` (open ones included).
    fn holds_between(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<Vec<llp_spec::usage::Hold>, RecordError>>;
}
