//! `events.k8s.io/v1` Events are a view of the core/v1 Events the cluster records, as on a
//! real API server (both read the same storage): this module translates between the two.

use crate::resources::{RESOURCES, ResourceId, find, ids};
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
        "eventTime": null,
        "regarding": object["involvedObject"],
        "note": object["message"],
        "reason": object["reason"],
        "type": object["type"],
        "action": object["reason"],
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
