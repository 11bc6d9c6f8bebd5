//! What a kubelet checks before it starts a container: every environment variable taken
//! from a Secret or ConfigMap key (`valueFrom.secretKeyRef`, `configMapKeyRef`) must resolve,
//! unless marked optional. What does not resolve keeps the container in
//! `CreateContainerConfigError` with the kubelet's message, until it does.

use crate::resources::ids;
use crate::store::{ObjectKey, Store};
use serde_json::Value;
use std::collections::HashMap;

/// By container name, the first reference of `pod` that does not resolve in `store`.
pub fn config_errors(store: &Store, pod: &Value) -> HashMap<String, String> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut errors = HashMap::new();
    for container in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let refs = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| &e["valueFrom"]);
        let error = refs.into_iter().find_map(|from| {
            let (reference, resource, kind) = if from["secretKeyRef"].is_object() {
                (&from["secretKeyRef"], ids::secrets(), "Secret")
            } else if from["configMapKeyRef"].is_object() {
                (&from["configMapKeyRef"], ids::config_maps(), "ConfigMap")
            } else {
                return None;
            };
            if reference["optional"] == true {
                return None;
            }
            let name = reference["name"].as_str().unwrap_or_default();
            let key = reference["key"].as_str().unwrap_or_default();
            match store.get(&ObjectKey::new(resource, namespace, name)) {
                None => Some(format!("{} \"{name}\" not found", kind.to_lowercase())),
                Some(object) if object["data"].get(key).is_none() => {
                    Some(format!("couldn't find key {key} in {kind} {namespace}/{name}"))
                }
                Some(_) => None,
            }
        });
        if let Some(error) = error {
            errors.insert(container["name"].as_str().unwrap_or_default().to_owned(), error);
        }
    }
    errors
}
