//! `GET /metrics` in the Prometheus text format: requests and their latency per route,
//! method and status, Kubernetes API requests by verb and resource, the size of each watch
//! cache, and the LLP API's requests, their latency and how its caches answered.

use super::AppState;
use crate::cluster::calls::ApiCalls;
use crate::operations::DeploySteps;
use crate::records::directus::LlpApiMetrics;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Instant;

/// Labels of one request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern (`/kubernetes/deployments/{id}`), never the raw path.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Status code.
    pub status: u16,
}

/// Labels of a watch cache.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `statefulsets`, `pods`, `persistentvolumeclaims`.
    pub kind: String,
}

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    deploy_steps: DeploySteps,
    cache_objects: Family<CacheLabels, Gauge>,
    api_calls: ApiCalls,
    llp_api: LlpApiMetrics,
    gpu_seconds: crate::usage::GpuSeconds,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("llp_k8s");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0])
        });
        let deploy_steps = DeploySteps::default();
        let cache_objects = Family::<CacheLabels, Gauge>::default();
        let api_calls = ApiCalls::default();
        let llp_api = LlpApiMetrics::default();
        let gpu_seconds = crate::usage::GpuSeconds::default();
        registry.register(
            "gpu_seconds",
            "GPU-seconds pods held, by profile, as this instance's accountant counted them while it was elected (sum over instances)",
            gpu_seconds.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register("http_request_duration_seconds", "HTTP request latency", latency.clone());
        registry.register(
            "deploy_step_duration_seconds",
            "Seconds each step of a deploy (PUT) took",
            deploy_steps.0.clone(),
        );
        registry.register("cache_objects", "Objects in each watch cache", cache_objects.clone());
        registry.register(
            "kube_api_requests",
            "Kubernetes API requests by verb and resource (watches and lists of the caches included)",
            api_calls.clone(),
        );
        registry.register(
            "llp_api_requests",
            "Requests to the LLP API (directus record source) by endpoint and outcome",
            llp_api.requests.clone(),
        );
        registry.register(
            "llp_api_request_duration_seconds",
            "Seconds until the LLP API answered a request, by endpoint",
            llp_api.durations.clone(),
        );
        registry.register(
            "llp_cache_lookups",
            "Asks of the LLP API caches by cache and answer: fresh, aging (refreshed ahead), stale (refresh late) or waited (for a read of the LLP API)",
            llp_api.lookups.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            deploy_steps,
            cache_objects,
            api_calls,
            llp_api,
            gpu_seconds,
        }
    }
}

impl Metrics {
    /// The counters of Kubernetes API requests, for [`counted_client`](crate::cluster::calls::counted_client).
    pub fn api_calls(&self) -> ApiCalls {
        self.api_calls.clone()
    }

    /// How long each step of a deploy takes (recorded by [`crate::operations::deploy`]).
    pub fn deploy_steps(&self) -> &DeploySteps {
        &self.deploy_steps
    }

    /// The GPU-seconds counter the accountant adds to.
    pub fn gpu_seconds(&self) -> crate::usage::GpuSeconds {
        self.gpu_seconds.clone()
    }

    /// The LLP API's metrics, for [`DirectusSource::counting`](crate::records::directus::DirectusSource::counting).
    pub fn llp_api(&self) -> LlpApiMetrics {
        self.llp_api.clone()
    }
}

/// The method as a label: the standard ones by name, anything a client makes up as `other`,
/// so that requests (which need no token on `/healthz`) cannot grow the metrics without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware counting every request and its latency.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method()).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = RequestLabels {
        route,
        method,
        status: response.status().as_u16(),
    };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Prometheus metrics (text format): requests and latency per route, Kubernetes API requests
/// by verb, watch cache sizes.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(),
    responses((status = 200, description = "The metrics", body = String, content_type = "application/openmetrics-text")))]
pub async fn render(State(state): State<AppState>) -> Response {
    if let Some(cluster) = &state.cluster {
        let caches = &cluster.caches;
        for (kind, size) in [
            ("statefulsets", caches.stateful_sets.state().len()),
            ("jobs", caches.jobs.state().len()),
            ("pods", caches.pods.state().len()),
            ("persistentvolumeclaims", caches.claims.state().len()),
        ] {
            state
                .metrics
                .cache_objects
                .get_or_create(&CacheLabels { kind: kind.into() })
                .set(i64::try_from(size).unwrap_or(i64::MAX));
        }
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &state.metrics.registry).is_err() {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics").into_response();
    }
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
