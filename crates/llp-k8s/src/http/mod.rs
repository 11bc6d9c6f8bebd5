//! The HTTP service: routes, the caller's identity, and the error edge.

mod actions;
pub mod auth;
mod capacity;
pub mod cors;
mod data;
mod deployments;
pub mod error;
mod items;
pub mod metrics;

use crate::cluster::Cluster;
use crate::records::RecordSource;
use crate::records::embedded::EmbeddedStore;
use axum::Router;
use axum::routing::get;
use llp_spec::{LimitsTable, RenderConfig};
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Who callers are and which records they may read.
    pub records: Arc<dyn RecordSource>,
    /// The embedded store, when it is the record source: it then also serves
    /// `/items/deployments` (the real LLP API serves those itself).
    pub embedded: Option<EmbeddedStore>,
    /// The cluster, when one is configured.
    pub cluster: Option<Cluster>,
    /// How deployments are rendered.
    pub render: Arc<RenderConfig>,
    /// Limits per group.
    pub limits: Arc<LimitsTable>,
    /// Serialises writes to one deployment (and hostname claims across deployments).
    pub locks: Arc<Locks>,
    /// Turns true when the service shuts down: open log streams end then, so that graceful
    /// shutdown does not wait for them forever.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
}

/// Per-deployment locks: two concurrent deploys of one record must not interleave their
/// writes, and two records must not claim one hostname at once.
#[derive(Default)]
pub struct Locks {
    deployments: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Held while a hostname is checked and claimed.
    pub hostnames: tokio::sync::Mutex<()>,
}

impl Locks {
    /// The lock of deployment `id`.
    pub fn deployment(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .deployments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(id.to_owned()).or_default().clone()
    }
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::render))
        .route(
            "/schema/deployment.json",
            get(|| async { axum::Json(llp_spec::deployment_schema()) }),
        )
        .merge(if state.embedded.is_some() {
            items::routes()
        } else {
            Router::new()
        })
        .merge(deployments::routes())
        .merge(actions::routes())
        .merge(data::routes())
        .merge(capacity::routes())
        .fallback(|| async { error::ApiError::NotFound("no such route".into()) })
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
}

/// 200 once the watch caches are synced and the record source answers; 503 naming what is not.
async fn ready(axum::extract::State(state): axum::extract::State<AppState>) -> Result<&'static str, error::ApiError> {
    state.records.ping().await?;
    let cluster = state.cluster.as_ref().ok_or(error::ApiError::Unavailable {
        dependency: "the cluster",
    })?;
    let synced = tokio::time::timeout(std::time::Duration::from_millis(100), cluster.caches.ready()).await;
    if !matches!(synced, Ok(Ok(()))) {
        return Err(error::ApiError::Unavailable {
            dependency: "the cluster's watch caches",
        });
    }
    Ok("ok")
}
