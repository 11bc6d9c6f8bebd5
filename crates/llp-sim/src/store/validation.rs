//! The API server's validation rules that clients of this simulator run into: StatefulSet
//! pods must restart `Always`, and four fields of a StatefulSet's spec are immutable (as in
//! Kubernetes 1.37's `ValidateStatefulSetUpdate`, one cause per field); a claim's spec is
//! immutable but for a bound claim's storage request, which may grow (its class is taken to
//! allow expansion, as the simulator's default class does) and never fall below its capacity.

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
    if kind == "Job" {
        check_job(new, old, &mut causes);
    }
    if kind == "PersistentVolumeClaim"
        && let Some(old) = old
    {
        check_claim_update(new, old, &mut causes);
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

/// A Job's pods run to completion; its template, selector and completions are immutable.
fn check_job(new: &Value, old: Option<&Value>, causes: &mut Vec<(String, String)>) {
    let policy = new["spec"]["template"]["spec"]["restartPolicy"]
        .as_str()
        .unwrap_or("Always");
    if policy != "OnFailure" && policy != "Never" {
        causes.push((
            "spec.template.spec.restartPolicy".into(),
            format!("Unsupported value: \"{policy}\": supported values: \"OnFailure\", \"Never\""),
        ));
    }
    if let Some(old) = old {
        for field in ["template", "selector", "completions"] {
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

/// `ValidatePersistentVolumeClaimUpdate`, for what the simulator's clients change.
fn check_claim_update(new: &Value, old: &Value, causes: &mut Vec<(String, String)>) {
    let storage = |claim: &Value| claim["spec"]["resources"]["requests"]["storage"].clone();
    let comparable = |claim: &Value| {
        let mut spec = claim["spec"].clone();
        spec["resources"]["requests"]["storage"] = Value::Null;
        // The binder fills in the volume once.
        if old["spec"]["volumeName"].as_str().is_none_or(str::is_empty) {
            spec["volumeName"] = Value::Null;
        }
        spec
    };
    let bound = old["status"]["phase"] == "Bound";
    let resized = storage(new) != storage(old);
    if comparable(new) != comparable(old) || (resized && !bound) {
        causes.push((
            "spec".into(),
            "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".into(),
        ));
        return;
    }
    let bytes = |q: &Value| q.as_str().and_then(crate::controller::quantity::parse);
    let capacity = &old["status"]["capacity"]["storage"];
    if resized && matches!((bytes(&storage(new)), bytes(capacity)), (Some(n), Some(c)) if n < c) {
        causes.push((
            "spec.resources.requests.storage".into(),
            "Forbidden: field can not be less than status.capacity".into(),
        ));
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
    fn a_bound_claim_may_grow_and_nothing_else() {
        let claim = |storage: &str, class: &str, phase: &str| {
            json!({"spec": {"storageClassName": class, "volumeName": "pv-1", "resources": {"requests": {"storage": storage}}},
                "status": {"phase": phase, "capacity": {"storage": "2Gi"}}})
        };
        let old = claim("2Gi", "standard", "Bound");
        let check = |new: &Value, old: &Value| validate("PersistentVolumeClaim", "c", new, Some(old));
        assert!(check(&claim("5Gi", "standard", "Bound"), &old).is_ok(), "grows");
        assert!(
            check(&claim("1Gi", "standard", "Bound"), &old).is_err(),
            "shrinks below its capacity"
        );
        assert!(check(&claim("2Gi", "fast", "Bound"), &old).is_err(), "another class");
        let pending = claim("2Gi", "standard", "Pending");
        assert!(
            check(&claim("5Gi", "standard", "Pending"), &pending).is_err(),
            "not bound yet"
        );
        let unbound = json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}, "status": {"phase": "Pending"}});
        let binding = json!({"spec": {"volumeName": "pv-1", "resources": {"requests": {"storage": "2Gi"}}}, "status": {"phase": "Pending"}});
        assert!(check(&binding, &unbound).is_ok(), "the binder names the volume");
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
