//! The HTTP service: routes, the caller's identity, and the error edge.

mod actions;
pub mod auth;
mod capacity;
pub mod cors;
mod course_items;
mod data;
mod deployments;
pub mod edge;
pub mod error;
mod exec;
mod items;
pub mod metrics;
pub mod openapi;
mod ops;
mod orphans;
mod reservation_items;
pub mod server;
mod stream;
mod usage;

use crate::cluster::Cluster;
use crate::operations::{Locks, Operations};
use crate::records::RecordSource;
use crate::records::embedded::EmbeddedStore;
use axum::Router;
use axum::routing::get;
use llp_spec::{LimitsTable, RenderConfig};
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// What every handler shares: a handle to [`AppParts`]. axum clones the state for the router,
/// each middleware and each extractor of every request, so a clone is one reference count
/// (cloning the parts took about a tenth of a status poll's CPU). Fields read through it as
/// through the parts; a write (tests, start-up) changes this handle's own copy.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl From<AppParts> for AppState {
    fn from(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut AppParts {
        Arc::make_mut(&mut self.0)
    }
}

/// What the service is made of.
#[derive(Clone)]
pub struct AppParts {
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
    /// Whether GPU reservations are enforced, and the clock they are judged by.
    pub reservations: Arc<crate::reservations::ReservationPolicy>,
    /// Open log streams per user, capped.
    pub follows: Arc<server::Follows>,
    /// The orphan reconciler's settings and what it has seen.
    pub orphans: Arc<crate::orphans::OrphanPolicy>,
    /// Where GPU usage is kept, and where the pods' power is read.
    pub usage: crate::usage::Usage,
    /// Status answers, reused while the caches do not change.
    pub status_memo: Arc<crate::status::StatusMemo>,
    /// Open status streams per user, capped.
    pub status_streams: Arc<server::StatusStreams>,
    /// Open terminals per user, capped.
    pub terminals: Arc<server::Terminals>,
    /// How long a terminal may be idle before it is closed.
    pub terminal_idle: std::time::Duration,
}

impl AppParts {
    /// What the deployment operations act with.
    pub fn operations(&self) -> Operations<'_> {
        Operations {
            records: self.records.as_ref(),
            cluster: self.cluster.as_ref(),
            render: &self.render,
            limits: &self.limits,
            locks: &self.locks,
            reservations: &self.reservations,
            steps: self.metrics.deploy_steps(),
        }
    }
}

/// The service's routes, and `/openapi.json` generated from them.
pub fn router(state: AppState) -> Router {
    let (routes, openapi) = documented_routes(state.embedded.is_some()).split_for_parts();
    // Serialised once: the document does not change while the service runs.
    let document = axum::body::Bytes::from(openapi::finish(openapi).to_string());
    routes
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], document) }
            }),
        )
        .fallback(|| async { error::ApiError::NotFound("no such route".into()) })
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(axum::middleware::from_fn(edge::shape_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge::close_while_draining,
        ))
        .with_state(state)
}

/// Every route with its documentation; `/items/deployments` only with the embedded source
/// (the real LLP API serves those itself).
fn documented_routes(with_items: bool) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(ops::routes())
        .merge(deployments::routes())
        .merge(stream::routes())
        .merge(exec::routes())
        .merge(usage::routes())
        .merge(actions::routes())
        .merge(data::routes())
        .merge(capacity::routes())
        .merge(orphans::routes());
    if with_items {
        routes
            .merge(items::routes())
            .merge(reservation_items::routes())
            .merge(course_items::routes())
    } else {
        routes
    }
}
