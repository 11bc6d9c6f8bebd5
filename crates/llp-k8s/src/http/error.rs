//! The one error type of the HTTP edge and its table of statuses and Directus bodies.
//!
//! Every failure becomes `{"errors": [{"message", "extensions": {"code", …}}]}`, the shape the
//! LLP frontend parses. A 5xx names the dependency that failed; details go to the log.

use crate::operations;
use crate::records::RecordError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use llp_spec::{ErrorBody, FieldError};

/// A request body, read with the service's error shape when it is too large or unreadable,
/// and within the [`BodyDeadline`] the server sets.
pub struct Body(pub axum::body::Bytes);

/// How long a request may take to send its body (a request extension the server adds).
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub std::time::Duration);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let deadline = request.extensions().get::<BodyDeadline>().copied();
        let reading = axum::body::Bytes::from_request(request, state);
        let read = match deadline {
            Some(BodyDeadline(within)) => {
                tokio::time::timeout(within, reading)
                    .await
                    .map_err(|_| ApiError::BodyTimeout {
                        seconds: within.as_secs(),
                    })?
            }
            None => reading.await,
        };
        match read {
            Ok(bytes) => Ok(Body(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge),
            Err(rejection) => Err(ApiError::BadRequest {
                field: None,
                message: rejection.body_text(),
            }),
        }
    }
}

/// A failed request.
#[derive(Debug)]
pub enum ApiError {
    /// No token, or an invalid one (401).
    Unauthorized,
    /// The LLP API refuses the caller (403).
    Forbidden(String),
    /// Unknown, or not the caller's (404; the same answer for both).
    NotFound(String),
    /// The request body or a query parameter is malformed (400), on `field` when known.
    BadRequest { field: Option<String>, message: String },
    /// The body is larger than the service accepts (413).
    TooLarge,
    /// The request target (path and query) is longer than the service accepts (414).
    UriTooLong,
    /// The caller has `max` streams of `kind` open already (429).
    TooManyStreams { kind: StreamKind, max: usize },
    /// The caller's token has `max` requests in progress already (429).
    TooManyRequests { max: usize },
    /// The body did not arrive within `seconds` (408).
    BodyTimeout { seconds: u64 },
    /// The deployment spec is invalid (400), every problem listed.
    Validation(Vec<FieldError>),
    /// The request conflicts with another deployment (409), e.g. a hostname in use.
    Conflict { field: String, message: String },
    /// The deployment's previous objects are still being deleted (409, with Retry-After).
    StillDeleting { objects: Vec<String> },
    /// A dependency (`the LLP API`, `the cluster`, `the record store`) failed (503).
    Unavailable { dependency: &'static str },
    /// The cluster has not been followed since `since`, for longer than allowed (503).
    ClusterStale { since: jiff::Timestamp },
    /// A dependency could not be reached or answered badly (502).
    BadGateway { dependency: &'static str },
    /// A deploy stopped at `object` because the cluster failed (503); the next PUT repairs it.
    PartlyApplied { object: String },
    /// A dependency did not answer in time (504).
    Timeout { dependency: &'static str },
    /// The change would take the user's deployments over their group's quota (400).
    OverQuota(String),
    /// The GPU reservations active now do not cover the change (400).
    NotEnoughResources(llp_spec::reservations::Shortfall),
}

/// What kind of long-lived answer a user opens a number of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `logs?follow=true`.
    Logs,
    /// `/stream`.
    Status,
    /// `/exec`.
    Terminals,
}

impl StreamKind {
    fn plural(self) -> &'static str {
        match self {
            StreamKind::Logs => "log streams",
            StreamKind::Status => "status streams",
            StreamKind::Terminals => "terminals",
        }
    }

    /// What to do instead of opening one more, if there is something.
    fn alternative(self) -> &'static str {
        match self {
            StreamKind::Logs => " (or read without `follow`)",
            StreamKind::Status => " (one stream per deployment is enough)",
            StreamKind::Terminals => "",
        }
    }
}

impl ApiError {
    /// A failed cluster request, as the user's answer: what Kubernetes says means "not
    /// found", "conflict" or "invalid" is the 404, 409 or 400 it is, with its message; no
    /// answer in time is a 504; anything else a 503 naming the cluster (the detail goes to the
    /// log). See [`operations::Error::cluster`].
    pub fn cluster(error: kube::Error) -> Self {
        operations::Error::cluster(error).into()
    }

