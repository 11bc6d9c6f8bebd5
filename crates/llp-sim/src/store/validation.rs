//! The API server's validation rules that clients of this simulator run into: StatefulSet
//! pods must restart `Always`, and four fields of a StatefulSet's spec are immutable (as in
//! Kubernetes 1.37's `ValidateStatefulSetUpdate`, one cause per field).

use super::StoreError;
use serde_json::Value;

/// StatefulSet spec fields that may not change after creation.
const IMMUTABLE_STATEFULSET_FIELDS: [&str; 4] =
    ["selector", "volumeClaimTemplates", "serviceName", "podManagementPolicy"];

/// Checks an object before it is stored; `old` is the stored version on update.
pub fn validate(kind: &str, name: &str, new: &Value, old: Option<&Value>) -> Result<(), StoreError> {
    let mut causes = Vec::new();
    if kind == "StatefulSet" {
        let policy = new["spec"]["template"]["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always");
        if policy != "Always" {
            causes.push((
                "spec.template.spec.restartPolicy".into(),
                format!("Unsupported value: \"{policy}\": supported values: \"Always\""),
            ));
        }
        if let Some(old) = old {
            for field in IMMUTABLE_STATEFULSET_FIELDS {
                let value = &new["spec"][field];
                if *value != old["spec"][field] {
                    causes.push((
                        format!("spec.{field}"),
                        format!("Invalid value: {value}: field is immutable"),
                    ));
                }
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            kind: kind.into(),
            name: name.into(),
            causes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stateful_set_must_restart_always() {
        let sts = json!({"spec": {"template": {"spec": {"restartPolicy": "Never"}}}});
        assert!(matches!(
            validate("StatefulSet", "s", &sts, None),
            Err(StoreError::Invalid { .. })
        ));
    }

    #[test]
    fn only_some_stateful_set_fields_may_change() {
        let old = json!({"spec": {"replicas": 1, "serviceName": "a", "volumeClaimTemplates": []}});
        let scaled = json!({"spec": {"replicas": 3, "serviceName": "a", "volumeClaimTemplates": []}});
        assert!(validate("StatefulSet", "s", &scaled, Some(&old)).is_ok());
        let new_claims =
            json!({"spec": {"replicas": 1, "serviceName": "a", "volumeClaimTemplates": [{"metadata": {"name": "d"}}]}});
        assert!(validate("StatefulSet", "s", &new_claims, Some(&old)).is_err());
    }
}
