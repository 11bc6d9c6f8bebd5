//! The deployment YAML as the user wrote it, before validation.
//!
//! Deserializing into these types never fails on a field's value: every field is a
//! [`Lenient`] that keeps a value of the wrong type as it was written, and every mapping keeps
//! its unknown keys. Validation ([`crate::validate`]) then walks the whole tree and reports
//! every problem at once, which a plain `deny_unknown_fields` parse (first error wins) cannot.
//! The same types generate the JSON Schema ([`crate::schema`]), so the schema and the parser
//! cannot drift apart.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A value of type `T`, or the raw value that was written where a `T` belongs.
#[derive(Debug, Clone, PartialEq)]
pub enum Lenient<T> {
    /// The value had the expected type.
    Valid(T),
    /// The value as written, which is not a `T`.
    Invalid(Value),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(match T::deserialize(&value) {
            Ok(valid) => Lenient::Valid(valid),
            Err(_) => Lenient::Invalid(value),
        })
    }
}

impl<T: JsonSchema> JsonSchema for Lenient<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<T>()
    }
}

/// Keys of a mapping that the format does not know, kept so they can be reported.
pub type UnknownKeys = BTreeMap<String, Value>;

/// A field that may be absent, and may hold a value of the wrong type.
pub type Field<T> = Option<Lenient<T>>;

/// A list whose items are checked one by one.
pub type List<T> = Field<Vec<Lenient<T>>>;

/// The top level of the deployment YAML (the record's `data`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields, title = "llp-k8s deployment")]
pub struct RawSpec {
    /// The containers of the pod: 1 to 16.
    #[schemars(length(min = 1, max = 16))]
    pub containers: List<RawContainer>,
    /// Containers that run to completion, in order, before the others start.
    #[schemars(length(max = 16))]
    pub init_containers: List<RawContainer>,
    /// Volumes the containers can mount.
    pub volumes: List<RawVolume>,
    /// How many copies of the pod run (0 to 16 by default; 0 stops it). Default 1. For a run to
    /// completion: how many pods must succeed, all started at once (at least 1).
    #[schemars(range(min = 0, max = 16))]
    pub replicas: Field<i64>,
    /// `Always` (default): a service whose pods keep running. `OnFailure` or `Never`: a run to
    /// completion (a training run, a Kubernetes Job) that ends when its pods exit 0; restart
    /// or deploy again to run it again.
    pub restart_policy: Field<RestartPolicyName>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: UnknownKeys,
}

/// The restart policies the format accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[schemars(rename = "RestartPolicy")]
pub enum RestartPolicyName {
    /// Restart containers whenever they stop.
    Always,
    /// Run to completion; restart containers that fail (each restart counts against the
    /// backoff limit).
    OnFailure,
    /// Run to completion; a failed pod is replaced by a new one until the backoff limit.
    Never,
}

/// One container.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "Container")]
pub struct RawContainer {
    /// Lowercase letters, digits and `-`, starting and ending with a letter or digit; unique.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"))]
    pub name: Field<String>,
    /// The container image, e.g. `nginx:latest`.
    pub image: Field<String>,
    /// Ports the container listens on; each gets a Service.
    pub ports: List<RawPort>,
    /// CPU cores (whole number). Default 4, at most 32 (more for some groups).
    #[schemars(range(min = 1, max = 32))]
    pub cpu: Field<i64>,
    /// Memory in GB. Default 16, from 0.1 to 64 (more for some groups).
    #[schemars(range(min = 0.1, max = 64.0))]
    pub memory: Field<f64>,
    /// A GPU resource for this container.
    pub gpu: Field<GpuName>,
    /// How many of `gpu` (default 1, at most 2 by default). Only with `gpu`.
    #[schemars(range(min = 1, max = 2))]
    pub gpu_count: Field<i64>,
    /// Overrides the image's entrypoint: one program path, or a list (program and arguments).
    pub command: Field<Command>,
    /// Arguments passed to the command.
    pub args: Field<Vec<String>>,
    /// Environment variables.
    pub environment: List<RawEnvVar>,
    /// Runs the container's processes as this user id.
    #[schemars(range(min = 0, max = 2147483647))]
    pub user: Field<i64>,
    /// Runs the container's processes with this group id.
    #[schemars(range(min = 0, max = 2147483647))]
    pub group: Field<i64>,
    /// Default user id of every container of the pod.
    #[schemars(range(min = 0, max = 2147483647))]
    pub fs_user: Field<i64>,
    /// Group that owns the pod's volumes.
    #[schemars(range(min = 0, max = 2147483647))]
    pub fs_group: Field<i64>,
    /// Change volume ownership only when it does not match `fsGroup` (faster start).
    pub change_group_on_mismatch: Field<bool>,
    /// Volumes mounted into this container.
    pub volume_mounts: List<RawVolumeMount>,
    /// Deprecated place for the top-level `replicas` (kept for the seed's format).
    #[schemars(range(min = 0, max = 16))]
    pub replicas: Field<i64>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: UnknownKeys,
}

