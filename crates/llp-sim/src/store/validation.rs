//! The API server's validation rules that clients of this simulator run into: StatefulSet
//! pods must restart `Always`, and four fields of a StatefulSet's spec are immutable (as in
//! Kubernetes 1.37's `ValidateStatefulSetUpdate`, one cause per field); a claim's spec is
//! immutable but for a bound claim's storage request, which may grow (its class is taken to
//! allow expansion, as the simulator's default class does) and never fall below its capacity.
//! Every object's label keys and values, ConfigMap and Secret keys, containers' requests and
//! limits (a request at most its limit; an extended resource such as a GPU with a limit, its
//! request equal to it), Service port numbers, Ingress hosts, an immutable ConfigMap's or
//! Secret's data and a Secret's type are checked as kube-apiserver checks them, naming the
//! same fields (`crates/llp-testbed/tests/probe.rs` compares the two).

use super::StoreError;
use serde_json::Value;

/// StatefulSet spec fields that may not change after creation.
const IMMUTABLE_STATEFULSET_FIELDS: [&str; 4] =
    ["selector", "volumeClaimTemplates", "serviceName", "podManagementPolicy"];

/// Checks an object before it is stored; `old` is the stored version on update.
pub fn validate(kind: &str, name: &str, new: &Value, old: Option<&Value>) -> Result<(), StoreError> {
    if kind == "Secret" {
        check_base64(new)?;
    }
    let mut causes = Vec::new();
    if let Some(old) = old {
        check_new_finalizers(new, old, &mut causes);
        if kind == "Pod" {
            check_pod_update(new, old, &mut causes);
        }
        if kind == "Service" {
            check_cluster_ip_update(new, old, &mut causes);
        }
    }
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
    check_labels(new, &mut causes);
    match kind {
        "Service" => check_service_ports(new, &mut causes),
        "Ingress" => check_ingress(new, &mut causes),
        _ => {}
    }
    if let Some(old) = old
        && (kind == "ConfigMap" || kind == "Secret")
    {
        check_data_update(kind, new, old, &mut causes);
    }
    if kind == "ConfigMap" || kind == "Secret" {
        check_data_keys(new, &mut causes);
    }
    let pod_spec = match kind {
        "Pod" => Some(("spec", &new["spec"])),
        "StatefulSet" | "Job" => Some(("spec.template.spec", &new["spec"]["template"]["spec"])),
        _ => None,
    };
    if let Some((path, spec)) = pod_spec {
        check_resources(path, spec, &mut causes);
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

/// Label keys and values as `IsQualifiedName` and `IsValidLabelValue` allow them.
fn check_labels(new: &Value, causes: &mut Vec<(String, String)>) {
    use super::selector::{is_label_key, is_label_value};
    let Some(labels) = new["metadata"]["labels"].as_object() else {
        return;
    };
    for (key, value) in labels {
        if !is_label_key(key) {
            causes.push((
                "metadata.labels".into(),
                format!("Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            ));
        }
        let value = value.as_str().unwrap_or_default();
        if !is_label_value(value) {
            causes.push((
                "metadata.labels".into(),
                format!("Invalid value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            ));
        }
    }
}

/// A Service's ports and target ports are port numbers.
fn check_service_ports(new: &Value, causes: &mut Vec<(String, String)>) {
    for (index, port) in new["spec"]["ports"].as_array().into_iter().flatten().enumerate() {
        for field in ["port", "targetPort"] {
            if let Some(number) = port[field].as_i64()
                && !(1..=65535).contains(&number)
            {
                causes.push((
                    format!("spec.ports[{index}].{field}"),
                    format!("Invalid value: {number}: must be between 1 and 65535, inclusive"),
                ));
            }
        }
    }
}

/// An Ingress rule's host is a DNS subdomain, or one with a leading `*.` wildcard; each of
/// its paths names its `pathType`.
fn check_ingress(new: &Value, causes: &mut Vec<(String, String)>) {
    for (index, rule) in new["spec"]["rules"].as_array().into_iter().flatten().enumerate() {
        for (path, entry) in rule["http"]["paths"].as_array().into_iter().flatten().enumerate() {
            if entry.get("pathType").is_none_or(Value::is_null) {
                causes.push((
                    format!("spec.rules[{index}].http.paths[{path}].pathType"),
                    "Required value: pathType must be specified".into(),
                ));
            }
        }
        let Some(host) = rule["host"].as_str() else { continue };
        let name = host.strip_prefix("*.").unwrap_or(host);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !valid {
            causes.push((
                format!("spec.rules[{index}].host"),
                format!("Invalid value: \"{host}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
            ));
        }
    }
}

/// An immutable ConfigMap's or Secret's data never changes, nor does it become mutable; a
/// Secret's type never changes.
fn check_data_update(kind: &str, new: &Value, old: &Value, causes: &mut Vec<(String, String)>) {
    if old["immutable"] == true {
        if new["immutable"] != true {
            causes.push((
                "immutable".into(),
                "Forbidden: field is immutable when `immutable` is set".into(),
            ));
        }
        if new["data"] != old["data"] || new["binaryData"] != old["binaryData"] {
            causes.push((
                "data".into(),
                "Forbidden: field is immutable when `immutable` is set".into(),
            ));
        }
    }
    if kind == "Secret" && new["type"] != old["type"] {
        causes.push((
            "type".into(),
            format!("Invalid value: {}: field is immutable", new["type"]),
        ));
    }
}

/// A Secret's `data` values are base64: anything else cannot even be decoded into a Secret,
/// which kube-apiserver answers with 400.
fn check_base64(new: &Value) -> Result<(), StoreError> {
    use base64::Engine;
    for (key, value) in new["data"].as_object().into_iter().flatten() {
        let text = value.as_str().unwrap_or_default();
        if let Err(error) = base64::engine::general_purpose::STANDARD.decode(text) {
            return Err(StoreError::BadRequest(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: data[{key}]: {error}"
            )));
        }
    }
    Ok(())
}

/// An object being deleted may lose finalizers but gain none.
fn check_new_finalizers(new: &Value, old: &Value, causes: &mut Vec<(String, String)>) {
    if !old["metadata"]["deletionTimestamp"].is_string() {
        return;
    }
    let had: Vec<&Value> = old["metadata"]["finalizers"].as_array().into_iter().flatten().collect();
    let added: Vec<String> = new["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| !had.contains(f))
        .map(Value::to_string)
        .collect();
    if !added.is_empty() {
        causes.push((
            "metadata.finalizers".into(),
            format!(
                "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                added.join(", ")
            ),
        ));
    }
}

/// A pod's spec is fixed once made, but for its containers' images, its deadline, its
/// tolerations, scheduling gates, and the node it is bound to (once).
fn check_pod_update(new: &Value, old: &Value, causes: &mut Vec<(String, String)>) {
    let mut allowed = old["spec"].clone();
    for list in ["containers", "initContainers"] {
        let images = new["spec"][list].as_array();
        let containers = allowed.get_mut(list).and_then(Value::as_array_mut);
        if let (Some(containers), Some(images)) = (containers, images)
            && containers.len() == images.len()
        {
            for (container, changed) in containers.iter_mut().zip(images) {
                container["image"] = changed["image"].clone();
            }
        }
    }
    let mut fields = vec!["activeDeadlineSeconds", "tolerations", "schedulingGates"];
    if old["spec"]["nodeName"].is_null() {
        fields.push("nodeName");
    }
    for field in fields {
        match new["spec"].get(field) {
            Some(value) => allowed[field] = value.clone(),
            None => {
                if let Some(spec) = allowed.as_object_mut() {
                    spec.remove(field);
                }
            }
        }
    }
    if allowed != new["spec"] {
        causes.push((
            "spec".into(),
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".into(),
        ));
    }
}

/// A Service's cluster IP, once given, stays.
fn check_cluster_ip_update(new: &Value, old: &Value, causes: &mut Vec<(String, String)>) {
    let before = old["spec"]["clusterIP"].as_str().unwrap_or_default();
    let now = new["spec"]["clusterIP"].as_str().unwrap_or_default();
    if !before.is_empty() && before != "None" && now != before {
        causes.push((
            "spec.clusterIPs[0]".into(),
            format!("Invalid value: []string{{\"{now}\"}}: may not change once set"),
        ));
    }
}

/// A ConfigMap's or Secret's keys as `IsConfigMapKey` allows them.
fn check_data_keys(new: &Value, causes: &mut Vec<(String, String)>) {
    for field in ["data", "binaryData", "stringData"] {
        for key in new[field].as_object().into_iter().flat_map(|m| m.keys()) {
            let valid = !key.is_empty()
                && key.len() <= 253
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && key != "."
                && key != ".."
                && !key.starts_with("..");
            if !valid {
                causes.push((
                    format!("{field}[{key}]"),
                    format!("Invalid value: \"{key}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"),
                ));
            }
        }
    }
}

/// Each container's requests are at most its limits; an extended resource (a GPU) cannot be
/// overcommitted: its request, when given, equals its limit, which must be set.
fn check_resources(path: &str, spec: &Value, causes: &mut Vec<(String, String)>) {
    let standard =
        |name: &str| ["cpu", "memory", "ephemeral-storage"].contains(&name) || name.starts_with("hugepages-");
    for list in ["initContainers", "containers"] {
        for (index, container) in spec[list].as_array().into_iter().flatten().enumerate() {
            let resources = &container["resources"];
            let requests = resources["requests"].as_object();
            let limits = resources["limits"].as_object();
            for (name, request) in requests.into_iter().flatten() {
                let field = format!("{path}.{list}[{index}].resources.requests");
                let amount = request.as_str().and_then(crate::controller::quantity::parse);
                let limit = limits.and_then(|l| l.get(name));
                let limit_amount = limit
                    .and_then(Value::as_str)
                    .and_then(crate::controller::quantity::parse);
                let shown = request.as_str().unwrap_or_default();
                if standard(name) {
                    if let (Some(amount), Some(limit_amount)) = (amount, limit_amount)
                        && amount > limit_amount
                    {
                        causes.push((
                            field,
                            format!(
                                "Invalid value: \"{shown}\": must be less than or equal to {name} limit of {}",
                                limit.and_then(Value::as_str).unwrap_or_default()
                            ),
                        ));
                    }
                } else if limit.is_none() {
                    causes.push((
                        format!("{path}.{list}[{index}].resources.limits"),
                        "Required value: Limit must be set for non overcommitable resources".into(),
                    ));
                } else if amount != limit_amount {
                    causes.push((
                        field,
                        format!(
                            "Invalid value: \"{shown}\": must be equal to {name} limit of {}",
                            limit.and_then(Value::as_str).unwrap_or_default()
                        ),
                    ));
                }
            }
        }
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
    fn labels_data_keys_and_resources_are_checked_as_kubernetes_checks_them() {
        let refused = |kind: &str, object: Value| match validate(kind, "x", &object, None) {
            Err(StoreError::Invalid { causes, .. }) => causes.into_iter().map(|(field, _)| field).collect::<Vec<_>>(),
            other => panic!("{object}: {other:?}"),
        };
        assert_eq!(
            refused("ConfigMap", json!({"metadata": {"labels": {"env": "pro d"}}})),
            ["metadata.labels"]
        );
        assert_eq!(
            refused("ConfigMap", json!({"metadata": {}, "data": {"..x": "1"}})),
            ["data[..x]"]
        );
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "c", "resources": resources}]}});
        assert_eq!(
            refused(
                "Pod",
                pod(json!({"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}}))
            ),
            ["spec.containers[0].resources.requests"]
        );
        assert_eq!(
            refused("Pod", pod(json!({"requests": {"nvidia.com/gpu": "1"}}))),
            ["spec.containers[0].resources.limits"]
        );
        let fine = pod(
            json!({"requests": {"cpu": "500m", "nvidia.com/gpu": "1"}, "limits": {"cpu": "1", "nvidia.com/gpu": "1"}}),
        );
        assert!(validate("Pod", "x", &fine, None).is_ok());
        let labelled = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "llp-k8s", "empty": ""}}});
        assert!(validate("ConfigMap", "x", &labelled, None).is_ok());
    }

    #[test]
    fn ports_hosts_and_immutable_data_are_checked_as_kubernetes_checks_them() {
        let fields = |kind: &str, new: Value, old: Option<Value>| match validate(kind, "x", &new, old.as_ref()) {
            Err(StoreError::Invalid { causes, .. }) => causes.into_iter().map(|(field, _)| field).collect::<Vec<_>>(),
            Ok(()) => Vec::new(),
            other => panic!("{other:?}"),
        };
        let service = json!({"spec": {"ports": [{"port": 70000, "targetPort": 70000}]}});
        assert_eq!(
            fields("Service", service, None),
            ["spec.ports[0].port", "spec.ports[0].targetPort"]
        );
        let ingress = |host: &str| json!({"spec": {"rules": [{"host": host}]}});
        assert_eq!(
            fields("Ingress", ingress("my_app.example.org"), None),
            ["spec.rules[0].host"]
        );
        assert!(fields("Ingress", ingress("*.apps.example.org"), None).is_empty());
        let frozen = json!({"immutable": true, "data": {"a": "1"}});
        assert_eq!(
            fields(
                "ConfigMap",
                json!({"immutable": true, "data": {"a": "2"}}),
                Some(frozen.clone())
            ),
            ["data"]
        );
        assert!(fields("ConfigMap", frozen.clone(), Some(frozen)).is_empty());
        assert_eq!(
            fields("Secret", json!({"type": "b"}), Some(json!({"type": "a"}))),
            ["type"]
        );
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
