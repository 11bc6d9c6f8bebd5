//! `PUT`/`GET /kubernetes/deployments/{id}/secret` and `/config`: the key/value data that
//! `fromSecret` and `fromConfig` read, kept in the deployment's Secret and ConfigMap.
//! The body is a JSON object or a YAML mapping (as a JSON string); values are stringified.
//! The Directus extension this service replaces took and gave the same wrapped in the
//! Directus envelope (`{"data": …}`); both forms are accepted and GET answers in the envelope
//! (docs/compatibility.md).

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, Body};
use super::openapi::{CommonErrors, DeploymentId};
use crate::operations::data::{self, Store};
use crate::records::Session;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use llp_spec::ErrorBody;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read_secret, write_secret))
        .routes(routes!(read_config, write_config))
}

async fn write(
    state: AppState,
    caller: Session,
    id: String,
    body: axum::body::Bytes,
    store: Store,
) -> Result<Response, ApiError> {
    let pairs = data::write(&state.operations(), &caller, &id, body, store).await?;
    Ok(Json(pairs.keys().collect::<Vec<_>>()).into_response())
}

async fn read(state: AppState, caller: Session, id: String, store: Store) -> Result<Response, ApiError> {
    let pairs = data::read(&state.operations(), &caller, &id, store).await?;
    // The Directus envelope, as the extension answered.
    Ok(Json(json!({"data": pairs})).into_response())
}

/// Replace the data `fromSecret` reads (a JSON object, or a YAML mapping as a JSON string).
#[utoipa::path(
    put,
    path = "/kubernetes/deployments/{id}/secret",
    tag = "data",
    params(DeploymentId),
    request_body(content = ref("#/components/schemas/KeyValues"), description = "Keys and values; values are stringified"),
    responses(
        (status = 200, description = "The stored pairs", body = BTreeMap<String, String>),
        (status = 400, description = "Not an object, a nested value, or a bad key (`field` names it)", body = ErrorBody),
        CommonErrors
    )
)]
async fn write_secret(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    write(state, caller, id, body, Store::Secret).await
}

/// The data `fromSecret` reads.
#[utoipa::path(
    get,
    path = "/kubernetes/deployments/{id}/secret",
    tag = "data",
    params(DeploymentId),
    responses((status = 200, description = "`{\"data\": {key: value}}` (empty when none), the Directus envelope", body = Object), CommonErrors)
)]
async fn read_secret(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    read(state, caller, id, Store::Secret).await
}

/// Replace the data `fromConfig` reads (a JSON object, or a YAML mapping as a JSON string).
#[utoipa::path(
    put,
    path = "/kubernetes/deployments/{id}/config",
    tag = "data",
    params(DeploymentId),
    request_body(content = ref("#/components/schemas/KeyValues"), description = "Keys and values; values are stringified"),
    responses(
        (status = 200, description = "The stored pairs", body = BTreeMap<String, String>),
        (status = 400, description = "Not an object, a nested value, or a bad key (`field` names it)", body = ErrorBody),
        CommonErrors
    )
)]
async fn write_config(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    write(state, caller, id, body, Store::Config).await
}

/// The data `fromConfig` reads.
#[utoipa::path(
    get,
    path = "/kubernetes/deployments/{id}/config",
    tag = "data",
    params(DeploymentId),
    responses((status = 200, description = "`{\"data\": {key: value}}` (empty when none), the Directus envelope", body = Object), CommonErrors)
)]
async fn read_config(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    read(state, caller, id, Store::Config).await
}
