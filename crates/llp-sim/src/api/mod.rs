//! The HTTP face of the simulator: one handler that routes a path the way the API server
//! does ([`path`]), checks the bearer token, and answers with the store's objects.

pub mod discovery;
mod events_v1;
mod logs;
mod objects;
mod paging;
pub mod path;
pub mod protobuf;
pub mod rbac;
mod scale;
pub mod status;
pub mod table;
mod watch;

use crate::logs::LogBook;
use crate::store::Store;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use path::ApiPath;
use status::ApiError;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Shared state of the API.
#[derive(Clone)]
pub struct ApiState {
    /// The objects.
    pub store: Arc<Mutex<Store>>,
    /// Container logs.
    pub logs: Arc<LogBook>,
    /// The bearer token clients must send; `None` accepts anyone.
    pub token: Option<Arc<str>>,
    /// Every request received, for tests that count API calls.
    pub requests: Arc<RequestLog>,
    /// Rules the token is limited to; `None` allows everything.
    pub rbac: Option<Arc<rbac::Rbac>>,
}

/// A count of requests and the most recent ones (`GET /api/v1/pods?watch=true`).
#[derive(Default)]
pub struct RequestLog {
    count: AtomicU64,
    recent: Mutex<VecDeque<String>>,
    /// (group, resource, verb) of every resource request, allowed or not.
    used: Mutex<BTreeSet<(String, String, String)>>,
    /// The refusals' messages (the first 100).
    forbidden: Mutex<Vec<String>>,
}

impl RequestLog {
    /// Requests received so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// The most recent requests, oldest first.
    pub fn recent(&self) -> Vec<String> {
        self.recent.lock().expect("request log lock").iter().cloned().collect()
    }

    /// The distinct (API group, resource, verb) of the resource requests so far: what a Role
    /// for this client must grant.
    pub fn used(&self) -> BTreeSet<(String, String, String)> {
        self.used.lock().expect("request log lock").clone()
    }

    /// The messages of the requests RBAC refused.
    pub fn forbidden(&self) -> Vec<String> {
        self.forbidden.lock().expect("request log lock").clone()
    }

    fn record_attributes(&self, attributes: &rbac::Attributes) {
        let triple = (
            attributes.group.clone(),
            attributes.resource.clone(),
            attributes.verb.to_owned(),
        );
        self.used.lock().expect("request log lock").insert(triple);
    }

    fn record_refusal(&self, message: &str) {
        let mut forbidden = self.forbidden.lock().expect("request log lock");
        if forbidden.len() < 100 {
            forbidden.push(message.to_owned());
        }
    }

    fn record(&self, method: &Method, uri: &Uri) {
        self.count.fetch_add(1, Ordering::SeqCst);
        let mut recent = self.recent.lock().expect("request log lock");
        recent.push_back(format!("{method} {uri}"));
        if recent.len() > 1000 {
            recent.pop_front();
        }
    }
}

/// The router serving every path.
pub fn router(state: ApiState) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// Query parameters, all optional, as the API server reads them.
pub type Params = HashMap<String, String>;

async fn dispatch(
    State(state): State<ApiState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    state.requests.record(&method, &uri);
    if !authorized(&state, &headers) {
        return ApiError::unauthorized().into_response();
    }
    let result = match path::parse(uri.path()) {
        ApiPath::Version => Ok(axum::Json(discovery::version()).into_response()),
        ApiPath::CoreGroup => Ok(discovery::groups(true, &headers)),
        ApiPath::Groups => Ok(discovery::groups(false, &headers)),
        ApiPath::GroupVersion { group, version } => discovery::resource_list(&group, &version)
            .map(|list| axum::Json(list).into_response())
            .ok_or_else(|| ApiError::no_route(uri.path())),
        ApiPath::Resource(target) => {
            let attributes = rbac::Attributes::of(
                &method,
                &target,
                params.get("watch").is_some_and(|w| w == "true" || w == "1"),
            );
            if let Err(refusal) = authorize(&state, &attributes) {
                return refusal.into_response();
            }
            let request = objects::Request {
                state: &state,
                method: &method,
                headers: &headers,
                params: &params,
                body: &body,
            };
            objects::handle(request, target).await
        }
        ApiPath::Unknown => Err(ApiError::no_route(uri.path())),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Records `attributes` and refuses them with the API server's 403 unless RBAC allows them.
pub(crate) fn authorize(state: &ApiState, attributes: &rbac::Attributes) -> Result<(), ApiError> {
    state.requests.record_attributes(attributes);
    match &state.rbac {
        Some(rbac) if !rbac.allows(attributes) => {
            let message = attributes.forbidden_message(&rbac.user);
            state.requests.record_refusal(&message);
            Err(ApiError::forbidden(message))
        }
        _ => Ok(()),
    }
}

fn authorized(state: &ApiState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.token else { return true };
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|sent| sent.trim() == &**token)
}
