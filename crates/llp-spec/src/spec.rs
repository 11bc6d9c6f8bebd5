//! The validated deployment: every value checked, every default filled in.
//!
//! Only [`crate::validate`] builds these types, so holding a [`Spec`] means holding a
//! deployment that can be rendered. Serialized, a `Spec` is the normalised spec that
//! `PUT /kubernetes/deployments/{id}` and `llp-k8s validate` print: the user's format with
//! defaults filled in, itself a valid deployment YAML.

pub use crate::raw::{AccessModeName as AccessMode, GpuName as Gpu, RestartPolicyName as RestartPolicy};
use serde::Serialize;
use std::collections::BTreeMap;

/// A validated deployment YAML.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The containers of the pod, in order.
    pub containers: Vec<Container>,
    /// Containers that run to completion before the others, in order.
    pub init_containers: Vec<Container>,
    /// Declared volumes.
    pub volumes: Vec<Volume>,
    /// Existing claims of the owner that mounts name directly (upstream's
    /// `<volume>-sd-<id>-<ordinal>`), mounted as they are.
    #[serde(skip)]
    pub claims: Vec<String>,
    /// Number of pods.
    pub replicas: u32,
    /// Restart policy of the pod.
    pub restart_policy: RestartPolicy,
}

/// A validated container.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// DNS-1123 label, unique in the pod.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Ports, with names filled in.
    pub ports: Vec<Port>,
    /// CPU cores.
    pub cpu: u32,
    /// Memory in GB.
    pub memory: f64,
    /// GPU resource and count, if any.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuRequest>,
    /// Entrypoint override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Environment variables.
    pub environment: Vec<EnvVar>,
    /// `runAsUser` of the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<i64>,
    /// `runAsGroup` of the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<i64>,
    /// Pod-wide default user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_user: Option<i64>,
    /// Pod-wide volume group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
    /// `fsGroupChangePolicy: OnRootMismatch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_group_on_mismatch: Option<bool>,
    /// Volume mounts.
    pub volume_mounts: Vec<VolumeMount>,
}

/// A GPU resource and how many of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuRequest {
    /// The resource.
    pub gpu: Gpu,
    /// How many.
    pub gpu_count: u32,
}

/// A named container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    /// IANA service name, unique in the container.
    pub name: String,
    /// 1–65535, unique in the pod.
    pub port: u16,
}

/// An environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Where its value comes from.
    #[serde(flatten)]
    pub source: EnvSource,
}

/// Where an environment variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EnvSource {
    /// A literal value.
    Value(String),
    /// A key of the deployment's Secret.
    FromSecret(String),
    /// A key of the deployment's ConfigMap.
    FromConfig(String),
}

/// A volume mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// A declared volume.
    pub name: String,
    /// Absolute path in the container.
    pub mount_path: String,
    /// Read-only mount.
    pub read_only: bool,
    /// Access mode, for persistent volumes only.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessMode>,
}

/// A declared volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// DNS-1123 label, unique.
    pub name: String,
    /// What backs it.
    #[serde(flatten)]
    pub kind: VolumeKind,
}

/// What backs a volume. Serialized in the user's format: `size: 1Gi` or
/// `emptyDir: {sizeLimit: 64}` (the access mode stands on the mounts, as `type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeKind {
    /// A persistent volume claim per pod.
    Persistent {
        /// `1Gi`, `500Mi`, …
        size: String,
        /// Access mode, from the mounts' `type`.
        access: AccessMode,
    },
    /// A memory-backed scratch directory.
    EmptyDir {
        /// Size limit in MiB.
        size_limit_mib: u32,
    },
}

impl Serialize for VolumeKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            VolumeKind::Persistent { size, .. } => map.serialize_entry("size", size)?,
            VolumeKind::EmptyDir { size_limit_mib } => {
                map.serialize_entry("emptyDir", &BTreeMap::from([("sizeLimit", size_limit_mib)]))?;
            }
        }
        map.end()
    }
}

/// Settings that the format puts on containers but Kubernetes puts on the pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodSecurity {
    /// Pod `runAsUser`.
    pub fs_user: Option<i64>,
    /// Pod `fsGroup`.
    pub fs_group: Option<i64>,
    /// Pod `fsGroupChangePolicy: OnRootMismatch`.
    pub change_group_on_mismatch: bool,
}

impl Spec {
    /// Every container of the pod, init containers first.
    pub fn all_containers(&self) -> impl Iterator<Item = &Container> {
        self.init_containers.iter().chain(&self.containers)
    }

    /// The pod-level security settings; validation made sure the containers agree on them.
    pub fn pod_security(&self) -> PodSecurity {
        let containers = || self.all_containers();
        PodSecurity {
            fs_user: containers().find_map(|c| c.fs_user),
            fs_group: containers().find_map(|c| c.fs_group),
            change_group_on_mismatch: containers().any(|c| c.change_group_on_mismatch == Some(true)),
        }
    }

    /// The app container named `name`.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.name == name)
    }
}

impl Gpu {
    /// Every GPU kind, whole GPU first.
    pub const ALL: [Gpu; 4] = [Gpu::Full, Gpu::Mig3g40gb, Gpu::Mig2g20gb, Gpu::Mig1g10gb];

    /// The Kubernetes extended resource name.
    pub fn resource_name(self) -> &'static str {
        match self {
            Gpu::Full => "nvidia.com/gpu",
            Gpu::Mig1g10gb => "nvidia.com/mig-1g.10gb",
            Gpu::Mig2g20gb => "nvidia.com/mig-2g.20gb",
            Gpu::Mig3g40gb => "nvidia.com/mig-3g.40gb",
        }
    }
}

impl RestartPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "Always",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Never => "Never",
        }
    }
}

impl AccessMode {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadWriteMany => "ReadWriteMany",
        }
    }
}
