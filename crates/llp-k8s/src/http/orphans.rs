//! `GET /kubernetes/orphans`: the deployments whose record is gone, for admins. It is the
//! reconciler's dry-run listing: what it would remove, since when each record is missing and
//! when it goes (see [`crate::orphans`]).

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::openapi::CommonErrors;
use crate::orphans::Survey;
use crate::orphans::reconciler::{OrphanError, survey};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(orphans))
}

/// The listing, with the settings it was judged by.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Listing {
    /// Whether the reconciler runs.
    enabled: bool,
    /// Whether it only lists (`[orphans] dry_run`).
    dry_run: bool,
    /// How long a record must be missing before its deployment is removed.
    grace_seconds: u64,
    #[serde(flatten)]
    survey: Survey,
}

/// Deployments whose record no longer exists (admins only).
#[utoipa::path(
    get,
    path = "/kubernetes/orphans",
    tag = "cluster",
    responses(
        (status = 200, description = "What the orphan reconciler found and when it removes each", body = Listing),
        CommonErrors
    )
)]
async fn orphans(State(state): State<AppState>, Caller(caller): Caller) -> Result<Response, ApiError> {
    if !caller.identity.admin {
        return Err(ApiError::Forbidden("only admins may list orphaned deployments".into()));
    }
    let cluster = state.cluster.as_ref().ok_or(ApiError::Unavailable {
        dependency: "the cluster",
    })?;
    // Without a service token the admin's own token reads the records (an admin reads all).
    let survey = survey(
        state.records.as_ref(),
        cluster,
        &state.orphans,
        Some(&caller.token),
        false,
    )
    .await
    .map_err(|error| match error {
        OrphanError::Records(error) => ApiError::from(error),
        OrphanError::Cluster { source, .. } => ApiError::cluster(source),
        OrphanError::Timeout(_) | OrphanError::Removal { .. } => ApiError::Timeout {
            dependency: "the cluster",
        },
    })?;
    let settings = &state.orphans.settings;
    Ok(Json(Listing {
        enabled: settings.enabled,
        dry_run: settings.dry_run,
        grace_seconds: settings.grace_seconds,
        survey,
    })
    .into_response())
}