/// A command: one program path, or the program and its arguments.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Command {
    /// One program path.
    One(String),
    /// Program and arguments.
    List(Vec<String>),
}

/// The GPU resources of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize, JsonSchema)]
#[schemars(rename = "Gpu")]
pub enum GpuName {
    /// A whole GPU.
    #[serde(rename = "nvidia.com/gpu")]
    Full,
    /// A 1g.10gb MIG slice.
    #[serde(rename = "nvidia.com/mig-1g.10gb")]
    Mig1g10gb,
    /// A 2g.20gb MIG slice.
    #[serde(rename = "nvidia.com/mig-2g.20gb")]
    Mig2g20gb,
    /// A 3g.40gb MIG slice.
    #[serde(rename = "nvidia.com/mig-3g.40gb")]
    Mig3g40gb,
}

/// A port the container listens on.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "Port")]
pub struct RawPort {
    /// Lowercase letters, digits and `-`, at most 15 characters. Default `port-<port>`.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$"))]
    pub name: Field<String>,
    /// The port number, 1 to 65535.
    #[schemars(range(min = 1, max = 65535))]
    pub port: Field<i64>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: UnknownKeys,
}

/// An environment variable: a literal `value`, or a key of the deployment's secret or config.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "EnvVar")]
pub struct RawEnvVar {
    /// The variable's name.
    pub name: Field<String>,
    /// Its value, as text.
    pub value: Field<String>,
    /// Take the value from this key of the deployment's secret.
    pub from_secret: Field<String>,
    /// Take the value from this key of the deployment's config.
    pub from_config: Field<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: UnknownKeys,
}

/// A volume mounted into a container.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "VolumeMount")]
pub struct RawVolumeMount {
    /// The name of a volume declared under `volumes`.
    pub name: Field<String>,
    /// Where it appears in the container: an absolute path.
    pub mount_path: Field<String>,
    /// Mount it read-only. Default false.
    pub read_only: Field<bool>,
    /// Access mode of a persistent volume. Default `ReadWriteOnce`: a volume per replica.
    /// `ReadWriteMany`: one volume shared by every replica and by your other deployments that
    /// declare a volume of the same name `ReadWriteMany`. All mounts of a volume must agree.
    #[serde(rename = "type")]
    pub access: Field<AccessModeName>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: UnknownKeys,
}

/// Access modes of a persistent volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[schemars(rename = "AccessMode")]
pub enum AccessModeName {
    /// A volume per replica, mounted by one node at a time.
    ReadWriteOnce,
    /// One volume of yours, shared by every replica and by your deployments that declare a
    /// volume of that name `ReadWriteMany`.
    ReadWriteMany,
}

/// A volume: persistent (`size`) or a memory-backed scratch directory (`emptyDir`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "Volume")]
pub struct RawVolume {
    /// Lowercase letters, digits and `-`; unique.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"))]
    pub name: Field<String>,
    /// Size of a persistent volume: 1 to 999 followed by `Mi` or `Gi`. A larger size on a
    /// later deploy grows the existing volume in place; a smaller one is refused (volumes
    /// cannot shrink).
    #[schemars(regex(pattern = r"^[1-9][0-9]{0,2}(Mi|Gi)$"))]
    pub size: Field<String>,
    /// A memory-backed scratch directory instead of a persistent volume.
    pub empty_dir: Field<RawEmptyDir>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: UnknownKeys,
}

/// Settings of a memory-backed scratch directory.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "EmptyDir")]
pub struct RawEmptyDir {
    /// Its size limit in MiB, 1 to 256. Default 256.
    #[schemars(range(min = 1, max = 256))]
    pub size_limit: Field<i64>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: UnknownKeys,
}