    /// 400 about one field.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}

/// The one place an operation's refusal becomes an HTTP answer.
impl From<operations::Error> for ApiError {
    fn from(error: operations::Error) -> Self {
        use operations::Error;
        match error {
            Error::NotFound(message) => ApiError::NotFound(message),
            Error::Invalid { field, message } => ApiError::BadRequest { field, message },
            Error::Validation(problems) => ApiError::Validation(problems),
            Error::Conflict { field, message } => ApiError::Conflict { field, message },
            Error::StillDeleting { objects } => ApiError::StillDeleting { objects },
            Error::OverQuota(message) => ApiError::OverQuota(message),
            Error::NotEnoughResources(shortfall) => ApiError::NotEnoughResources(shortfall),
            Error::PartlyApplied { object } => ApiError::PartlyApplied { object },
            Error::Unavailable { dependency } => ApiError::Unavailable { dependency },
            Error::Timeout { dependency } => ApiError::Timeout { dependency },
            Error::Records(error) => error.into(),
            Error::TooManySessions { kind, max } => ApiError::TooManyStreams {
                kind: match kind {
                    crate::cluster::sessions::SessionKind::Logs => StreamKind::Logs,
                    crate::cluster::sessions::SessionKind::Terminal => StreamKind::Terminals,
                },
                max,
            },
        }
    }
}

impl From<RecordError> for ApiError {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::Unauthorized => ApiError::Unauthorized,
            RecordError::NotFound => ApiError::NotFound("deployment not found".into()),
            RecordError::Forbidden(message) => ApiError::Forbidden(message),
            RecordError::Invalid(message) => ApiError::BadRequest { field: None, message },
            RecordError::InvalidField { field, message } => ApiError::BadRequest {
                message: format!("{field}: {message}"),
                field: Some(field),
            },
            RecordError::Unavailable { source_name, detail } => {
                tracing::error!(%detail, "{source_name} failed");
                ApiError::Unavailable {
                    dependency: source_name,
                }
            }
            RecordError::BadGateway { source_name, detail } => {
                tracing::error!(%detail, "{source_name} failed");
                ApiError::BadGateway {
                    dependency: source_name,
                }
            }
            RecordError::Timeout { source_name } => ApiError::Timeout {
                dependency: source_name,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                ErrorBody::single(
                    "INVALID_CREDENTIALS",
                    "Invalid or missing token: send `Authorization: Bearer <token>`.",
                ),
            ),
            ApiError::Forbidden(message) => (StatusCode::FORBIDDEN, ErrorBody::single("FORBIDDEN", message)),
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, ErrorBody::single("NOT_FOUND", message)),
            ApiError::BadRequest { field, message } => {
                let mut body = ErrorBody::single("INVALID_PAYLOAD", message);
                body.errors[0].extensions.field = field;
                (StatusCode::BAD_REQUEST, body)
            }
            ApiError::Conflict { field, message } => {
                let mut body = ErrorBody::single("CONFLICT", message);
                body.errors[0].extensions.field = Some(field).filter(|f| !f.is_empty());
                (StatusCode::CONFLICT, body)
            }
            ApiError::StillDeleting { objects } => {
                let message = format!(
                    "the previous deployment is still being deleted ({}); retry in a few seconds.",
                    objects.join(", ")
                );
                let body = ErrorBody::single("CONFLICT", message);
                let mut response = (StatusCode::CONFLICT, Json(body)).into_response();
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("5"),
                );
                return response;
            }
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::single("PAYLOAD_TOO_LARGE", "The body is too large: at most 2 MB are accepted."),
            ),
            ApiError::ClusterStale { since } => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorBody::single(
                    "SERVICE_UNAVAILABLE",
                    format!("the cluster has not answered since {since}: the service's view of it is out of date."),
                ),
            ),
            ApiError::TooManyStreams { kind, max } => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorBody::single(
                    "REQUESTS_EXCEEDED",
                    format!(
                        "You have {max} {} open already, the most one user may: close one{}.",
                        kind.plural(),
                        kind.alternative()
                    ),
                ),
            ),
            ApiError::TooManyRequests { max } => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorBody::single(
                    "REQUESTS_EXCEEDED",
                    format!(
                        "You have {max} requests in progress already, the most one token may: wait for them to finish."
                    ),
                ),
            ),
            ApiError::BodyTimeout { seconds } => (
                StatusCode::REQUEST_TIMEOUT,
                ErrorBody::single(
                    "REQUEST_TIMEOUT",
                    format!("The request body did not arrive within {seconds} s; send it at once."),
                ),
            ),
            ApiError::OverQuota(message) => (StatusCode::BAD_REQUEST, ErrorBody::single("QUOTA_EXCEEDED", message)),
            ApiError::UriTooLong => (
                StatusCode::URI_TOO_LONG,
                ErrorBody::single(
                    "URI_TOO_LONG",
                    format!(
                        "The URL is too long: at most {} bytes of path and query are accepted.",
                        super::edge::MAX_URI_BYTES
                    ),
                ),
            ),
            ApiError::Validation(problems) => (StatusCode::BAD_REQUEST, ErrorBody::validation(&problems)),
            ApiError::NotEnoughResources(shortfall) => {
                let mut body = ErrorBody::single("NOT_ENOUGH_RESOURCES", shortfall.to_string());
                // The key the LLP frontend translates (docs/compatibility.md).
                body.errors[0].extensions.reason = Some("api_errors.not_enough_resources");
                (StatusCode::BAD_REQUEST, body)
            }
            ApiError::PartlyApplied { object } => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorBody::single(
                    "SERVICE_UNAVAILABLE",
                    format!(
                        "the cluster failed while applying {object}; deploy again: it applies whatever is missing."
                    ),
                ),
            ),
            ApiError::Timeout { dependency } => (
                StatusCode::GATEWAY_TIMEOUT,
                ErrorBody::single(
                    "GATEWAY_TIMEOUT",
                    format!("{dependency} did not answer in time; try again later."),
                ),
            ),
            ApiError::BadGateway { dependency } => (
                StatusCode::BAD_GATEWAY,
                ErrorBody::single(
                    "BAD_GATEWAY",
                    format!("{dependency} is unreachable or failed; try again later."),
                ),
            ),
            ApiError::Unavailable { dependency } => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorBody::single(
                    "SERVICE_UNAVAILABLE",
                    format!("{dependency} is unavailable; try again later."),
                ),
            ),
        };
        (status, Json(with_translation_keys(status, body))).into_response()
    }
}

