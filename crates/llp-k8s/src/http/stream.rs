//! `/kubernetes/deployments/{id}/stream`: a deployment's status and its pods' events as
//! server-sent events ([`crate::status::live`] decides what to tell).

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, StreamKind};
use super::openapi::{CommonErrors, DeploymentId};
use crate::records::Purpose;
use crate::status::live::{Cursor, Follower, Told, Update};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::{HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use llp_spec::ErrorBody;
use std::convert::Infallible;
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

/// A comment line this often keeps proxies from closing a quiet stream (ingress-nginx closes
/// one silent for 60 s by default).
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream))
}

/// Follow a deployment: its status whenever it changes, and its pods' events, as server-sent
/// events from the watch caches (an open stream costs the cluster nothing).
///
/// Events: `status` (the same JSON as `GET /kubernetes/deployments/{id}`; the first at once),
/// `event` (one event of a pod, as the events route gives it, with its `pod`; on connecting,
/// those the pods have), and `deleted` (the deployment is gone; the stream ends). Each has an
/// `id`: sent back as `Last-Event-ID` (as `EventSource` does when it reconnects), only newer
/// pod events are sent. A comment line every 15 s keeps a quiet stream open. The token may be
/// given as `?access_token=` (an `EventSource` cannot set headers).
#[utoipa::path(
    get,
    path = "/kubernetes/deployments/{id}/stream",
    tag = "deployments",
    params(
        DeploymentId,
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received: only newer pod events are sent"),
    ),
    responses(
        (status = 200, description = "`text/event-stream` of `status`, `event` and `deleted` events", content_type = "text/event-stream", body = String),
        (status = 400, description = "`Last-Event-ID` is not an id this stream sent", body = ErrorBody),
        (status = 429, description = "The caller has as many status streams open as one user may (`status_streams_per_user`)", body = ErrorBody),
        CommonErrors
    )
)]
async fn stream(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = match headers.get("last-event-id") {
        None => Cursor::default(),
        Some(value) => value.to_str().ok().and_then(Cursor::parse).ok_or_else(|| {
            ApiError::bad_field(
                "Last-Event-ID",
                "not an id this stream sent (a whole number): reconnect without it to start over",
            )
        })?,
    };
    let target = state
        .operations()
        .resolve(&caller, &id, Purpose::Look)
        .await?
        .deployed()?;
    // Held as long as the stream is open.
    let slot = state
        .status_streams
        .open(&caller.identity.id)
        .ok_or(ApiError::TooManyStreams {
            kind: StreamKind::Status,
            max: state.status_streams.max(),
        })?;
    let follower = Follower::new(
        (target.cluster.clone(), state.status_memo.clone()),
        target.names.base(),
        (&target.record, &state.render),
        after,
    );
    let mut shutdown = state.shutdown.clone();
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let events = follower
        .into_stream()
        .map(move |told| {
            let _open = &slot;
            Ok::<_, Infallible>(frame(told))
        })
        .take_until(Box::pin(stopping));
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response();
    // Tells nginx (and ingress-nginx) not to buffer the stream.
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// An update as a server-sent event.
fn frame(told: Told) -> Event {
    let event = Event::default().id(told.cursor.to_string());
    match told.update {
        // The status is JSON from `serde_json`: UTF-8, one line.
        Update::Status(json) => event.event("status").data(String::from_utf8_lossy(&json)),
        // Cannot fail: string keys only.
        Update::Event(pod_event) => event
            .event("event")
            .data(serde_json::to_string(&pod_event).unwrap_or_default()),
        Update::Deleted => event.event("deleted").data("{}"),
    }
}
