//! The HTTP service: routes, the caller's identity, and the error edge.

pub mod auth;
pub mod error;
mod items;

use crate::records::embedded::EmbeddedStore;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The embedded record source.
    pub records: Arc<EmbeddedStore>,
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(items::routes())
        .fallback(|| async { error::ApiError::NotFound("no such route".into()) })
        .with_state(state)
}
