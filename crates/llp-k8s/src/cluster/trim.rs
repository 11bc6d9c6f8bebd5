//! What the watch caches keep of each Job and claim: only what the status, the capacity,
//! ownership and GPU admission read (pods and StatefulSets, many more, are read into the
//! compact `llp_spec::status::CachedPod` and `CachedStatefulSet` instead). `managedFields` alone are often half of an object, and a
//! template's environment, mounts and security settings are never read back; dropping them
//! before the store keeps the caches' memory proportional to what they are for.

use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, PodSpec};
use kube::api::ObjectMeta;

fn meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        // Only the service's own notes are read back (the reservation reconciler's).
        annotations.retain(|k, _| k.starts_with("llp.kitegg.de/"));
    }
}

/// A container as the caches keep it: its name, image and resources.
fn container(c: &mut Container) {
    *c = Container {
        name: std::mem::take(&mut c.name),
        image: c.image.take(),
        resources: c.resources.take(),
        ..Container::default()
    };
}

/// A pod spec as the caches keep it: containers (name, image, resources) and the node.
fn pod_spec(spec: &mut PodSpec) {
    spec.containers.iter_mut().for_each(container);
    spec.init_containers.iter_mut().flatten().for_each(container);
    *spec = PodSpec {
        containers: std::mem::take(&mut spec.containers),
        init_containers: spec.init_containers.take(),
        node_name: spec.node_name.take(),
        ..PodSpec::default()
    };
}

/// Trims a Job: its pod template keeps what a pod keeps, and the claims it mounts by name
/// (what its [`llp_spec::footprint::PodFootprint`] is read from).
pub fn job(job: &mut k8s_openapi::api::batch::v1::Job) {
    meta(&mut job.metadata);
    if let Some(spec) = job.spec.as_mut() {
        spec.template.metadata = None;
        if let Some(pod) = spec.template.spec.as_mut() {
            pod_template_spec(pod);
        }
    }
}

/// A pod template's spec as the caches keep it: what a pod keeps, and the claims it mounts by
/// name (for the status).
fn pod_template_spec(pod: &mut PodSpec) {
    let mut claims = pod.volumes.take().unwrap_or_default();
    claims.retain(|v| v.persistent_volume_claim.is_some());
    pod_spec(pod);
    pod.volumes = (!claims.is_empty()).then_some(claims);
}

/// Keeps only an object's name and labels: what is read of Services, Ingresses and hostname
/// claims (which of them a deployment has, to prune what it no longer has).
pub fn to_labels<K>(object: &mut K)
where
    K: kube::Resource + Default,
{
    let meta = object.meta_mut();
    let kept = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        labels: meta.labels.take(),
        resource_version: meta.resource_version.take(),
        uid: meta.uid.take(),
        ..ObjectMeta::default()
    };
    *object = K::default();
    *object.meta_mut() = kept;
}

/// Keeps of an event what a status stream tells of it: which pod, what, when, how often.
pub fn event(event: &mut k8s_openapi::api::core::v1::Event) {
    let meta = &mut event.metadata;
    event.metadata = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        creation_timestamp: meta.creation_timestamp.take(),
        ..ObjectMeta::default()
    };
    let involved = &mut event.involved_object;
    event.involved_object = k8s_openapi::api::core::v1::ObjectReference {
        kind: involved.kind.take(),
        name: involved.name.take(),
        uid: involved.uid.take(),
        ..Default::default()
    };
    event.source = None;
    event.related = None;
    event.reporting_component = None;
    event.reporting_instance = None;
    event.action = None;
}

/// Trims a claim.
pub fn claim(claim: &mut PersistentVolumeClaim) {
    meta(&mut claim.metadata);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::Job;
    use llp_spec::footprint::PodFootprint;
    use serde_json::json;

    fn job() -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "sd-1", "labels": {"app": "sd-1"}, "generation": 3,
                "annotations": {"llp.kitegg.de/reservation-ends": "2026-11-27T18:00:00Z", "kubectl.kubernetes.io/last-applied-configuration": "{…}"},
                "managedFields": [{"manager": "llp-k8s", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"parallelism": 2, "template": {"metadata": {"labels": {"app": "sd-1"}}, "spec": {
                    "containers": [{"name": "train", "image": "trainer", "env": [{"name": "A", "value": "1"}],
                        "resources": {"requests": {"cpu": "2"}, "limits": {"nvidia.com/gpu": "1", "memory": "1Gi"}}}],
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                    "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "shared", "persistentVolumeClaim": {"claimName": "sd-x-shared"}}]}}},
            "status": {"active": 2},
        }))
        .unwrap()
    }

    #[test]
    fn a_trimmed_job_keeps_what_is_read_back() {
        let full = job();
        let mut trimmed = full.clone();
        super::job(&mut trimmed);
        assert!(trimmed.metadata.managed_fields.is_none());
        let annotations = trimmed.metadata.annotations.clone().unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["llp.kitegg.de/reservation-ends"]
        );
        let footprint = |j: &Job| PodFootprint::of(j.spec.as_ref().map(|s| &s.template));
        assert_eq!(footprint(&trimmed), footprint(&full));
        assert_eq!(footprint(&trimmed).claims, ["sd-x-shared"]);
        let pods: [llp_spec::status::CachedPod; 0] = [];
        let claims: [PersistentVolumeClaim; 0] = [];
        assert_eq!(
            llp_spec::status::from_job(&trimmed, &pods, &claims, None),
            llp_spec::status::from_job(&full, &pods, &claims, None)
        );
        let pod = trimmed.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert!(pod.tolerations.is_none() && pod.containers[0].env.is_none());
        assert_eq!(
            pod.volumes.as_deref().unwrap_or_default().len(),
            1,
            "only the claims it mounts by name"
        );
    }
}
