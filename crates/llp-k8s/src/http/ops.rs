//! Operations: liveness, readiness, metrics and the deployment YAML's schema.

use super::AppState;
use super::error::ApiError;
use axum::Json;
use axum::extract::State;
use llp_spec::ErrorBody;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(super::metrics::render))
        .routes(routes!(schema))
}

/// Alive (the process answers).
#[utoipa::path(get, path = "/healthz", tag = "operations", security(),
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Ready: not shutting down, the record source answers and the watch caches are synced.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(),
    responses(
        (status = 200, description = "`ok`", body = String, content_type = "text/plain"),
        (status = 502, description = "The LLP API is unreachable", body = ErrorBody),
        (status = 503, description = "The record source, the cluster or its caches are not ready, or the cluster has not been followed for longer than allowed; the message says which", body = ErrorBody),
        (status = 504, description = "The LLP API did not answer in time", body = ErrorBody)
    ))]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    if *state.shutdown.borrow() {
        return Err(ApiError::Unavailable {
            dependency: "this replica (shutting down)",
        });
    }
    state.records.ping().await?;
    let cluster = state.cluster.as_ref().ok_or(ApiError::Unavailable {
        dependency: "the cluster",
    })?;
    let synced = tokio::time::timeout(std::time::Duration::from_millis(100), cluster.caches.ready()).await;
    if !matches!(synced, Ok(Ok(()))) {
        return Err(ApiError::Unavailable {
            dependency: "the cluster's watch caches",
        });
    }
    if let Some(since) = cluster.health.stale_since() {
        let lasted = jiff::Timestamp::now().duration_since(since);
        if lasted.unsigned_abs() > cluster.stale_after {
            return Err(ApiError::ClusterStale { since });
        }
    }
    Ok("ok")
}

/// The JSON Schema (draft 2020-12) of the deployment YAML, for editors' autocompletion.
#[utoipa::path(get, path = "/schema/deployment.json", tag = "operations", security(),
    responses((status = 200, description = "A JSON Schema document (the same as `DeploymentSpec` here)", body = Object)))]
async fn schema() -> Json<serde_json::Value> {
    Json(llp_spec::deployment_schema())
}
