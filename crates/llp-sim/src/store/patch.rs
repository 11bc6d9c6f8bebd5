//! The patch types clients send: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic merge
//! (kubectl's, with list merge keys); server-side apply is field ownership's ([`super::managed`]).

use serde_json::Value;

/// How a PATCH body is to be applied, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// The kind for a Content-Type header, if supported.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next()?.trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Why a JSON patch did not apply.
#[derive(Debug, PartialEq, Eq)]
pub enum JsonPatchError {
    /// It is not a JSON patch (kube-apiserver: 400).
    Malformed(String),
    /// It is one, but does not apply: a `test` that fails, a path that is not there (422).
    NotApplicable(String),
}

/// Applies an RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let patch: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| JsonPatchError::Malformed(e.to_string()))?;
    json_patch::patch(target, &patch).map_err(|e| JsonPatchError::NotApplicable(e.to_string()))
}

/// Applies an RFC 7386 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// The merge key of a list field, as the Kubernetes types declare it (`x-kubernetes-patch-merge-key`).
/// Lists without one (`volumeClaimTemplates`, `args`, …) are replaced whole.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "imagePullSecrets" => {
            Some("name")
        }
        "volumeMounts" => Some("mountPath"),
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => Some("containerPort"),
        "ports" => Some("port"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        _ => None,
    }
}

/// Applies a strategic merge patch: like a merge patch, but lists with a merge key are merged
/// item by item, and `$patch: delete` / `$patch: replace` directives are honoured.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) else {
        *target = strip_directives(patch);
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    for (key, value) in p {
        if key.starts_with('$') {
            continue; // $setElementOrder, $retainKeys, $deleteFromPrimitiveList: order and pruning hints
        }
        match (t.get_mut(key), value) {
            (_, Value::Null) => {
                t.remove(key);
            }
            (Some(Value::Array(items)), Value::Array(patch_items)) => match merge_key(key, patch_items) {
                Some(merge_key) => merge_list(items, patch_items, merge_key),
                None => *items = patch_items.iter().map(strip_directives).collect(),
            },
            (Some(existing @ Value::Object(_)), Value::Object(_)) => strategic_merge(existing, value),
            _ => {
                t.insert(key.clone(), strip_directives(value));
            }
        }
    }
}

fn merge_list(items: &mut Vec<Value>, patch_items: &[Value], key: &str) {
    for patch_item in patch_items {
        let position = items
            .iter()
            .position(|i| i.get(key).is_some() && i.get(key) == patch_item.get(key));
        let delete = patch_item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(at), true) => {
                items.remove(at);
            }
            (None, true) => {}
            (Some(at), false) => strategic_merge(&mut items[at], patch_item),
            (None, false) => items.push(strip_directives(patch_item)),
        }
    }
}

fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        strategic_merge(
            &mut pod,
            &json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}}),
        );
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}, {"name": "c", "image": "w"}])
        );
        strategic_merge(
            &mut pod,
            &json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
        );
        assert_eq!(pod["spec"]["containers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn strategic_merge_sets_the_restart_annotation_like_kubectl() {
        let mut sts = json!({"spec": {"template": {"metadata": {"labels": {"app": "x"}}}}});
        let patch =
            json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}}});
        strategic_merge(&mut sts, &patch);
        assert_eq!(
            sts["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "now"
        );
        assert_eq!(sts["spec"]["template"]["metadata"]["labels"]["app"], "x");
    }

    #[test]
    fn json_patch_and_merge_patch() {
        let mut v = json!({"a": {"b": 1}});
        json_patch(&mut v, &json!([{"op": "replace", "path": "/a/b", "value": 2}])).unwrap();
        merge_patch(&mut v, &json!({"c": 3, "a": null}));
        assert_eq!(v, json!({"c": 3}));
        assert!(json_patch(&mut v, &json!([{"op": "test", "path": "/c", "value": 4}])).is_err());
    }
}
