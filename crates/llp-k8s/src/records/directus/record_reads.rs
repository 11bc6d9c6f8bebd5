//! Reading deployment records from the LLP API with the caller's token, and the short cache
//! in front of the reads made to look (status, logs, events).
//!
//! Polling is most of the traffic, and a Directus answers a few hundred record reads a second:
//! with each poll going there the LLP API was the limit (measured: 187 status requests/s).
//! So a record read to look is remembered for the TTL per token and id, in a
//! [`SingleFlight`] cache: concurrent polls of one record wait for one read, and a record
//! polled in the last quarter of its life is refreshed in the background while the poll is
//! answered at once, so a busy record never makes a poll wait. The price: a record taken away, or a token revoked, still
//! shows its status for up to the TTL. Reads made to act always go to the LLP.

use super::client::{Failure, LlpApi};
use crate::records::RecordError;
use crate::records::single_flight::SingleFlight;
use llp_spec::Record;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::Duration;

/// The fields of a record this service reads: all the caller may read. Naming them would make
/// Directus 11 refuse the read (403) in a collection without one of them, such as the
/// optional `date_created`; fields this service does not know are ignored.
const RECORD_FIELDS: &str = "*";

/// Record reads of one collection. Clones share the cache (a refresh runs on a clone).
#[derive(Clone)]
pub(super) struct RecordReads {
    api: LlpApi,
    collection: Arc<str>,
    /// The records read to look, by token and id.
    looked: SingleFlight<Arc<Record>>,
}

impl RecordReads {
    pub(super) fn new(api: LlpApi, collection: &str, ttl: Duration) -> Self {
        Self {
            api,
            collection: collection.into(),
            // Half a TTL more while a slow LLP API refreshes a record: polls never wait for it.
            looked: SingleFlight::with_stale(ttl, ttl / 2),
        }
    }

    /// Counts its requests and cache answers in `metrics`.
    pub(super) fn count_in(&mut self, metrics: super::LlpApiMetrics) {
        self.looked.count_in(&metrics.lookups, "records");
        self.api.metrics = metrics;
    }

    /// Reads record `id` with `token` from the LLP API, and remembers it for looking.
    pub(super) async fn read(&self, token: &str, id: &str) -> Result<Arc<Record>, RecordError> {
        let record = Arc::new(self.fetch(token, id).await?);
        self.looked.remember(&question(token, id), record.clone());
        Ok(record)
    }

    /// Record `id` for looking at: from the cache when it may be.
    pub(super) async fn look(&self, token: &str, id: &str) -> Result<Arc<Record>, RecordError> {
        // What a read needs is copied only when one is made: most looks are answered by the
        // cache, and a poll should not pay for a read it does not make.
        let read = || {
            let (reads, token, id) = (self.clone(), token.to_owned(), id.to_owned());
            async move { reads.fetch(&token, &id).await.map(Arc::new) }
        };
        self.looked.get(&question(token, id), read).await
    }

    /// The id of every record `token` may read (all of them for the service token).
    pub(super) async fn ids(&self, token: &str) -> Result<Vec<String>, RecordError> {
        #[derive(serde::Deserialize)]
        struct Id {
            id: serde_json::Value,
        }
        let path = format!("/items/{}?fields=id&limit=-1", self.collection);
        let items: Vec<Id> = self
            .api
            .get("items", &path, token)
            .await
            .map_err(|failure| match failure {
                Failure::Status(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, message) => {
                    RecordError::Forbidden(format!(
                        "the LLP API does not let this token list the ids of `{}` ({message}); the service token needs read access to it",
                        self.collection
                    ))
                }
                other => other.into_error("/items (ids)"),
            })?;
        // Integer or text ids, as the record's own `RecordId` prints them.
        Ok(items
            .into_iter()
            .filter_map(|item| match item.id {
                serde_json::Value::String(text) => Some(text),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect())
    }

    async fn fetch(&self, token: &str, id: &str) -> Result<Record, RecordError> {
        let path = format!("/items/{}/{id}?fields={RECORD_FIELDS}", self.collection);
        self.api
            .get("items", &path, token)
            .await
            .map_err(|failure| match failure {
                Failure::Status(StatusCode::UNAUTHORIZED, _) => RecordError::Unauthorized,
                Failure::Status(StatusCode::FORBIDDEN, _) => RecordError::Forbidden(format!(
                    "the LLP API does not let you read deployment `{id}` (it does not exist, or it is not yours)"
                )),
                Failure::Status(StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST, _) => RecordError::NotFound,
                other => other.into_error("/items"),
            })
    }
}

/// The cache key: the token is part of it, so one caller's answer never serves another.
fn question(token: &str, id: &str) -> String {
    format!("{token}\n{id}")
}
