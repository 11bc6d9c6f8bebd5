//! A pod as the watch caches keep it: only what the status, the capacity and ownership read.
//!
//! k8s-openapi's `Pod` is about 12 KB in memory even with its spec emptied: `PodSpec`,
//! `Container`, `PodStatus` and `ContainerStatus` are large structs inline (1.4, 2.1, 0.4 and
//! 0.75 KB), every label and resource map is a B-tree node of its own, and the kubelet's
//! conditions, IPs and ids come along. With tens of thousands of pods cached that is most of
//! the service's memory, so a pod is read from the watch straight into this, through wire
//! structs that name only the fields kept ([`super::wire`]). Measured by resident memory over
//! 20,000 pods read from the simulator's JSON: 13.4 KB each as `Pod`, 5.9 KB when this kept
//! k8s-openapi's `PodStatus` and read the whole status first, 3.1 KB as it is now.

use super::wire::{MemoryLimit, Quantities, WireMeta};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

/// What is kept of a pod.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "WirePod")]
pub struct CachedPod {
    /// Name, namespace, uid, resourceVersion, creation and deletion times, and the service's
    /// own labels and annotations ([`super::wire::WireMeta`]).
    pub metadata: ObjectMeta,
    /// The node it is bound to.
    pub node_name: Option<String>,
    /// Its containers' names and resources.
    pub containers: Vec<CachedContainer>,
    /// Its init containers' names and resources.
    pub init_containers: Vec<CachedContainer>,
    /// Phase, why it waits to be scheduled, and its containers' states.
    pub status: CachedPodStatus,
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

/// What is kept of a pod's status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CachedPodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`, as the kubelet reports it.
    pub phase: Option<String>,
    /// The scheduler's message while it cannot place the pod (`PodScheduled` is `False`).
    pub unschedulable: Option<String>,
    /// Its containers' states.
    pub containers: Vec<CachedContainerStatus>,
    /// Its init containers' states.
    pub init_containers: Vec<CachedContainerStatus>,
    /// When its kubelet took it (its GPUs are held from then: SPEC section 13).
    pub start_time: Option<jiff::Timestamp>,
}

/// What is kept of a container's status.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedContainerStatus {
    /// The container's name.
    pub name: String,
    /// The image it runs (named when it cannot be pulled).
    #[serde(default)]
    pub image: String,
    /// Whether it passes its readiness probe.
    #[serde(default)]
    pub ready: bool,
    /// Whether it has started (and passed its startup probe).
    #[serde(default)]
    pub started: Option<bool>,
    /// How often it was restarted.
    #[serde(default)]
    pub restart_count: i32,
    /// What it is doing now.
    #[serde(default)]
    pub state: ContainerState,
    /// How its previous run ended.
    #[serde(default)]
    pub last_state: LastState,
}

/// A container's state: k8s's `ContainerState` with only what the status reads (a container
/// is in at most one state; none while the kubelet has not said).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ContainerState {
    /// Waiting: why, and the kubelet's detail.
    #[serde(default)]
    pub waiting: Option<Waiting>,
    /// Ended: how.
    #[serde(default)]
    pub terminated: Option<Terminated>,
}

/// The previous run of a container: only how it ended is read.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct LastState {
    /// How it ended.
    #[serde(default)]
    pub terminated: Option<Terminated>,
}

/// Why a container waits.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Waiting {
    /// `ContainerCreating`, `CrashLoopBackOff`, `ImagePullBackOff`…
    #[serde(default)]
    pub reason: Option<String>,
    /// The kubelet's detail.
    #[serde(default)]
    pub message: Option<String>,
}

/// How a container's run ended.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminated {
    /// `Completed`, `Error`, `OOMKilled`…
    #[serde(default)]
    pub reason: Option<String>,
    /// Its exit code.
    #[serde(default)]
    pub exit_code: i32,
    /// When it ended.
    #[serde(default)]
    pub finished_at: Option<jiff::Timestamp>,
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
        self.status.phase.as_deref()
    }
}

