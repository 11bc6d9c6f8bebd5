//! The `scale` subresource of StatefulSets (`autoscaling/v1` Scale), as `kubectl scale` uses it.

use super::objects::{Request, not_found};
use super::status::ApiError;
use crate::store::ObjectKey;
use crate::store::patch::PatchKind;
use axum::Json;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// GET, PUT or PATCH of `…/statefulsets/{name}/scale`.
pub fn handle(request: &Request<'_>, key: &ObjectKey, method: &Method) -> Result<Response, ApiError> {
    let mut store = request.store();
    let sts = store.get(key).ok_or_else(|| not_found(key))?;
    // A write that names a resourceVersion is conditional on it, as on the object itself.
    let stale = |scale: &Value| {
        scale["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| !rv.is_empty() && sts["metadata"]["resourceVersion"] != rv)
    };
    let replicas = match *method {
        Method::GET => return Ok(Json(to_scale(&sts)).into_response()),
        Method::PUT => {
            let body = request.json_body()?;
            if stale(&body) {
                return Err(store.conflict(key).into());
            }
            body["spec"]["replicas"].as_i64()
        }
        Method::PATCH => {
            let kind = request.patch_kind().unwrap_or(PatchKind::Merge);
            let mut scale = to_scale(&sts);
            let body = request.json_body()?;
            if kind == PatchKind::Apply {
                return apply(request, store, key, &body);
            }
            match kind {
                PatchKind::Json => crate::store::patch::json_patch(&mut scale, &body)?,
                _ => crate::store::patch::merge_patch(&mut scale, &body),
            }
            if stale(&scale) {
                return Err(store.conflict(key).into());
            }
            scale["spec"]["replicas"].as_i64()
        }
        _ => return Err(ApiError::method_not_allowed(method.as_str())),
    };
    let replicas = checked(replicas, key)?;
    store.set_author(crate::store::Author {
        subresource: Some("scale"),
        ..request.author()
    });
    let updated = store.patch(key, PatchKind::Merge, &json!({"spec": {"replicas": replicas}}), false)?;
    Ok(Json(to_scale(&updated)).into_response())
}

/// A replica count a write may set.
fn checked(replicas: Option<i64>, key: &ObjectKey) -> Result<i64, ApiError> {
    match replicas {
        Some(replicas) if replicas >= 0 => Ok(replicas),
        Some(negative) => Err(ApiError::unprocessable(format!(
            "Scale.autoscaling \"{}\" is invalid: spec.replicas: Invalid value: {negative}: must be greater than or equal to 0",
            key.name
        ))),
        None => Err(ApiError::bad_request("spec.replicas must be an integer")),
    }
}

/// A server-side apply of the scale: an apply of the StatefulSet's `spec.replicas` through
/// the subresource, so that its manager owns that field (entry `subresource: scale`) and
/// conflicts with another manager that owns it, as kube-apiserver does.
fn apply(
    request: &Request<'_>,
    mut store: super::objects::StoreGuard<'_>,
    key: &ObjectKey,
    body: &Value,
) -> Result<Response, ApiError> {
    let replicas = checked(body["spec"]["replicas"].as_i64(), key)?;
    store.set_author(crate::store::Author {
        subresource: Some("scale"),
        ..request.author()
    });
    let applied = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": key.name}, "spec": {"replicas": replicas}});
    let updated = store.patch(key, PatchKind::Apply, &applied, false)?;
    Ok(Json(to_scale(&updated)).into_response())
}

fn to_scale(sts: &Value) -> Value {
    let meta = &sts["metadata"];
    let selector: Vec<String> = sts["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": sts["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": sts["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.join(",")},
    })
}
