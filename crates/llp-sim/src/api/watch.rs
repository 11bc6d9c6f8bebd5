//! `?watch=true`: a stream of `{"type", "object"}` lines. Starts from a resourceVersion
//! (replaying the store's history), or from now with the current objects as ADDED; sends
//! bookmarks when asked; answers a too-old version with an ERROR event carrying 410 Gone.

use super::events_v1;
use super::objects::Request;
use super::path::Target;
use super::status::ApiError;
use crate::resources::RESOURCES;
use crate::store::selector::{FieldSelector, LabelSelector};
use crate::store::{Change, EventType, StoreError};
use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// How often a bookmark is sent to watches that allow them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

struct Filter {
    /// The kind as stored.
    resource: usize,
    /// The kind as the client asked for it (`events.k8s.io` events are stored as core ones).
    presented: usize,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    /// Each event's object is a one-row Table (`kubectl get -w` asks so), not the object.
    table: bool,
}

impl Filter {
    /// The watch line of a change, serialized once and shared unless it must be translated.
    fn line(&self, change: &Change) -> Bytes {
        if self.presented == self.resource && !self.table {
            change.watch_line()
        } else {
            line(&self.event(change.event.as_str(), &change.object))
        }
    }

    fn event(&self, kind: &str, object: &Value) -> Value {
        let object = events_v1::present(self.presented, object);
        if !self.table {
            return json!({"type": kind, "object": object});
        }
        let revision = object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|rv| rv.parse().ok())
            .unwrap_or(0);
        let table = super::table::render(
            RESOURCES[self.presented].kind,
            &[Arc::new(object)],
            revision,
            jiff::Timestamp::now(),
        );
        json!({"type": kind, "object": table})
    }

    fn matches(&self, resource: usize, object: &Value) -> bool {
        resource == self.resource
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| object["metadata"]["namespace"] == ns)
            && self.labels.matches_object(object)
            && self.fields.matches(object)
    }

    /// The line this watch sends for `change`, if any: a modified object that leaves the
    /// selection is DELETED (its previous content at the new version) and one that enters it
    /// ADDED, as kube-apiserver's watch cache reports them.
    fn line_for(&self, change: &Change) -> Option<Bytes> {
        let now = self.matches(change.resource, &change.object);
        let previous = change.previous.as_ref().filter(|_| change.event == EventType::Modified);
        let before = previous.is_some_and(|previous| self.matches(change.resource, previous));
        match (previous.is_some(), before, now) {
            (false, _, true) | (true, true, true) => Some(self.line(change)),
            (true, false, true) => Some(line(&self.event("ADDED", &change.object))),
            (true, true, false) => {
                let mut left = (**previous?).clone();
                left["metadata"]["resourceVersion"] = change.object["metadata"]["resourceVersion"].clone();
                Some(line(&self.event("DELETED", &left)))
            }
            _ => None,
        }
    }
}

/// Starts a watch.
pub async fn serve(request: &Request<'_>, target: &Target) -> Result<Response, ApiError> {
    let (labels, fields) = request.selectors(target.resource)?;
    let filter = Filter {
        resource: events_v1::storage(target.resource),
        presented: target.resource,
        namespace: target.namespace.clone(),
        labels,
        fields,
        table: request
            .headers
            .get(axum::http::header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(super::table::wants_table),
    };
    let bookmarks = request.params.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let initial_events_end = request.params.get("sendInitialEvents").is_some_and(|v| v == "true");
    let timeout = request
        .params
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let since = request
        .params
        .get("resourceVersion")
        .and_then(|rv| rv.parse::<u64>().ok())
        .filter(|rv| *rv > 0);

    // Subscribing under the store lock: every change after `revision` reaches `live`.
    let (initial, live, revision) = {
        let store = request.state.store.lock().expect("store lock");
        let live = store.subscribe(filter.resource);
        let initial: Result<Vec<Bytes>, StoreError> = match since {
            Some(rv) if !initial_events_end => store
                .changes_since(filter.resource, rv)
                .map(|changes| changes.iter().filter_map(|c| filter.line_for(c)).collect()),
            _ => Ok(store
                .list(
                    filter.resource,
                    filter.namespace.as_deref(),
                    &filter.labels,
                    &filter.fields,
                )
                .iter()
                .map(|o| line(&filter.event("ADDED", o)))
                .collect()),
        };
        (initial, live, store.revision())
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let kind = RESOURCES[target.resource].kind;
    let api_version = RESOURCES[target.resource].api_version();
    match initial {
        Err(gone) => {
            let status = ApiError::from(gone).status_body();
            let _ = tx.try_send(Ok(line(&json!({"type": "ERROR", "object": status}))));
        }
        Ok(events) => {
            let mut events = events;
            if initial_events_end {
                events.push(line(&bookmark(kind, &api_version, revision, true)));
            }
            tokio::spawn(stream(
                request.state.store.clone(),
                tx,
                events,
                live,
                filter,
                revision,
                bookmarks.then_some((kind, api_version)),
                timeout,
            ));
        }
    }
    let body = Body::from_stream(ReceiverStream::new(rx));
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

#[allow(clippy::too_many_arguments)]
async fn stream(
    store: Arc<std::sync::Mutex<crate::store::Store>>,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    initial: Vec<Bytes>,
    mut live: broadcast::Receiver<Arc<Change>>,
    filter: Filter,
    mut revision: u64,
    bookmarks: Option<(&'static str, String)>,
    timeout: Duration,
) {
    for event in initial {
        if tx.send(Ok(event)).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = &mut deadline => return,
            () = tx.closed() => return,
            _ = ticker.tick(), if bookmarks.is_some() => {
                let (kind, api_version) = bookmarks.as_ref().expect("checked");
                if tx.send(Ok(line(&bookmark(kind, api_version, revision, false)))).await.is_err() {
                    return;
                }
            }
            received = live.recv() => match received {
                Ok(change) if change.revision > revision => {
                    revision = change.revision;
                    if let Some(event) = filter.line_for(&change)
                        && tx.send(Ok(event)).await.is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {}
                // Fell behind the live feed: catch up from the history, or, when even that
                // has moved on, tell the client its version expired (410), as the API server does.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let missed = store.lock().expect("store lock").changes_since(filter.resource, revision);
                    match missed {
                        Ok(changes) => {
                            for change in changes {
                                revision = revision.max(change.revision);
                                if let Some(event) = filter.line_for(&change)
                                    && tx.send(Ok(event)).await.is_err()
                                {
                                    return;
                                }
                            }
                        }
                        Err(gone) => {
                            let status = ApiError::from(gone).status_body();
                            let _ = tx.send(Ok(line(&json!({"type": "ERROR", "object": status})))).await;
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

fn bookmark(kind: &str, api_version: &str, revision: u64, initial_events_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": metadata}})
}

fn line(value: &Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}
