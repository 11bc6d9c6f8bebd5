//! The HTTP service: routes, the caller's identity, and the error edge.

mod actions;
pub mod auth;
mod data;
mod deployments;
pub mod error;
mod items;

use crate::cluster::Cluster;
use crate::records::embedded::EmbeddedStore;
use axum::Router;
use axum::routing::get;
use llp_spec::{LimitsTable, RenderConfig};
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The embedded record source.
    pub records: Arc<EmbeddedStore>,
    /// The cluster, when one is configured.
    pub cluster: Option<Cluster>,
    /// How deployments are rendered.
    pub render: Arc<RenderConfig>,
    /// Limits per group.
    pub limits: Arc<LimitsTable>,
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(items::routes())
        .merge(deployments::routes())
        .merge(actions::routes())
        .merge(data::routes())
        .fallback(|| async { error::ApiError::NotFound("no such route".into()) })
        .with_state(state)
}
