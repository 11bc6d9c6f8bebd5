//! The defaults the API server fills in on write, for the fields clients read back
//! (`kubectl rollout status` needs `updateStrategy`, `kubectl get svc` the type, …).

use serde_json::{Value, json};

/// Fills in defaults of an object of `kind`.
pub fn apply(kind: &str, object: &mut Value) {
    match kind {
        "StatefulSet" => stateful_set(object),
        "Job" => job(object),
        "Pod" => pod_spec(&mut object["spec"]),
        "Service" => service(object),
        "PersistentVolumeClaim" => claim(object),
        "Namespace" => {
            if !object["status"].is_object() {
                object["status"] = json!({});
            }
            set_default(&mut object["status"], "phase", json!("Active"));
        }
        "Secret" => secret(object),
        _ => {}
    }
}

/// The finalizer that keeps a claim while a pod uses it (StorageObjectInUseProtection).
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

/// What admission adds to a new object only: claims get the pvc-protection finalizer, and a
/// new pod or claim starts `Pending` (a pod with its QoS class), as the API server stores them.
pub fn admit_new(kind: &str, object: &mut Value) {
    match kind {
        "Pod" if object["status"]["phase"].is_null() => {
            object["status"] = json!({"phase": "Pending", "qosClass": qos_class(&object["spec"])});
        }
        "PersistentVolumeClaim" if object["status"]["phase"].is_null() => {
            object["status"] = json!({"phase": "Pending"});
        }
        _ => {}
    }
    if kind == "PersistentVolumeClaim" {
        let finalizers = &mut object["metadata"]["finalizers"];
        match finalizers.as_array_mut() {
            Some(list) if !list.iter().any(|f| f == PVC_PROTECTION) => list.push(json!(PVC_PROTECTION)),
            Some(_) => {}
            None => *finalizers = json!([PVC_PROTECTION]),
        }
    }
}

/// A pod's QoS class as Kubernetes computes it: `BestEffort` without any request or limit,
/// `Guaranteed` when every container limits CPU and memory and requests no less (requests
/// default to limits), `Burstable` otherwise.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|list| spec[*list].as_array().into_iter().flatten())
        .collect();
    let amounts = |c: &Value, which: &str| -> Vec<(String, String)> {
        c["resources"][which]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| *name == "cpu" || *name == "memory")
            .map(|(name, q)| (name.clone(), q.as_str().unwrap_or_default().to_owned()))
            .collect()
    };
    if containers
        .iter()
        .all(|c| amounts(c, "requests").is_empty() && amounts(c, "limits").is_empty())
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let limits = amounts(c, "limits");
        let requests = amounts(c, "requests");
        ["cpu", "memory"].iter().all(|name| {
            let limit = limits.iter().find(|(n, _)| n == name).map(|(_, q)| q);
            let request = requests.iter().find(|(n, _)| n == name).map(|(_, q)| q);
            let parse = |q: &String| crate::controller::quantity::parse(q);
            limit.is_some_and(|l| request.is_none_or(|r| parse(r) == parse(l)))
        })
    });
    if guaranteed { "Guaranteed" } else { "Burstable" }
}

/// The simulated cluster's default StorageClass, which claims without one get (the API
/// server's DefaultStorageClass admission).
pub const DEFAULT_STORAGE_CLASS: &str = "standard";

fn claim(claim: &mut Value) {
    set_default(&mut claim["spec"], "volumeMode", json!("Filesystem"));
    set_default(&mut claim["spec"], "storageClassName", json!(DEFAULT_STORAGE_CLASS));
}

/// `stringData` is write-only: the API server folds it into `data` (base64), over `data`;
/// the type is `Opaque` unless given.
fn secret(secret: &mut Value) {
    use base64::Engine;
    set_default(secret, "type", json!("Opaque"));
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|s| s.remove("stringData")) else {
        return;
    };
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        secret["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// The items of a list field, if set (indexing would add a `null` field where there is none).
fn items_mut<'a>(object: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    object.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten()
}

