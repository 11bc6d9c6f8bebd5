//! `/items/deployments`: the embedded record source in the Directus item-API shape
//! (`{"data": …}`), so the frontend and scripts talk to it as to the LLP API.

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, Body};
use crate::records::RecordError;
use crate::records::embedded::{EmbeddedStore, RecordInput};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use llp_spec::RecordId;
use serde_json::json;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/items/deployments", get(list).post(create))
        .route("/items/deployments/{id}", get(read).patch(update).delete(remove))
}

/// Runs a record-store call off the async workers (SQLite blocks).
async fn blocking<T: Send + 'static>(
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

/// Reads the body as a record input, naming the field at fault.
fn input(body: &[u8]) -> Result<RecordInput, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let field = e.to_string().split('`').nth(1).map(str::to_owned);
        ApiError::BadRequest {
            field,
            message: format!(
                "the body must be a JSON object with title, data, exposed_service, exposed_port, exposed_hostname: {e}"
            ),
        }
    })
}

fn data(value: impl serde::Serialize) -> Response {
    Json(json!({"data": value})).into_response()
}

async fn list(State(state): State<AppState>, Caller(session): Caller) -> Result<Response, ApiError> {
    Ok(data(
        blocking(&state.embedded, move |s| s.list(&session.identity)).await?,
    ))
}

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

async fn read(
    State(state): State<AppState>,
    Caller(session): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(data(
        blocking(&state.embedded, move |s| s.get(&session.identity, &RecordId::Text(id))).await?,
    ))
}

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

async fn remove(
    State(state): State<AppState>,
    Caller(session): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    blocking(&state.embedded, move |s| {
        s.delete(&session.identity, &RecordId::Text(id))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
