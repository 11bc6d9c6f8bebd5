//! `events.k8s.io/v1` Events are a view of the core/v1 Events the cluster records, as on a
//! real API server (both read and write the same storage): this module translates between
//! the two, and serves writes through the new API (what client-go's event recorder of the
//! new API, and kube-scheduler, send) with its validation.

use super::objects::{Request, not_found};
use super::path::Target;
use super::status::ApiError;
use crate::resources::{RESOURCES, ResourceId, find, ids};
use crate::store::patch::PatchKind;
use crate::store::{ObjectKey, Propagation, StoreError};
use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The id of `events.k8s.io/v1` events.
pub fn id() -> ResourceId {
    find("events.k8s.io", "v1", "events").expect("events.k8s.io/v1 is served")
}

/// Reads of `events.k8s.io/v1` are served from core events.
pub fn storage(resource: ResourceId) -> ResourceId {
    if resource == id() { ids::events() } else { resource }
}

/// Field selectors name `regarding.*` and `note` in the new API, `involvedObject.*` and
/// `message` in storage.
pub fn storage_field_selector(resource: ResourceId, selector: &str) -> String {
    if resource != id() {
        return selector.to_owned();
    }
    selector
        .replace("regarding.", "involvedObject.")
        .replace("note=", "message=")
}

/// A core/v1 Event as an `events.k8s.io/v1` Event; other objects unchanged.
pub fn present(resource: ResourceId, object: &Value) -> Value {
    if resource != id() {
        return object.clone();
    }
    let rt = &RESOURCES[resource];
    json!({
        "kind": rt.kind,
        "apiVersion": rt.api_version(),
        "metadata": object["metadata"],
        "eventTime": object["eventTime"],
        "series": object["series"],
        "regarding": object["involvedObject"],
        "related": object["related"],
        "note": object["message"],
        "reason": object["reason"],
        "type": object["type"],
        // Events of the core API seldom name an action; their reason stands in.
        "action": if object["action"].is_string() { &object["action"] } else { &object["reason"] },
        "reportingController": object["reportingComponent"],
        "reportingInstance": object["reportingInstance"],
        "deprecatedSource": object["source"],
        "deprecatedFirstTimestamp": object["firstTimestamp"],
        "deprecatedLastTimestamp": object["lastTimestamp"],
        "deprecatedCount": object["count"],
    })
}

/// [`present`] for a list; other kinds' objects are passed through without copying.
pub fn present_all(resource: ResourceId, objects: Vec<std::sync::Arc<Value>>) -> Vec<std::sync::Arc<Value>> {
    if resource != id() {
        return objects;
    }
    objects
        .iter()
        .map(|o| std::sync::Arc::new(present(resource, o)))
        .collect()
}

/// An `events.k8s.io/v1` Event as the core/v1 Event it is stored as.
fn to_storage(event: &Value) -> Value {
    let fields = [
        ("metadata", "metadata"),
        ("involvedObject", "regarding"),
        ("related", "related"),
        ("message", "note"),
        ("reason", "reason"),
        ("type", "type"),
        ("action", "action"),
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ];
    let mut core = json!({"apiVersion": "v1", "kind": "Event"});
    for (stored, written) in fields {
        if let Some(value) = event.get(written).filter(|v| !v.is_null()) {
            core[stored] = value.clone();
        }
    }
    core
}

