//! `/kubernetes/deployments/{id}`: deploy (PUT, the pipeline in [`crate::operations::deploy`])
//! and status (GET, from the watch caches alone).

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::openapi::{CommonErrors, DeploymentId};
use crate::operations::{Target, deploy};
use crate::records::Purpose;
use crate::status::Source;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use llp_spec::status::DeploymentStatus;
use llp_spec::{ErrorBody, Record};
use std::collections::HashMap;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status, deploy))
}

/// `?dryRun=true`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)] // Only its documentation is used.
struct DryRunQuery {
    /// Check everything a deploy checks (validation, volumes, hostname, quota, GPU bookings,
    /// the API server's own dry run of every object) and say where the pods could start,
    /// writing nothing; a refusal is the one the deploy would give.
    dry_run: Option<bool>,
}

/// Deploy the record: validate its YAML and `exposed_*`, then create or update its objects.
#[utoipa::path(
    put,
    path = "/kubernetes/deployments/{id}",
    tag = "deployments",
    params(DeploymentId, DryRunQuery),
    request_body(content = Option<Object>, description = "With `dryRun=true` only, optional: a record (`data`, `exposed_*`) to try in the stored one's place", content_type = "application/json"),
    responses(
        (status = 201, description = "First deploy: the normalised spec, defaults filled in", body = ref("#/components/schemas/DeploymentSpec")),
        (status = 200, description = "Updated: the normalised spec, defaults filled in. With `dryRun=true`: `{\"dryRun\": true, \"spec\", \"objects\" (each as the API server's dry run answers it), \"placement\" (GPU deployments: `replicas`, the worker of each pod that could start now, `waiting`: why the others would wait)}`; nothing is written", body = ref("#/components/schemas/DeploymentSpec")),
        (status = 400, description = "Invalid YAML or `exposed_*`: every problem, each with its `field` (`VALIDATION_FAILED`)", body = ErrorBody),
        (status = 400, description = "GPUs not covered by reservations active now (`NOT_ENOUGH_RESOURCES`, `reason` `api_errors.not_enough_resources`): the shortfall per profile", body = ErrorBody),
        (status = 409, description = "`exposed_hostname` is used by another deployment (`CONFLICT`)", body = ErrorBody),
        CommonErrors
    )
)]
async fn deploy(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    match query.get("dryRun").map(String::as_str) {
        None | Some("false") => {}
        // `All` is what kubectl and the API server call it.
        Some("true" | "All") => {
            let proposed = proposed_record(&body)?;
            let preview = deploy::preview(&state.operations(), &caller, &id, proposed.as_ref()).await?;
            let body = serde_json::json!({
                "dryRun": true,
                "spec": preview.spec,
                "objects": preview.objects,
                "placement": preview.placement,
            });
            return Ok(Json(body).into_response());
        }
        Some(other) => {
            return Err(ApiError::bad_field(
                "dryRun",
                format!("`{other}` is not `true` or `false`"),
            ));
        }
    }
    let deployed = deploy::deploy(&state.operations(), &caller, &id).await?;
    let status = if deployed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(deployed.spec)).into_response())
}

/// The record a preview's body proposes, if it has a body: a record's JSON (`data`,
/// `exposed_*`; others are ignored).
fn proposed_record(body: &[u8]) -> Result<Option<Record>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut reader = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut reader)
        .map(Some)
        .map_err(|error| {
            let field = error.path().to_string();
            ApiError::BadRequest {
                field: Some(if field == "." { "body".into() } else { field }),
                message: format!(
                    "not a deployment record (JSON with `data` and `exposed_*`): {}",
                    error.inner()
                ),
            }
        })
}

/// The deployment's status, from the watch caches (costs the cluster nothing).
#[utoipa::path(
    get,
    path = "/kubernetes/deployments/{id}",
    tag = "deployments",
    params(DeploymentId),
    responses(
        (status = 200, description = "Replicas, pods with their containers, volumes, URL", body = DeploymentStatus),
        CommonErrors
    )
)]
async fn status(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Target {
        record, names, cluster, ..
    } = state.operations().resolve(&caller, &id, Purpose::Look).await?;
    let body = Source::new(cluster, names.base(), &record, &state.render)
        .answer(&state.status_memo)
        .ok_or_else(|| ApiError::NotFound("this deployment is not deployed yet: deploy it with PUT first".into()))?;
    Ok(([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}