/// A pod as read from the API: only the fields kept are deserialized, the rest (managed
/// fields, environment, mounts, IPs, ids…) is skipped without being allocated.
#[derive(Deserialize)]
struct WirePod {
    #[serde(default)]
    metadata: WireMeta,
    #[serde(default)]
    spec: Option<WireSpec>,
    #[serde(default)]
    status: Option<WireStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSpec {
    node_name: Option<String>,
    #[serde(default)]
    containers: Vec<WireContainer>,
    #[serde(default)]
    init_containers: Vec<WireContainer>,
}

#[derive(Deserialize)]
struct WireContainer {
    name: String,
    #[serde(default)]
    resources: WireResources,
}

#[derive(Default, Deserialize)]
struct WireResources {
    limits: Option<MemoryLimit>,
    requests: Option<Quantities>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStatus {
    phase: Option<String>,
    #[serde(default)]
    conditions: Vec<WireCondition>,
    #[serde(default)]
    container_statuses: Vec<CachedContainerStatus>,
    #[serde(default)]
    init_container_statuses: Vec<CachedContainerStatus>,
    start_time: Option<jiff::Timestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    message: Option<String>,
}

impl From<WirePod> for CachedPod {
    fn from(pod: WirePod) -> Self {
        let WirePod { metadata, spec, status } = pod;
        let (node_name, containers, init_containers) = spec
            .map(|s| (s.node_name, s.containers, s.init_containers))
            .unwrap_or_default();
        let status = status.unwrap_or_default();
        // Only a scheduling refusal is read of the conditions.
        let unschedulable = status
            .conditions
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .map(|c| c.message.unwrap_or_default());
        CachedPod {
            metadata: metadata.into(),
            node_name,
            containers: containers.into_iter().map(container_kept).collect(),
            init_containers: init_containers.into_iter().map(container_kept).collect(),
            status: CachedPodStatus {
                phase: status.phase,
                unschedulable,
                containers: status.container_statuses,
                init_containers: status.init_container_statuses,
                start_time: status.start_time,
            },
        }
    }
}

fn container_kept(container: WireContainer) -> CachedContainer {
    let WireResources { limits, requests } = container.resources;
    CachedContainer {
        name: container.name,
        memory_limit: limits.and_then(|l| l.0),
        requests: requests.map(|r| r.0).unwrap_or_default(),
    }
}

super::wire::resource_as!(CachedPod, Pod);

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
        let status = &pod.status;
        assert_eq!(status.unschedulable, None, "a scheduled pod keeps no condition");
        assert_eq!(
            status.containers,
            [CachedContainerStatus {
                name: "web".into(),
                image: "nginx".into(),
                ready: false,
                started: None,
                restart_count: 2,
                state: ContainerState {
                    waiting: Some(Waiting {
                        reason: Some("CrashLoopBackOff".into()),
                        message: None
                    }),
                    terminated: None
                },
                last_state: LastState {
                    terminated: Some(Terminated {
                        reason: Some("OOMKilled".into()),
                        exit_code: 137,
                        finished_at: None,
                    })
                },
            }]
        );
        assert_eq!(pod.containers[0].requests.len(), 2, "{:?}", pod.containers[0].requests);
    }

    #[test]
    fn a_pod_without_labels_resources_or_status_is_read() {
        let pod: CachedPod = serde_json::from_value(json!({
            "metadata": {"name": "sd-1-0", "labels": null},
            "spec": {"containers": [{"name": "web", "resources": {"limits": null}}]},
        }))
        .unwrap();
        assert_eq!(pod.metadata.labels, None);
        assert_eq!(pod.memory_limit("web"), None);
        assert_eq!(pod.status, CachedPodStatus::default());
        assert_eq!(pod.phase(), None);
    }

    #[test]
    fn an_unscheduled_pod_keeps_the_schedulers_reason() {
        let pod: CachedPod = serde_json::from_value(json!({
            "metadata": {"name": "sd-1-0"},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/4 nodes are available"}]},
        }))
        .unwrap();
        assert_eq!(pod.status.unschedulable.as_deref(), Some("0/4 nodes are available"));
    }
}