/// What kube-apiserver requires of an Event written through `events.k8s.io/v1` into
/// `namespace`: its time, then (once it has one) who reported what; the object it is about
/// in its own namespace.
fn validate(event: &Value, namespace: &str) -> Result<(), StoreError> {
    let mut causes = Vec::new();
    if event["eventTime"].as_str().is_none_or(str::is_empty) {
        causes.push(("eventTime".to_owned(), "Required value".to_owned()));
    } else {
        for field in ["reportingController", "reportingInstance", "action", "reason"] {
            if event[field].as_str().is_none_or(str::is_empty) {
                causes.push((field.to_owned(), "Required value".to_owned()));
            }
        }
    }
    let regarding = event["regarding"]["namespace"].as_str().unwrap_or_default();
    let matches = if regarding.is_empty() {
        namespace.is_empty() || namespace == "default"
    } else {
        regarding == namespace
    };
    if !matches {
        causes.push((
            "involvedObject.namespace".to_owned(),
            format!("Invalid value: \"{regarding}\": does not match event.namespace"),
        ));
    }
    if let Some(kind) = event["type"].as_str().filter(|t| !matches!(*t, "Normal" | "Warning")) {
        causes.push((
            "type".to_owned(),
            format!("Unsupported value: \"{kind}\": supported values: \"Normal\", \"Warning\""),
        ));
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(StoreError::Invalid {
        kind: "Event".into(),
        name: event["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        causes,
    })
}

/// A create, update, patch or delete of an `events.k8s.io/v1` Event, carried out on its
/// core/v1 storage and answered in the new API's shape.
pub fn write(request: &Request<'_>, target: &Target) -> Result<Response, ApiError> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let key = |name: &str| ObjectKey::new(ids::events(), &namespace, name);
    let answer = |code: StatusCode, stored: &Value| (code, Json(present(id(), stored))).into_response();
    match (request.method, target.name.as_deref()) {
        (&Method::POST, None) => {
            let event = request.json_body()?;
            validate(&event, &namespace)?;
            let mut core = to_storage(&event);
            if let Some(meta) = core["metadata"].as_object_mut() {
                meta.remove("resourceVersion");
                meta.remove("uid");
            }
            let created = request.store().create(ids::events(), &namespace, core)?;
            Ok(answer(StatusCode::CREATED, &created))
        }
        (&Method::PUT, Some(name)) => {
            let event = request.json_body()?;
            validate(&event, &namespace)?;
            let updated = request.store().update(&key(name), to_storage(&event), false)?;
            Ok(answer(StatusCode::OK, &updated))
        }
        (&Method::PATCH, Some(name)) => {
            let body = request.json_body()?;
            let mut store = request.store();
            let stored = store.get(&key(name)).ok_or_else(|| not_found(&key(name)))?;
            let mut event = present(id(), &stored);
            match request.patch_kind() {
                Some(PatchKind::Json) => crate::store::patch::json_patch(&mut event, &body)?,
                Some(PatchKind::Merge | PatchKind::Strategic) => crate::store::patch::merge_patch(&mut event, &body),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        "the simulator patches events.k8s.io/v1 Events by JSON, merge or strategic merge patch; apply core/v1 Events",
                    ));
                }
            }
            validate(&event, &namespace)?;
            let updated = store.update(&key(name), to_storage(&event), false)?;
            Ok(answer(StatusCode::OK, &updated))
        }
        (&Method::DELETE, Some(name)) => {
            let deleted = request.store().delete(&key(name), Propagation::Background)?;
            Ok(Json(json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": "events.k8s.io", "kind": "events", "uid": deleted["metadata"]["uid"]},
            }))
            .into_response())
        }
        (method, _) => Err(ApiError::method_not_allowed(method.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_of_the_new_api_is_stored_as_a_core_event_and_read_back_the_same() {
        let event = json!({
            "metadata": {"name": "e"}, "eventTime": "2026-12-04T10:00:00.000000Z",
            "regarding": {"kind": "Pod", "name": "p"}, "note": "pulled", "reason": "Pulled", "type": "Normal",
            "action": "Pulling", "reportingController": "kubelet", "reportingInstance": "node-1",
        });
        assert_eq!(validate(&event, "default"), Ok(()));
        let core = to_storage(&event);
        assert_eq!(
            (
                &core["involvedObject"]["name"],
                &core["message"],
                &core["reportingComponent"]
            ),
            (&json!("p"), &json!("pulled"), &json!("kubelet"))
        );
        let back = present(id(), &core);
        for field in [
            "eventTime",
            "regarding",
            "note",
            "reason",
            "type",
            "action",
            "reportingController",
        ] {
            assert_eq!(back[field], event[field], "{field}");
        }
        let fields = |event: Value| match validate(&event, "services") {
            Err(StoreError::Invalid { causes, .. }) => causes.into_iter().map(|(f, _)| f).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fields(json!({"type": "Odd"})),
            ["eventTime", "involvedObject.namespace", "type"]
        );
        assert_eq!(
            fields(json!({"eventTime": "2026-12-04T10:00:00.000000Z", "regarding": {"namespace": "services"}})),
            ["reportingController", "reportingInstance", "action", "reason"]
        );
    }
}