/// Adds the LLP frontend's translation key, as the extension it was written against sent it,
/// to each error that has none: `api_errors.bad_request`, `.unauthorized`, `.not_found`
/// (docs/compatibility.md). The message stays the readable sentence.
fn with_translation_keys(status: StatusCode, mut body: ErrorBody) -> ErrorBody {
    let key = match status {
        StatusCode::BAD_REQUEST => "api_errors.bad_request",
        StatusCode::UNAUTHORIZED => "api_errors.unauthorized",
        StatusCode::NOT_FOUND => "api_errors.not_found",
        _ => return body,
    };
    for error in &mut body.errors {
        error.extensions.reason.get_or_insert(key);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_to(code: u16, message: &str) -> StatusCode {
        let status = kube::core::Status::failure(message, "Reason").with_code(code);
        ApiError::cluster(kube::Error::Api(Box::new(status)))
            .into_response()
            .status()
    }

    #[test]
    fn what_kubernetes_answers_reaches_the_user_as_the_4xx_it_is() {
        assert_eq!(answer_to(404, "pods \"p\" not found"), StatusCode::NOT_FOUND);
        assert_eq!(answer_to(409, "the object has been modified"), StatusCode::CONFLICT);
        assert_eq!(answer_to(422, "data[..]: Invalid value"), StatusCode::BAD_REQUEST);
        assert_eq!(answer_to(400, "bad"), StatusCode::BAD_REQUEST);
        assert_eq!(answer_to(500, "etcd is down"), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            answer_to(403, "forbidden"),
            StatusCode::SERVICE_UNAVAILABLE,
            "our Role, not the user's doing"
        );
    }

    #[test]
    fn a_deploy_stopped_by_the_cluster_names_the_object_and_claims_nothing_was_applied() {
        let response = ApiError::PartlyApplied {
            object: "Service sd-1-web".into(),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 4096)).unwrap();
        let message = String::from_utf8_lossy(&body);
        assert!(
            message.contains("Service sd-1-web") && message.contains("deploy again"),
            "{message}"
        );
        // The first object may be the one that failed: nothing says others were applied.
        assert!(!message.contains("are applied"), "{message}");
    }
}
