//! Per-user caps on long-lived connections that hold across replicas (SPEC section 6): a
//! log stream or a terminal is counted in its user's session book, a ConfigMap in the
//! managed namespace (format: [`llp_spec::sessions`]), written with a `resourceVersion`
//! precondition, so that of two replicas opening a user's last free session at once only
//! one wins. A replica renews the entries of its open sessions and removes them when they
//! close; a replica that dies leaves entries that stop counting after [`HOLD`].
//!
//! Both kinds already cost the cluster a connection each (the log stream, the exec), so the
//! book's few writes per session do not change what they cost. Status streams are served
//! from the watches without any request, and stay capped per replica.

use crate::cluster::Cluster;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use llp_spec::names::{OWNER_LABEL, label_value, session_book};
use llp_spec::sessions::{Book, key};
use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// The sessions this process closed whose entries are still being removed: they no longer
/// count here, so that a stream closed and opened again at once is not refused.
static CLOSING: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

fn closing() -> std::sync::MutexGuard<'static, HashSet<String>> {
    CLOSING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long an entry counts without being renewed.
pub const HOLD: Duration = Duration::from_secs(90);

/// How often an open session's entry is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(30);

/// How long opening a session may take, conflicts included.
const DEADLINE: Duration = Duration::from_secs(10);

/// The label that marks a session book (its value `sessions`).
pub const BOOK_LABEL: &str = "llp.kitegg.de/book";

/// What a user has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// `logs?follow=true`.
    Logs,
    /// A terminal (`/exec`).
    Terminal,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::Logs => "logs",
            SessionKind::Terminal => "terminal",
        }
    }
}

/// Why no session was opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The user has `max` open already, in this replica or others.
    #[error("at most {max} open")]
    Full { max: usize },
    /// The cluster failed.
    #[error(transparent)]
    Cluster(#[from] kube::Error),
    /// The cluster did not answer in time, or other openings of the user kept winning.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One open session, counted until dropped (and renewed meanwhile).
pub struct Held {
    api: Api<ConfigMap>,
    book: String,
    user: String,
    key: String,
    renewal: tokio::task::AbortHandle,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewal.abort();
        let (api, book, user, key) = (self.api.clone(), self.book.clone(), self.user.clone(), self.key.clone());
        // Best effort: an entry left behind stops counting after `HOLD`.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            closing().insert(key.clone());
            runtime.spawn(async move {
                if let Err(error) = set(&api, &book, &user, &key, None).await {
                    tracing::warn!(%error, %book, "a closed session stays in its user's book until it expires");
                }
                closing().remove(&key);
            });
        }
    }
}

/// Opens a session of `kind` for `user` unless they have `max` open in all replicas.
pub async fn open(cluster: &Cluster, user: &str, kind: SessionKind, max: usize) -> Result<Held, OpenError> {
    let api: Api<ConfigMap> = cluster.api();
    let book = session_book(user);
    let key = key(kind.as_str(), &uuid::Uuid::new_v4().simple().to_string());
    let attempts = async {
        for attempt in 0_u32.. {
            let current = api.get_opt(&book).await?;
            let now = Timestamp::now();
            let mut read = Book::from_data(current.as_ref().and_then(|c| c.data.as_ref()));
            // What this process is closing is gone as far as it is concerned (and this
            // write removes it too).
            read.entries.retain(|key, _| !closing().contains(key));
            if read.open(kind.as_str(), now) >= max {
                return Err(OpenError::Full { max });
            }
            if write(
                &api,
                &book,
                user,
                current.as_ref(),
                &read.with(now, &key, Some(until(now))),
            )
            .await?
            {
                return Ok(());
            }
            tokio::time::sleep(super::ledger::backoff(attempt)).await;
        }
        unreachable!("the loop returns")
    };
    tokio::time::timeout(DEADLINE, attempts)
        .await
        .unwrap_or(Err(OpenError::Timeout(DEADLINE)))?;
    let renewal = {
        let (api, book, user, key) = (api.clone(), book.clone(), user.to_owned(), key.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                if let Err(error) = set(&api, &book, &user, &key, Some(until(Timestamp::now()))).await {
                    tracing::warn!(%error, %book, "renewing a session failed; trying again");
                }
            }
        })
        .abort_handle()
    };
    Ok(Held {
        api,
        book,
        user: user.to_owned(),
        key,
        renewal,
    })
}

/// Sets `key`'s entry in `user`'s book to count until `until`, or removes it (`None`).
async fn set(
    api: &Api<ConfigMap>,
    book: &str,
    user: &str,
    key: &str,
    until: Option<Timestamp>,
) -> Result<(), kube::Error> {
    for attempt in 0..16_u32 {
        let current = api.get_opt(book).await?;
        let read = Book::from_data(current.as_ref().and_then(|c| c.data.as_ref()));
        if until.is_none() && !read.entries.contains_key(key) {
            return Ok(());
        }
        if write(
            api,
            book,
            user,
            current.as_ref(),
            &read.with(Timestamp::now(), key, until),
        )
        .await?
        {
            return Ok(());
        }
        tokio::time::sleep(super::ledger::backoff(attempt)).await;
    }
    Ok(())
}

fn until(now: Timestamp) -> Timestamp {
    let hold = jiff::SignedDuration::try_from(HOLD).unwrap_or(jiff::SignedDuration::from_secs(90));
    now.checked_add(hold).unwrap_or(now)
}

/// Writes `book` over `current` (created when there is none); `false` when another write came
/// first.
async fn write(
    api: &Api<ConfigMap>,
    name: &str,
    user: &str,
    current: Option<&ConfigMap>,
    book: &Book,
) -> Result<bool, kube::Error> {
    let labels = [(BOOK_LABEL, "sessions"), (OWNER_LABEL, &label_value(user))];
    super::ledger::write_over(api, name, &labels, current, book.to_data()).await
}
