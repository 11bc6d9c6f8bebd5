//! A pod as the watch caches keep it: only what the status, the capacity and ownership read.
//!
//! k8s-openapi's `Pod` is about 12 KB in memory even with its spec emptied: `PodSpec` and
//! `Container` are large structs inline (1.4 and 2.1 KB), every label and resource map is a
//! B-tree node of its own, and the kubelet's conditions, IPs and ids come along. With tens of
//! thousands of pods cached that is most of the service's memory, so a pod is turned into
//! this as it arrives from the watch: its parts add up to about 3 KB (5.9 KB resident per pod
//! measured with glibc's malloc, against 13.4 KB for a full `Pod`).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition, PodStatus, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;

/// What is kept of a pod.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(from = "WirePod")]
pub struct CachedPod {
    /// Name, namespace, uid, resourceVersion, creation and deletion times, and the service's
    /// own labels (`app` and `llp.kitegg.de/…`).
    pub metadata: ObjectMeta,
    /// The node it is bound to.
    pub node_name: Option<String>,
    /// Its containers' names and resources.
    pub containers: Vec<CachedContainer>,
    /// Its init containers' names and resources.
    pub init_containers: Vec<CachedContainer>,
    /// Phase, why it waits to be scheduled, and its containers' states (no IPs, ids or
    /// times the status does not show).
    pub status: Option<PodStatus>,
}

/// A container's name and resources.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CachedContainer {
    /// Its name.
    pub name: String,
    /// Its memory limit (named when it is killed for exceeding it).
    pub memory_limit: Option<Quantity>,
    /// What it requests, by resource (a list: one or two entries, no map node each).
    pub requests: Vec<(String, Quantity)>,
}

impl CachedPod {
    /// The memory limit of container `name` (or init container).
    pub fn memory_limit(&self, name: &str) -> Option<&str> {
        let container = self
            .containers
            .iter()
            .chain(&self.init_containers)
            .find(|c| c.name == name)?;
        container.memory_limit.as_ref().map(|q| q.0.as_str())
    }

    /// The total of `resource` its containers request, as whole units (GPUs).
    pub fn requested(&self, resource: &str) -> i64 {
        self.containers
            .iter()
            .flat_map(|c| &c.requests)
            .filter(|(name, _)| name == resource)
            .filter_map(|(_, q)| q.0.parse::<i64>().ok())
            .sum()
    }

    /// Its phase as the kubelet reports it.
    pub fn phase(&self) -> Option<&str> {
        self.status.as_ref()?.phase.as_deref()
    }
}

/// A pod as read from the API: only the fields kept are deserialized, the rest (managed
/// fields, environment, mounts…) is skipped without being allocated.
#[derive(serde::Deserialize)]
struct WirePod {
    #[serde(default)]
    metadata: WireMeta,
    #[serde(default)]
    spec: Option<WireSpec>,
    #[serde(default)]
    status: Option<PodStatus>,
}

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSpec {
    node_name: Option<String>,
    #[serde(default)]
    containers: Vec<WireContainer>,
    init_containers: Option<Vec<WireContainer>>,
}

#[derive(serde::Deserialize)]
struct WireContainer {
    name: String,
    resources: Option<ResourceRequirements>,
}

impl From<WirePod> for CachedPod {
    fn from(pod: WirePod) -> Self {
        let WirePod { metadata, spec, status } = pod;
        let (node_name, containers, init_containers) = spec
            .map(|s| (s.node_name, s.containers, s.init_containers.unwrap_or_default()))
            .unwrap_or_default();
        CachedPod {
            metadata: metadata_kept(metadata),
            node_name,
            containers: containers.into_iter().map(container_kept).collect(),
            init_containers: init_containers.into_iter().map(container_kept).collect(),
            status: status.map(status_kept),
        }
    }
}

fn metadata_kept(meta: WireMeta) -> ObjectMeta {
    let labels = meta.labels.map(|labels| {
        labels
            .into_iter()
            .filter(|(k, _)| k == crate::names::APP_LABEL || k.starts_with("llp.kitegg.de/"))
            .collect()
    });
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        creation_timestamp: meta.creation_timestamp,
        deletion_timestamp: meta.deletion_timestamp,
        labels,
        ..ObjectMeta::default()
    }
}

fn container_kept(container: WireContainer) -> CachedContainer {
    let resources = container.resources.unwrap_or_default();
    CachedContainer {
        name: container.name,
        memory_limit: resources.limits.and_then(|mut l| l.remove("memory")),
        requests: resources.requests.into_iter().flatten().collect(),
    }
}

