//! `/items/deployments`: the embedded record source in the Directus item-API shape
//! (`{"data": …}`), so the frontend and scripts talk to it as to the LLP API.

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, Body};
use super::openapi::{CommonErrors, DeploymentId};
use crate::records::RecordError;
use crate::records::embedded::{EmbeddedStore, RecordInput};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use llp_spec::RecordId;
use llp_spec::{ErrorBody, Record};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
}

/// `{"data": record}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only its documentation is used.
struct RecordData {
    data: Record,
}

/// `{"data": [record, …]}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only its documentation is used.
struct RecordsData {
    data: Vec<Record>,
}

/// Runs a record-store call off the async workers (SQLite blocks).
pub(super) async fn blocking<T: Send + 'static>(
    store: &Option<EmbeddedStore>,
    call: impl FnOnce(&EmbeddedStore) -> Result<T, RecordError> + Send + 'static,
) -> Result<T, ApiError> {
    // Only mounted with the embedded source (see `router`).
    let store = store
        .clone()
        .ok_or_else(|| ApiError::NotFound("no such route".into()))?;
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(|_| ApiError::Unavailable {
            dependency: "the record store",
        })?
        .map_err(ApiError::from)
}

/// Reads an item-API body: a JSON object of `fields` (named in the error), the field at fault
/// named when one is wrong.
pub(super) fn object_body<T: serde::de::DeserializeOwned>(body: &[u8], fields: &str) -> Result<T, ApiError> {
    // serde would also read a struct from a JSON array (`[null, null]`): only objects count.
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err(ApiError::bad_field(
            "body",
            format!("the body must be a JSON object with {fields}"),
        ));
    }
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        // The path of a wrong value (`title`); an unknown or missing field's name is in the
        // message (`unknown field `x``), the path then being the object itself.
        let path = e.path().to_string();
        let field = if path == "." {
            e.inner().to_string().split('`').nth(1).map(str::to_owned)
        } else {
            Some(path)
        };
        ApiError::BadRequest {
            field,
            message: format!("the body must be a JSON object with {fields}: {}", e.inner()),
        }
    })?;
    reader.end().map_err(|e| ApiError::BadRequest {
        field: None,
        message: format!("the body must be a JSON object with {fields}: {e}"),
    })?;
    Ok(value)
}

/// Reads the body as a record input, naming the field at fault.
fn input(body: &[u8]) -> Result<RecordInput, ApiError> {
    object_body(body, "title, data, exposed_service, exposed_port, exposed_hostname")
}

pub(super) fn data(value: impl serde::Serialize) -> Response {
    Json(json!({"data": value})).into_response()
}

/// The caller's records (every record for admins).
#[utoipa::path(get, path = "/items/deployments", operation_id = "list_deployment_records", tag = "records",
    responses((status = 200, description = "The records", body = RecordsData), CommonErrors))]
async fn list(State(state): State<AppState>, Caller(session): Caller) -> Result<Response, ApiError> {
    Ok(data(
        blocking(&state.embedded, move |s| s.list(&session.identity)).await?,
    ))
}

/// Create a record owned by the caller.
#[utoipa::path(post, path = "/items/deployments", operation_id = "create_deployment_record", tag = "records", request_body = RecordInput,
    responses(
        (status = 200, description = "The new record", body = RecordData),
        (status = 400, description = "Not a JSON object of the record's fields (`field` names an unknown one)", body = ErrorBody),
        CommonErrors
    ))]
async fn create(
    State(state): State<AppState>,
    Caller(session): Caller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let input = input(&body)?;
    Ok(data(
        blocking(&state.embedded, move |s| s.create(&session.identity, &input)).await?,
    ))
}

/// One record.
#[utoipa::path(get, path = "/items/deployments/{id}", operation_id = "read_deployment_record", tag = "records", params(DeploymentId),
    responses((status = 200, description = "The record", body = RecordData), CommonErrors))]
async fn read(
    State(state): State<AppState>,
    Caller(session): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(data(
        blocking(&state.embedded, move |s| s.get(&session.identity, &RecordId::Text(id))).await?,
    ))
}

/// Change some fields of a record (`null` clears one).
#[utoipa::path(patch, path = "/items/deployments/{id}", operation_id = "update_deployment_record", tag = "records", params(DeploymentId), request_body = RecordInput,
    responses(
        (status = 200, description = "The changed record", body = RecordData),
        (status = 400, description = "Not a JSON object of the record's fields", body = ErrorBody),
        CommonErrors
    ))]
async fn update(
    State(state): State<AppState>,
    Caller(session): Caller,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let input = input(&body)?;
    Ok(data(
        blocking(&state.embedded, move |s| {
            s.update(&session.identity, &RecordId::Text(id), &input)
        })
        .await?,
    ))
}

/// Delete a record, and its deployment's objects with it (they would run on, owned by no
/// record, their hostname taken).
#[utoipa::path(delete, path = "/items/deployments/{id}", operation_id = "delete_deployment_record", tag = "records", params(DeploymentId),
    responses((status = 204, description = "Deleted, and its deployment with it"), CommonErrors))]
async fn remove(
    State(state): State<AppState>,
    Caller(session): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Not while a deploy of the same record is applying; objects first, so that a failure
    // leaves the record to delete them by.
    let lock = state.locks.deployment(&id);
    let _deleting = lock.lock().await;
    if state.cluster.is_some() {
        let target = state
            .operations()
            .resolve(&session, &id, crate::records::Purpose::Act)
            .await?;
        crate::operations::actions::remove(&target).await?;
    }
    blocking(&state.embedded, move |s| {
        s.delete(&session.identity, &RecordId::Text(id))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
