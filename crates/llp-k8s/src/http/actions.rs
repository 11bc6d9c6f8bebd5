//! What a user does to a running deployment: scale, restart, delete it, delete one of its
//! pods (the operations in [`crate::operations::actions`]), read a pod's logs and events.
//! Every pod-scoped route first checks that the pod carries this deployment's label: another
//! deployment's pod is 404, never served.

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, StreamKind};
use super::openapi::{CommonErrors, DeploymentId, PodPath};
use crate::operations::actions;
use crate::records::Purpose;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};
use llp_spec::ErrorBody;
use serde_json::json;
use std::collections::HashMap;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(scale, remove))
        .routes(routes!(restart))
        .routes(routes!(delete_pod))
        .routes(routes!(logs))
        .routes(routes!(events))
}

/// `?scale=N`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only its documentation is used.
struct ScaleQuery {
    /// Replicas, 0–16 (a group with a larger maximum may ask for more); 0 stops the pods and
    /// keeps the volumes.
    #[param(minimum = 0, maximum = 16)]
    scale: u32,
}

/// The query of the logs route (`true`/`false` flags).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)] // Only its documentation is used.
struct LogQuery {
    /// The container (the first one when left out).
    container: Option<String>,
    /// Only lines of the last N seconds (a positive integer).
    #[param(minimum = 1)]
    since_seconds: Option<u32>,
    /// Only the last N lines (a positive integer).
    #[param(minimum = 1)]
    tail_lines: Option<u32>,
    /// The previous run's log (after a crash).
    previous: Option<bool>,
    /// Prefix each line with its RFC 3339 time.
    timestamps: Option<bool>,
    /// Keep the response open and stream new lines.
    follow: Option<bool>,
}

/// One event of a pod.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)] // Only its documentation is used.
struct PodEvent {
    /// When it last happened (RFC 3339).
    creation_timestamp: Option<String>,
    /// What happened.
    note: Option<String>,
    /// `Scheduled`, `Pulling`, `BackOff`, `FailedScheduling`, …
    reason: Option<String>,
    /// `Normal` or `Warning`.
    #[schema(rename = "type")]
    type_: Option<String>,
}

/// Scale to `?scale=N` replicas (until the next deploy re-applies the YAML's `replicas`).
#[utoipa::path(
    patch,
    path = "/kubernetes/deployments/{id}",
    tag = "actions",
    params(DeploymentId, ScaleQuery),
    responses(
        (status = 200, description = "`{\"replicas\": N, \"success\": true}`", body = Object),
        (status = 400, description = "`scale` missing or not an integer in range (`INVALID_PAYLOAD`); or, scaling a GPU deployment up, GPUs not covered by reservations active now (`NOT_ENOUGH_RESOURCES`)", body = ErrorBody),
        CommonErrors
    )
)]
async fn scale(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let max = state.limits.for_groups(&caller.identity.groups).max_replicas;
    let wanted = query
        .get("scale")
        .ok_or_else(|| ApiError::bad_field("scale", format!("give ?scale=N with N from 0 to {max}")))?;
    let replicas: u32 = wanted.parse().ok().filter(|n| *n <= max).ok_or_else(|| {
        ApiError::bad_field(
            "scale",
            format!("`{wanted}` is not a number of replicas from 0 to {max}"),
        )
    })?;
    actions::scale(&state.operations(), &caller, &id, replicas).await?;
    // `success` as the extension answered (docs/compatibility.md).
    Ok(Json(json!({"replicas": replicas, "success": true})).into_response())
}

/// Rolling restart of every pod (the pod template's `kubectl.kubernetes.io/restartedAt`).
#[utoipa::path(
    method(get, post),
    path = "/kubernetes/deployments/{id}/hooks/restart",
    tag = "actions",
    params(DeploymentId),
    responses(
        (status = 200, description = "`{\"restartedAt\": time, \"success\": true}`: the pods restart one by one", body = Object),
        (status = 400, description = "GPU pods not covered by reservations active now (`NOT_ENOUGH_RESOURCES`)", body = ErrorBody),
        CommonErrors
    )
)]
async fn restart(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now = actions::restart(&state.operations(), &caller, &id).await?;
    Ok(Json(json!({"restartedAt": now, "success": true})).into_response())
}

/// Delete every object of the deployment, volumes included (the record stays in the LLP).
#[utoipa::path(
    delete,
    path = "/kubernetes/deployments/{id}",
    tag = "actions",
    params(DeploymentId),
    responses((status = 200, description = "`{\"deleted\": id}`", body = Object), CommonErrors)
)]
async fn remove(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    actions::delete(&state.operations(), &caller, &id).await?;
    Ok(Json(json!({"deleted": id})).into_response())
}