fn status_kept(status: PodStatus) -> PodStatus {
    // Only a scheduling refusal is read of the conditions.
    let conditions: Vec<PodCondition> = status
        .conditions
        .into_iter()
        .flatten()
        .filter(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| PodCondition {
            type_: c.type_,
            status: c.status,
            message: c.message,
            ..PodCondition::default()
        })
        .collect();
    PodStatus {
        phase: status.phase,
        reason: status.reason,
        message: status.message,
        conditions: (!conditions.is_empty()).then_some(conditions),
        container_statuses: status.container_statuses.map(statuses_kept),
        init_container_statuses: status.init_container_statuses.map(statuses_kept),
        ..PodStatus::default()
    }
}

fn statuses_kept(statuses: Vec<ContainerStatus>) -> Vec<ContainerStatus> {
    statuses
        .into_iter()
        .map(|c| {
            let mut last_state = c.last_state;
            if let Some(last) = last_state.as_mut() {
                // Only how the last run ended is read.
                last.running = None;
                last.waiting = None;
            }
            ContainerStatus {
                name: c.name,
                image: c.image,
                ready: c.ready,
                started: c.started,
                restart_count: c.restart_count,
                state: c.state,
                last_state,
                ..ContainerStatus::default()
            }
        })
        .collect()
}

impl k8s_openapi::Resource for CachedPod {
    const API_VERSION: &'static str = Pod::API_VERSION;
    const GROUP: &'static str = Pod::GROUP;
    const KIND: &'static str = Pod::KIND;
    const VERSION: &'static str = Pod::VERSION;
    const URL_PATH_SEGMENT: &'static str = Pod::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for CachedPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "sd-1-0", "namespace": "services", "uid": "u-1", "resourceVersion": "7",
                "labels": {"app": "sd-1", "llp.kitegg.de/owner": "alice", "controller-revision-hash": "sd-1-abc"},
                "annotations": {"kubectl.kubernetes.io/restartedAt": "now"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "sd-1", "uid": "s-1", "controller": true}],
                "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}]},
            "spec": {"nodeName": "worker-1", "containers": [{"name": "web", "image": "nginx",
                "env": [{"name": "A", "value": "1"}], "volumeMounts": [{"name": "d", "mountPath": "/d"}],
                "resources": {"limits": {"memory": "16Gi", "cpu": "2"}, "requests": {"nvidia.com/gpu": "1", "cpu": "2"}}}],
                "volumes": [{"name": "d", "emptyDir": {}}]},
            "status": {"phase": "Running", "podIP": "10.244.0.1", "hostIP": "10.0.0.1", "qosClass": "Burstable",
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "web", "image": "nginx", "imageID": "nginx@sha256:1", "containerID": "cri://1",
                    "ready": false, "restartCount": 2, "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
        })
    }

    #[test]
    fn a_cached_pod_keeps_what_is_read_and_drops_the_rest() {
        let pod: CachedPod = serde_json::from_value(full()).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("sd-1-0"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("services"));
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["app", "llp.kitegg.de/owner"]);
        assert!(pod.metadata.managed_fields.is_none() && pod.metadata.annotations.is_none());
        assert!(pod.metadata.owner_references.is_none());
        assert_eq!(pod.node_name.as_deref(), Some("worker-1"));
        assert_eq!(pod.memory_limit("web"), Some("16Gi"));
        assert_eq!(pod.requested("nvidia.com/gpu"), 1);
        assert_eq!(pod.phase(), Some("Running"));
        let status = pod.status.as_ref().unwrap();
        assert!(status.conditions.is_none(), "a scheduled pod keeps no condition");
        assert!(status.pod_ip.is_none() && status.qos_class.is_none());
        let container = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(container.restart_count, 2);
        assert_eq!(
            container
                .last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            137
        );
        assert!(container.container_id.is_none() && container.image_id.is_empty());
    }

    #[test]
    fn an_unscheduled_pod_keeps_the_schedulers_reason() {
        let pod: CachedPod = serde_json::from_value(json!({
            "metadata": {"name": "sd-1-0"},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/4 nodes are available"}]},
        }))
        .unwrap();
        let conditions = pod.status.unwrap().conditions.unwrap();
        assert_eq!(conditions[0].message.as_deref(), Some("0/4 nodes are available"));
    }
}
