//! Reading deployment records from the LLP API with the caller's token, and the short cache
//! in front of the reads made to look (status, logs, events).
//!
//! Polling is most of the traffic, and a Directus answers a few hundred record reads a second:
//! with each poll going there the LLP API was the limit (measured: 187 status requests/s).
//! So a record read to look is remembered for the TTL per token and id; concurrent polls of
//! one record wait for one read (single flight); and a record polled in the last quarter of
//! its life is refreshed in the background while the poll is answered at once, so a busy
//! record never makes a poll wait. The price: a record taken away, or a token revoked, still
//! shows its status for up to the TTL. Reads made to act always go to the LLP.

use super::client::{Failure, LlpApi};
use crate::records::RecordError;
use crate::records::ttl_cache::{Lookup, TtlCache};
use llp_spec::Record;
use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The fields of a record this service reads.
const RECORD_FIELDS: &str = "id,title,data,exposed_service,exposed_port,exposed_hostname,user_created";

/// Record reads of one collection. Clones share the cache (a refresh runs on a clone).
#[derive(Clone)]
pub(super) struct RecordReads {
    api: LlpApi,
    collection: Arc<str>,
    cache: Arc<TtlCache<Record>>,
    /// A turn per question being read, so that concurrent readers wait for one read.
    turns: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl RecordReads {
    pub(super) fn new(api: LlpApi, collection: &str, ttl: Duration) -> Self {
        Self {
            api,
            collection: collection.into(),
            cache: Arc::new(TtlCache::new(ttl)),
            turns: Arc::default(),
        }
    }

    /// The client, to count its requests elsewhere.
    pub(super) fn api_mut(&mut self) -> &mut LlpApi {
        &mut self.api
    }

    /// Reads record `id` with `token` from the LLP API, and remembers it for looking.
    pub(super) async fn read(&self, token: &str, id: &str) -> Result<Record, RecordError> {
        let path = format!("/items/{}/{id}?fields={RECORD_FIELDS}", self.collection);
        let record: Record = self
            .api
            .get("items", &path, token)
            .await
            .map_err(|failure| match failure {
                Failure::Status(StatusCode::UNAUTHORIZED, _) => RecordError::Unauthorized,
                Failure::Status(StatusCode::FORBIDDEN, _) => RecordError::Forbidden(format!(
                    "the LLP API does not let you read deployment `{id}` (it does not exist, or it is not yours)"
                )),
                Failure::Status(StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST, _) => RecordError::NotFound,
                other => other.into_error("/items"),
            })?;
        self.cache.insert(&question(token, id), record.clone(), Instant::now());
        Ok(record)
    }

    /// Record `id` for looking at: from the cache when it may be.
    pub(super) async fn look(&self, token: &str, id: &str) -> Result<Record, RecordError> {
        let question = question(token, id);
        match self.cache.lookup(&question, Instant::now()) {
            Lookup::Fresh(record) => return Ok(record),
            Lookup::Aging(record) => {
                self.refresh_ahead(token, id, &question);
                return Ok(record);
            }
            Lookup::Missing => {}
        }
        let turn = self.turn(&question);
        let _turn = turn.lock().await;
        // Removes the turn however this ends (also when the caller goes away mid-read).
        let _done = TurnDone {
            reads: self,
            question: &question,
        };
        // Whoever had the turn before may have filled the cache.
        if let Some(record) = self.cache.get(&question, Instant::now()) {
            return Ok(record);
        }
        self.read(token, id).await
    }

    fn turn(&self, question: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
        turns.entry(question.to_owned()).or_default().clone()
    }

    fn end_turn(&self, question: &str) {
        self.turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(question);
    }

    /// Reads the record again in the background, unless a read of it is under way.
    fn refresh_ahead(&self, token: &str, id: &str, question: &str) {
        let Ok(turn) = self.turn(question).try_lock_owned() else {
            return;
        };
        let (reads, token, id, question) = (self.clone(), token.to_owned(), id.to_owned(), question.to_owned());
        tokio::spawn(async move {
            let _done = TurnDone {
                reads: &reads,
                question: &question,
            };
            // A failed refresh changes nothing: the entry expires and the next poll reads.
            let _ = reads.read(&token, &id).await;
            drop(turn);
        });
    }
}

/// Ends a question's turn when dropped.
struct TurnDone<'a> {
    reads: &'a RecordReads,
    question: &'a str,
}

impl Drop for TurnDone<'_> {
    fn drop(&mut self) {
        self.reads.end_turn(self.question);
    }
}

/// The cache key: the token is part of it, so one caller's answer never serves another.
fn question(token: &str, id: &str) -> String {
    format!("{token}\n{id}")
}