/// Delete one pod; the StatefulSet recreates it.
#[utoipa::path(
    delete,
    path = "/kubernetes/deployments/{id}/pods/{pod}",
    tag = "actions",
    params(PodPath),
    responses(
        (status = 200, description = "`{\"deleted\": pod}`", body = Object),
        (status = 400, description = "The pod holds GPUs that reservations active now no longer cover (`NOT_ENOUGH_RESOURCES`): it would not start again", body = ErrorBody),
        CommonErrors
    )
)]
async fn delete_pod(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, pod)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    actions::delete_pod(&state.operations(), &caller, &id, &pod).await?;
    Ok(Json(json!({"deleted": pod})).into_response())
}

fn flag(query: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match query.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_field(name, format!("`{other}` is not `true` or `false`"))),
    }
}

fn positive(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    query
        .get(name)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::bad_field(name, format!("`{v}` is not a positive whole number")))
        })
        .transpose()
}

/// A pod's log as plain text; `follow=true` streams it.
#[utoipa::path(
    get,
    path = "/kubernetes/deployments/{id}/logs/{pod}",
    tag = "actions",
    params(PodPath, LogQuery),
    responses(
        (status = 200, description = "The log", content_type = "text/plain", body = String),
        (status = 400, description = "A bad query value, an unknown container, or no previous run", body = ErrorBody),
        CommonErrors
    )
)]
async fn logs(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, pod)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let params = LogParams {
        container: query.get("container").cloned(),
        since_seconds: positive(&query, "sinceSeconds")?,
        tail_lines: positive(&query, "tailLines")?,
        previous: flag(&query, "previous")?,
        timestamps: flag(&query, "timestamps")?,
        follow: flag(&query, "follow")?,
        ..LogParams::default()
    };
    let target = state
        .operations()
        .resolve(&caller, &id, Purpose::Look)
        .await?
        .deployed()?;
    target.own_pod(&pod)?;
    let pods: Api<Pod> = target.cluster.api();
    let plain = [(CONTENT_TYPE, "text/plain; charset=utf-8")];
    if params.follow {
        // Held as long as the stream is open.
        let slot = state
            .follows
            .open(&caller.identity.id)
            .ok_or(ApiError::TooManyStreams {
                kind: StreamKind::Logs,
                max: state.follows.max(),
            })?;
        // And counted in every replica: the cap is the user's, not this replica's.
        let kind = crate::cluster::sessions::SessionKind::Logs;
        let session = crate::cluster::sessions::open(target.cluster, &caller.identity.id, kind, state.follows.max())
            .await
            .map_err(|error| ApiError::from(crate::operations::Error::session(kind, error)))?;
        let stream = pods.log_stream(&pod, &params).await.map_err(log_failed)?;
        let lines = futures::AsyncBufReadExt::lines(stream);
        let mut shutdown = state.shutdown.clone();
        let stopping = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        let lines = futures::StreamExt::take_until(lines, Box::pin(stopping));
        let body = Body::from_stream(lines.map_ok(move |line| {
            let _open = (&slot, &session);
            axum::body::Bytes::from(line + "\n")
        }));
        return Ok((plain, body).into_response());
    }
    let text = pods.logs(&pod, &params).await.map_err(log_failed)?;
    Ok((plain, text).into_response())
}

/// A log the kubelet cannot give (no previous run, unknown container) is the user's 400.
fn log_failed(error: kube::Error) -> ApiError {
    match error {
        kube::Error::Api(status) if status.code == 400 => ApiError::BadRequest {
            field: None,
            message: status.message,
        },
        other => ApiError::cluster(other),
    }
}

/// A pod's events, oldest first.
#[utoipa::path(
    get,
    path = "/kubernetes/deployments/{id}/events/{pod}",
    tag = "actions",
    params(PodPath),
    responses((status = 200, description = "The events", body = Vec<PodEvent>), CommonErrors)
)]
async fn events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, pod)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let target = state
        .operations()
        .resolve(&caller, &id, Purpose::Look)
        .await?
        .deployed()?;
    target.own_pod(&pod)?;
    let events: Api<Event> = target.cluster.api();
    let list = events
        .list(&ListParams::default().fields(&format!("involvedObject.kind=Pod,involvedObject.name={pod}")))
        .await
        .map_err(ApiError::cluster)?
        .items;
    let body = llp_spec::status::events::from_events(&list);
    Ok(Json(body).into_response())
}