fn set_default(object: &mut Value, key: &str, value: Value) {
    if object.is_object() && object.get(key).is_none_or(Value::is_null) {
        object[key] = value;
    }
}

fn stateful_set(sts: &mut Value) {
    let spec = &mut sts["spec"];
    if !spec.is_object() {
        return;
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(
        spec,
        "updateStrategy",
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
    );
    set_default(
        spec,
        "persistentVolumeClaimRetentionPolicy",
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
    );
    pod_spec(&mut spec["template"]["spec"]);
    for claim in items_mut(spec, "volumeClaimTemplates") {
        claim["apiVersion"] = json!("v1");
        claim["kind"] = json!("PersistentVolumeClaim");
        set_default(&mut claim["spec"], "volumeMode", json!("Filesystem"));
    }
}

/// Labels the API server puts on a Job's pod template, selecting its pods by the Job's uid.
pub const JOB_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label naming a pod's Job.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

fn job(job: &mut Value) {
    let uid = job["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
    let name = job["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let spec = &mut job["spec"];
    if !spec.is_object() {
        return;
    }
    if spec.get("completions").is_none_or(Value::is_null) && spec.get("parallelism").is_none_or(Value::is_null) {
        spec["completions"] = json!(1);
    }
    set_default(spec, "parallelism", json!(1));
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    // The generated selector, on create (the uid is set by then).
    if spec.get("selector").is_none_or(Value::is_null) && !uid.is_empty() {
        spec["selector"] = json!({"matchLabels": {JOB_UID_LABEL: uid}});
        let template = &mut spec["template"];
        if !template["metadata"]["labels"].is_object() {
            template["metadata"]["labels"] = json!({});
        }
        let labels = &mut template["metadata"]["labels"];
        for (key, value) in [
            (JOB_UID_LABEL, &uid),
            (JOB_NAME_LABEL, &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            labels[key] = json!(value);
        }
    }
    pod_spec(&mut spec["template"]["spec"]);
}

fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    for key in ["containers", "initContainers"] {
        for container in items_mut(spec, key) {
            let image = container["image"].as_str().unwrap_or_default();
            let latest = image.ends_with(":latest") || !image.rsplit('/').next().unwrap_or_default().contains(':');
            set_default(
                container,
                "imagePullPolicy",
                json!(if latest { "Always" } else { "IfNotPresent" }),
            );
            set_default(container, "resources", json!({}));
            set_default(container, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(container, "terminationMessagePolicy", json!("File"));
            for port in items_mut(container, "ports") {
                set_default(port, "protocol", json!("TCP"));
            }
        }
    }
}

fn service(svc: &mut Value) {
    // A new Service's status: no load balancer yet.
    if !svc["status"].is_object() {
        svc["status"] = json!({"loadBalancer": {}});
    }
    let spec = &mut svc["spec"];
    if !spec.is_object() {
        return;
    }
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    if spec["clusterIP"] != "None" || spec["type"] != "ClusterIP" {
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    for port in items_mut(spec, "ports") {
        set_default(port, "protocol", json!("TCP"));
        let number = port["port"].clone();
        set_default(port, "targetPort", number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_qos_class_is_computed_as_kubernetes_does() {
        let spec = |resources: Value| json!({"containers": [{"name": "a", "resources": resources}]});
        assert_eq!(qos_class(&spec(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&spec(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(
                json!({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(
                json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Burstable"
        );
        assert_eq!(qos_class(&spec(json!({"requests": {"memory": "1Gi"}}))), "Burstable");
    }

    #[test]
    fn a_stateful_set_gets_a_rolling_update_strategy() {
        let mut sts = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx"}]}}}});
        apply("StatefulSet", &mut sts);
        assert_eq!(sts["spec"]["updateStrategy"]["type"], "RollingUpdate");
        assert_eq!(sts["spec"]["replicas"], 1);
        assert_eq!(
            sts["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    }

    #[test]
    fn a_service_port_targets_itself_by_default() {
        let mut svc = json!({"spec": {"ports": [{"port": 80}]}});
        apply("Service", &mut svc);
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(svc["spec"]["type"], "ClusterIP");
    }
}
