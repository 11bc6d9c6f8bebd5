//! The outermost layer: every error the frontend can receive has the Directus shape, also
//! those no handler wrote (axum's 405 and extractor rejections, a URI too long to route).

use super::error::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use llp_spec::ErrorBody;

/// Longest request target (path and query) accepted; a longer one is a 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Refuses over-long URIs and gives any error response without a JSON body one in the
/// Directus shape, keeping its status and headers (`Allow` on a 405).
pub async fn shape_errors(request: Request, next: Next) -> Response {
    let target = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::UriTooLong.into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let detail = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let (code, message) = describe(status, &String::from_utf8_lossy(&detail));
    let body = serde_json::to_vec(&ErrorBody::single(code, message)).unwrap_or_default();
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The Directus error code and a message for an error no handler described.
fn describe(status: StatusCode, detail: &str) -> (&'static str, String) {
    let detail = detail.trim();
    match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "METHOD_NOT_ALLOWED",
            "this route does not take that method; the `Allow` header lists the ones it takes.".into(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("CONTENT_TOO_LARGE", "the request body is too large.".into()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "UNSUPPORTED_MEDIA_TYPE",
            "send the body as JSON (`Content-Type: application/json`).".into(),
        ),
        s if s.is_client_error() => (
            "INVALID_PAYLOAD",
            if detail.is_empty() {
                format!("the request was refused ({s}).")
            } else {
                format!("the request was refused: {detail}")
            },
        ),
        _ => (
            "INTERNAL_SERVER_ERROR",
            "the service failed; the details are in its log.".into(),
        ),
    }
}

/// While the replica drains (told to stop, still serving), every answer says
/// `Connection: close`: clients open their next request anew, which the load balancer sends
/// to another replica, instead of reusing a connection this one is about to close.
pub async fn close_while_draining(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    if *state.shutdown.borrow() {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// At most [`ServerLimits::requests_per_token`](crate::config::ServerLimits) requests with
/// one token in progress: one more is a 429 before its body is read, so that one user (or a
/// stolen token) cannot hold every connection with slow requests.
pub async fn limit_per_token(
    axum::extract::State(slots): axum::extract::State<std::sync::Arc<super::server::Slots>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let token = super::auth::token(&parts);
    let request = Request::from_parts(parts, body);
    let Some(token) = token else {
        return next.run(request).await;
    };
    let Some(_slot) = slots.open(&token) else {
        return ApiError::TooManyRequests { max: slots.max() }.into_response();
    };
    // Until the answer's head: a followed log streams on, capped on its own (`follows_per_user`).
    next.run(request).await
}
