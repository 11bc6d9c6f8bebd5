//! What kube-apiserver's server-side apply checks of an applied configuration against the
//! kind's schema: every field declared, every value of its declared type. The schemas are
//! k8s-openapi's types: a configuration is read into its kind's type and written back, and a
//! field that does not come back was not declared. (Apply answers both with 500, as
//! kube-apiserver 1.37 does: its typed-patch conversion fails as an internal error.)

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why `applied` is not a `kind` as its schema declares it; `None` when it is, or when the
/// kind has no schema here.
pub fn undeclared(kind: &str, applied: &Value) -> Option<String> {
    use k8s_openapi::api::{apps, batch, coordination, core, networking};
    let round_trip = match kind {
        "ConfigMap" => round_trip::<core::v1::ConfigMap>(applied),
        "Secret" => round_trip::<core::v1::Secret>(applied),
        "Pod" => round_trip::<core::v1::Pod>(applied),
        "Service" => round_trip::<core::v1::Service>(applied),
        "PersistentVolumeClaim" => round_trip::<core::v1::PersistentVolumeClaim>(applied),
        "Namespace" => round_trip::<core::v1::Namespace>(applied),
        "ResourceQuota" => round_trip::<core::v1::ResourceQuota>(applied),
        "StatefulSet" => round_trip::<apps::v1::StatefulSet>(applied),
        "Job" => round_trip::<batch::v1::Job>(applied),
        "Ingress" => round_trip::<networking::v1::Ingress>(applied),
        "NetworkPolicy" => round_trip::<networking::v1::NetworkPolicy>(applied),
        "Lease" => round_trip::<coordination::v1::Lease>(applied),
        _ => return None,
    };
    match round_trip {
        Err(error) => Some(error),
        Ok(typed) => {
            missing(applied, &typed, &mut String::new()).map(|path| format!("{path}: field not declared in schema"))
        }
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(applied: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(applied.clone()).map_err(|error| error.to_string())?;
    serde_json::to_value(typed).map_err(|error| error.to_string())
}

/// The first path set in `applied` that `typed` lacks (`.spec.colour`).
fn missing(applied: &Value, typed: &Value, path: &mut String) -> Option<String> {
    match (applied, typed) {
        (Value::Object(fields), Value::Object(kept)) => fields.iter().find_map(|(name, value)| {
            if value.is_null() {
                return None;
            }
            let length = path.len();
            path.push('.');
            path.push_str(name);
            let found = match kept.get(name) {
                None => Some(path.clone()),
                Some(kept) => missing(value, kept, path),
            };
            path.truncate(length);
            found
        }),
        (Value::Array(items), Value::Array(kept)) => {
            items.iter().zip(kept).enumerate().find_map(|(index, (item, kept))| {
                let length = path.len();
                path.push_str(&format!("[{index}]"));
                let found = missing(item, kept, path);
                path.truncate(length);
                found
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn undeclared_fields_and_wrong_types_are_named() {
        let map = |extra: Value| {
            let mut map =
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"a": "1"}});
            map.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            map
        };
        assert_eq!(undeclared("ConfigMap", &map(json!({}))), None);
        assert_eq!(
            undeclared("ConfigMap", &map(json!({"colour": "red"}))).as_deref(),
            Some(".colour: field not declared in schema")
        );
        assert!(undeclared("ConfigMap", &map(json!({"data": {"a": 1}}))).is_some());
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x", "colour": "red"}]}});
        assert_eq!(
            undeclared("Pod", &pod).as_deref(),
            Some(".spec.containers[0].colour: field not declared in schema")
        );
        assert_eq!(undeclared("Widget", &json!({"colour": 1})), None);
        // An applied configuration may leave out what the schema requires.
        let partial =
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {"replicas": 2}});
        assert_eq!(undeclared("StatefulSet", &partial), None);
    }
}
