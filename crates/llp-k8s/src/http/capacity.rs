//! `GET /kubernetes/capacity`: per worker node, each GPU kind's allocatable count and how
//! much of it the deployments' pods request, so a student can pick a GPU that is free.
//! `GET /kubernetes/capacity/profiles`: the same summed per profile, with how many GPUs the
//! bookings active now reserve (SPEC section 10).
//!
//! Requests are summed over the pods in the watch cache (llp-k8s's own namespace): pods of
//! other namespaces are not counted, since the service may read only its namespace.

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::openapi::CommonErrors;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

/// One worker node.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct NodeCapacity {
    /// Node name.
    node: String,
    /// By short name: `gpu-l`, `gpu-m`, `gpu-s`, `gpu-xs`.
    gpus: BTreeMap<String, GpuCapacity>,
}

/// One GPU kind on one node.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct GpuCapacity {
    /// The extended resource, e.g. `nvidia.com/gpu`.
    resource: String,
    /// What the node offers.
    allocatable: i64,
    /// What the deployments' pods on it request.
    requested: i64,
    /// What is left.
    free: i64,
}
use utoipa_axum::{router::OpenApiRouter, routes};

/// The GPU kinds and the names the LLP frontend shows for them.
pub const GPU_NAMES: [(&str, &str); 4] = [
    ("nvidia.com/gpu", "gpu-l"),
    ("nvidia.com/mig-3g.40gb", "gpu-m"),
    ("nvidia.com/mig-2g.20gb", "gpu-s"),
    ("nvidia.com/mig-1g.10gb", "gpu-xs"),
];

/// One GPU profile over every worker.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ProfileCapacity {
    /// The extended resource, e.g. `nvidia.com/gpu`.
    resource: String,
    /// What the workers offer.
    allocatable: i64,
    /// What the deployments' pods request now.
    requested: i64,
    /// What is left.
    free: i64,
    /// What the bookings active now reserve.
    reserved: i64,
}

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(capacity)).routes(routes!(profiles))
}

/// Per profile over every worker: allocatable, requested now, free, reserved now.
#[utoipa::path(
    get,
    path = "/kubernetes/capacity/profiles",
    tag = "cluster",
    responses(
        (status = 200, description = "Each GPU profile by short name (`gpu-l`, `gpu-m`, `gpu-s`, `gpu-xs`); `reserved` counts every booking active now (with the `directus` source: every one with `service_token`, else those the caller may read)", body = BTreeMap<String, ProfileCapacity>),
        CommonErrors
    )
)]
async fn profiles(State(state): State<AppState>, Caller(caller): Caller) -> Result<Response, ApiError> {
    let nodes = per_node(&state).await?;
    let now = state.reservations.clock.now();
    let bookings = state.records.open_reservations(Some(&caller.token), now).await?;
    let mut body = BTreeMap::new();
    for (resource, label) in GPU_NAMES {
        let on =
            |pick: fn(&GpuCapacity) -> i64| -> i64 { nodes.iter().filter_map(|n| n.gpus.get(label)).map(pick).sum() };
        let gpu = llp_spec::spec::Gpu::from_resource_name(resource);
        let reserved = bookings
            .iter()
            .filter(|r| r.active_at(now))
            .map(|r| r.gpus.iter().filter(|g| Some(**g) == gpu).count() as i64)
            .sum();
        body.insert(
            label.to_owned(),
            ProfileCapacity {
                resource: resource.to_owned(),
                allocatable: on(|g| g.allocatable),
                requested: on(|g| g.requested),
                free: on(|g| g.free),
                reserved,
            },
        );
    }
    Ok(Json(body).into_response())
}

/// Per worker node, each GPU kind's allocatable count and how much is requested.
#[utoipa::path(
    get,
    path = "/kubernetes/capacity",
    tag = "cluster",
    responses(
        (status = 200, description = "Each worker node's GPUs by short name (`gpu-l`, `gpu-m`, `gpu-s`, `gpu-xs`)", body = Vec<NodeCapacity>),
        CommonErrors
    )
)]
async fn capacity(State(state): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    Ok(Json(per_node(&state).await?).into_response())
}

/// Each worker's GPUs: the nodes listed now, the requests from the pod cache.
async fn per_node(state: &AppState) -> Result<Vec<NodeCapacity>, ApiError> {
    let cluster = state.cluster.as_ref().ok_or(ApiError::Unavailable {
        dependency: "the cluster",
    })?;
    let resources = GPU_NAMES.map(|(resource, _)| resource);
    let workers = crate::cluster::capacity::worker_gpus(cluster, &state.render.node_selector, &resources)
        .await
        .map_err(ApiError::cluster)?;
    Ok(workers
        .into_iter()
        .map(|(node, gpus)| NodeCapacity {
            node,
            gpus: GPU_NAMES
                .iter()
                .map(|(resource, label)| {
                    let counts = gpus.get(*resource).copied().unwrap_or_default();
                    let gpu = GpuCapacity {
                        resource: (*resource).to_owned(),
                        allocatable: counts.allocatable,
                        requested: counts.requested,
                        free: (counts.allocatable - counts.requested).max(0),
                    };
                    ((*label).to_owned(), gpu)
                })
                .collect(),
        })
        .collect())
}
