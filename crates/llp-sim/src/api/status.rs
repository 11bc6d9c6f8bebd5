//! `Status` error bodies with the code and reason the API server would send.

use crate::store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answered as a `Status` object.
#[derive(Debug)]
pub struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    pub(crate) details: Value,
}

impl ApiError {
    /// Its HTTP status.
    pub fn code(&self) -> StatusCode {
        self.code
    }

    /// An error with `code`, `reason` and `message`.
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: Value::Null,
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 422 Invalid: a well-formed request that cannot be carried out.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
    }

    /// 404 NotFound for a path that addresses nothing.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    /// 403 Forbidden (RBAC refused the request).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// The body, as a JSON value (also used inside watch ERROR events).
    pub fn status_body(&self) -> Value {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if !self.details.is_null() {
            body["details"] = self.details.clone();
        }
        body
    }
}

/// A JSON patch that cannot be read is the client's 400; one whose operations do not apply
/// (a failed `test`, a missing path) is 422, as kube-apiserver answers them.
impl From<crate::store::patch::JsonPatchError> for ApiError {
    fn from(error: crate::store::patch::JsonPatchError) -> Self {
        match error {
            crate::store::patch::JsonPatchError::Malformed(m) => ApiError::bad_request(m),
            crate::store::patch::JsonPatchError::NotApplicable(m) => ApiError::unprocessable(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        let (code, reason, details) = match &error {
            StoreError::NotFound { resource, name } => (
                StatusCode::NOT_FOUND,
                "NotFound",
                json!({"name": name, "kind": resource}),
            ),
            StoreError::AlreadyExists { resource, name } => (
                StatusCode::CONFLICT,
                "AlreadyExists",
                json!({"name": name, "kind": resource}),
            ),
            StoreError::Conflict { resource, name, .. } => (
                StatusCode::CONFLICT,
                "Conflict",
                json!({"name": name, "kind": resource}),
            ),
            StoreError::Invalid { kind, name, causes } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                json!({"name": name, "kind": kind, "causes": causes.iter().map(|(field, message)| json!({
                    "reason": "FieldValueInvalid", "message": message, "field": field,
                })).collect::<Vec<_>>()}),
            ),
            StoreError::ApplyConflict {
                conflicts, api_version, ..
            } => (
                StatusCode::CONFLICT,
                "Conflict",
                json!({"causes": conflicts.iter().map(|c| json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{}\" using {api_version}", c.manager),
                    "field": c.field,
                })).collect::<Vec<_>>()}),
            ),
            StoreError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest", Value::Null),
            StoreError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid", Value::Null),
            StoreError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden", Value::Null),
            StoreError::Gone { .. } => (StatusCode::GONE, "Expired", Value::Null),
            StoreError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError", Value::Null),
        };
        Self {
            code,
            reason,
            message,
            details,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, Json(self.status_body())).into_response()
    }
}
