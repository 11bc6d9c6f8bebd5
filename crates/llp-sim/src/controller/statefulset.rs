//! The StatefulSet controller: pods `<name>-<ordinal>` created in order (each once the one
//! before is Ready), removed from the highest ordinal down on scale-down, replaced one at a
//! time, highest first, when the pod template changes; a claim per volume claim template
//! and pod; and the status `kubectl rollout status` reads.

use super::events::{Recorder, Severity};
use crate::resources::ids;
use crate::store::selector::labels_of;
use crate::store::{ObjectKey, Store};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// Label with the template revision a pod was created from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Brings one StatefulSet's pods and claims one step closer to its spec, and updates its
/// status. `pods` are the pods it owns, as the pass found them.
pub fn reconcile(store: &mut Store, sts: &Value, pods: &[Arc<Value>], recorder: &mut Recorder) {
    let meta = &sts["metadata"];
    let (Some(namespace), Some(name)) = (meta["namespace"].as_str(), meta["name"].as_str()) else {
        return;
    };
    let replicas = sts["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
    let revision = format!("{name}-{}", template_hash(&sts["spec"]["template"]));
    let by_ordinal: BTreeMap<usize, Arc<Value>> = pods
        .iter()
        .filter_map(|p| Some((ordinal(p["metadata"]["name"].as_str()?, name)?, p.clone())))
        .collect();

    // A StatefulSet being deleted makes nothing new; while one of its pods terminates it
    // waits (OrderedReady), as the real controller does.
    if meta["deletionTimestamp"].is_string() || pods.iter().any(|p| p["metadata"]["deletionTimestamp"].is_string()) {
        update_status(store, sts, pods, namespace, name, &revision);
        return;
    }
    for ordinal in 0..replicas {
        ensure_claims(store, sts, namespace, name, ordinal);
    }
    if let Some((_, pod)) = by_ordinal.iter().next_back().filter(|(o, _)| **o >= replicas) {
        delete_pod(store, sts, pod, recorder);
    } else if let Some(missing) = (0..replicas).find(|o| !by_ordinal.contains_key(o)) {
        if by_ordinal.range(..missing).all(|(_, p)| is_ready(p)) {
            create_pod(store, sts, namespace, name, missing, &revision, recorder);
        }
    } else if by_ordinal.values().all(|p| is_ready(p)) {
        let outdated = by_ordinal
            .values()
            .rev()
            .find(|p| labels_of(p).get(REVISION_LABEL) != Some(&revision));
        if let Some(pod) = outdated {
            delete_pod(store, sts, &pod.clone(), recorder);
        }
    }
    // The status reflects the pods as this pass found them; the next pass sees its changes.
    update_status(store, sts, pods, namespace, name, &revision);
}

fn ordinal(pod_name: &str, sts_name: &str) -> Option<usize> {
    pod_name.strip_prefix(sts_name)?.strip_prefix('-')?.parse().ok()
}

/// Whether a pod's Ready condition is True.
pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn template_hash(template: &Value) -> String {
    let mut hasher = DefaultHasher::new();
    template.to_string().hash(&mut hasher);
    format!("{:010x}", hasher.finish() & 0xff_ffff_ffff)
}

fn owner_reference(sts: &Value) -> Value {
    super::controller_reference(sts, "apps/v1", "StatefulSet")
}

#[allow(clippy::too_many_arguments)]
fn create_pod(
    store: &mut Store,
    sts: &Value,
    namespace: &str,
    name: &str,
    ordinal: usize,
    revision: &str,
    recorder: &mut Recorder,
) {
    let pod_name = format!("{name}-{ordinal}");
    let template = &sts["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
    labels[REVISION_LABEL] = json!(revision);
    labels["apps.kubernetes.io/pod-index"] = json!(ordinal.to_string());
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(pod_name);
    if let Some(service) = sts["spec"]["serviceName"].as_str() {
        spec["subdomain"] = json!(service);
    }
    for claim in sts["spec"]["volumeClaimTemplates"].as_array().into_iter().flatten() {
        let claim_name = claim["metadata"]["name"].as_str().unwrap_or_default();
        let volume =
            json!({"name": claim_name, "persistentVolumeClaim": {"claimName": format!("{claim_name}-{pod_name}")}});
        match spec["volumes"].as_array_mut() {
            Some(volumes) => volumes.push(volume),
            None => spec["volumes"] = json!([volume]),
        }
    }
    let mut metadata = json!({"name": pod_name, "labels": labels, "ownerReferences": [owner_reference(sts)]});
    if let Some(annotations) = template["metadata"]["annotations"].as_object() {
        metadata["annotations"] = json!(annotations);
    }
    let pod = json!({"metadata": metadata, "spec": spec, "status": {"phase": "Pending"}});
    match store.create(ids::pods(), namespace, pod) {
        Ok(_) => recorder.record(
            store,
            sts,
            Severity::Normal,
            "SuccessfulCreate",
            &format!("create Pod {pod_name} in StatefulSet {name} successful"),
            "statefulset-controller",
        ),
        Err(error) => recorder.record(
            store,
            sts,
            Severity::Warning,
            "FailedCreate",
            &format!("create Pod {pod_name} in StatefulSet {name} failed error: {error}"),
            "statefulset-controller",
        ),
    }
}

fn delete_pod(store: &mut Store, sts: &Value, pod: &Value, recorder: &mut Recorder) {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    if super::delete_owned_pod(store, pod) {
        let message = format!(
            "delete Pod {pod_name} in StatefulSet {} successful",
            sts["metadata"]["name"].as_str().unwrap_or_default()
        );
        recorder.record(
            store,
            sts,
            Severity::Normal,
            "SuccessfulDelete",
            &message,
            "statefulset-controller",
        );
    }
}

/// The pods no controller owns (not being deleted). The real controller's ref manager adopts
/// those a StatefulSet's selector matches (in its namespace): what a StatefulSet deleted with
/// `propagationPolicy: Orphan` left behind belongs to the next one of that selector, so
/// recreating a StatefulSet that way keeps its pods running.
pub fn orphans(pods: &[Arc<Value>]) -> Vec<Arc<Value>> {
    pods.iter()
        .filter(|p| {
            !p["metadata"]["deletionTimestamp"].is_string()
                && !p["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["controller"] == true))
        })
        .cloned()
        .collect()
}

/// Adopts `orphans` (see [`orphans`]) whose labels a StatefulSet of `sets` selects; whether
/// any was.
pub fn adopt_orphans(store: &mut Store, sets: &[Arc<Value>], orphans: &[Arc<Value>]) -> bool {
    let mut adopted = false;
    for pod in orphans {
        let labels = labels_of(pod);
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let owner = sets.iter().find(|sts| {
            let selector = sts["spec"]["selector"]["matchLabels"].as_object();
            sts["metadata"]["namespace"] == namespace
                && !sts["metadata"]["deletionTimestamp"].is_string()
                && selector.is_some_and(|m| {
                    !m.is_empty() && m.iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
                })
        });
        if let Some(sts) = owner {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let key = ObjectKey::new(ids::pods(), namespace, name);
            let patch = json!({"metadata": {"ownerReferences": [owner_reference(sts)]}});
            adopted |= store
                .patch(&key, crate::store::patch::PatchKind::Merge, &patch, false)
                .is_ok();
        }
    }
    adopted
}

fn ensure_claims(store: &mut Store, sts: &Value, namespace: &str, name: &str, ordinal: usize) {
    let delete_with_set = sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete";
    for template in sts["spec"]["volumeClaimTemplates"].as_array().into_iter().flatten() {
        let claim_name = format!(
            "{}-{name}-{ordinal}",
            template["metadata"]["name"].as_str().unwrap_or_default()
        );
        if store
            .get(&ObjectKey::new(ids::claims(), namespace, &claim_name))
            .is_some()
        {
            continue;
        }
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        for (k, v) in sts["spec"]["selector"]["matchLabels"].as_object().into_iter().flatten() {
            labels[k] = v.clone();
        }
        let mut metadata = json!({"name": claim_name, "labels": labels});
        if delete_with_set {
            metadata["ownerReferences"] = json!([owner_reference(sts)]);
        }
        let _ = store.create(
            ids::claims(),
            namespace,
            json!({"metadata": metadata, "spec": template["spec"], "status": {"phase": "Pending"}}),
        );
    }
}

fn update_status(store: &mut Store, sts: &Value, pods: &[Arc<Value>], namespace: &str, name: &str, revision: &str) {
    let ready = pods.iter().filter(|p| is_ready(p)).count();
    let updated = pods
        .iter()
        .filter(|p| labels_of(p).get(REVISION_LABEL).map(String::as_str) == Some(revision))
        .count();
    let replicas = sts["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
    let done = updated == replicas && pods.len() == replicas && ready == replicas;
    let current_revision = match sts["status"]["currentRevision"].as_str() {
        Some(current) if !done => current.to_owned(),
        _ => revision.to_owned(),
    };
    let current = if current_revision == revision {
        updated
    } else {
        pods.len() - updated
    };
    let status = json!({
        "observedGeneration": sts["metadata"]["generation"],
        "replicas": pods.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": revision,
        "collisionCount": 0,
    });
    let _ = store.replace_status(&ObjectKey::new(ids::stateful_sets(), namespace, name), status);
}
