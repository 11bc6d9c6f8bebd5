//! Reading objects from the API into the compact forms the watch caches keep: wire structs
//! that name only the fields kept, so serde skips the rest (managed fields, environment,
//! mounts, IPs…) without allocating it, and nothing is built only to be dropped (freed
//! temporaries fragment the heap between the objects kept).

use crate::footprint::PodFootprint;
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaimVolumeSource, PodSpec, ResourceRequirements, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Makes `$cached` a Kubernetes resource of `$kind`'s kind with its own metadata, so that
/// kube's `Api`, watcher and reflector read it from the API as they would read `$kind`.
macro_rules! resource_as {
    ($cached:ty, $kind:ty) => {
        impl k8s_openapi::Resource for $cached {
            const API_VERSION: &'static str = <$kind as k8s_openapi::Resource>::API_VERSION;
            const GROUP: &'static str = <$kind as k8s_openapi::Resource>::GROUP;
            const KIND: &'static str = <$kind as k8s_openapi::Resource>::KIND;
            const VERSION: &'static str = <$kind as k8s_openapi::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str = <$kind as k8s_openapi::Resource>::URL_PATH_SEGMENT;
            type Scope = <$kind as k8s_openapi::Resource>::Scope;
        }

        impl k8s_openapi::Metadata for $cached {
            type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }
    };
}
pub(super) use resource_as;

/// The metadata kept of a cached object: its identity, times, and the service's own labels
/// (`app`, `llp.kitegg.de/…`) and annotations (`llp.kitegg.de/…`), the only ones read back.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    labels: Option<Own>,
    annotations: Option<Own>,
}

impl From<WireMeta> for ObjectMeta {
    fn from(meta: WireMeta) -> Self {
        ObjectMeta {
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            resource_version: meta.resource_version,
            generation: meta.generation,
            creation_timestamp: meta.creation_timestamp,
            deletion_timestamp: meta.deletion_timestamp,
            labels: meta.labels.map(|l| l.0),
            annotations: meta.annotations.map(|a| a.0).filter(|a| !a.is_empty()),
            ..ObjectMeta::default()
        }
    }
}

/// A JSON object read as a list of its entries, keeping those whose key `keep` accepts (the
/// others' values are skipped unallocated): a list of one to three entries is a fraction of a
/// B-tree node's size.
struct Entries<V> {
    entries: Vec<(String, V)>,
}

impl<V> Entries<V> {
    fn read<'de, D: serde::Deserializer<'de>>(deserializer: D, keep: fn(&str) -> bool) -> Result<Self, D::Error>
    where
        V: Deserialize<'de>,
    {
        struct Visit<V>(fn(&str) -> bool, std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Vec<(String, V)>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if (self.0)(&key) {
                        entries.push((key, map.next_value()?));
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(entries)
            }
        }
        let entries = deserializer.deserialize_any(Visit(keep, std::marker::PhantomData))?;
        Ok(Self { entries })
    }
}

/// Of labels or annotations, the service's own (`app` and `llp.kitegg.de/…`).
struct Own(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Own {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let own = |key: &str| key == crate::names::APP_LABEL || key.starts_with("llp.kitegg.de/");
        Ok(Self(Entries::read(deserializer, own)?.entries.into_iter().collect()))
    }
}

/// Every entry of a resource list (`requests`).
pub(super) struct Quantities(pub(super) Vec<(String, Quantity)>);

impl<'de> Deserialize<'de> for Quantities {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self(Entries::read(deserializer, |_| true)?.entries))
    }
}

/// The memory entry of a resource list (`limits`).
pub(super) struct MemoryLimit(pub(super) Option<Quantity>);

impl<'de> Deserialize<'de> for MemoryLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Entries::read(deserializer, |key| key == "memory")?.entries;
        Ok(Self(entries.into_iter().next().map(|(_, q)| q)))
    }
}

/// A pod template as read for its [`PodFootprint`]: the containers' resources and the
/// claims mounted by name.
#[derive(Default, Deserialize)]
pub(super) struct WireTemplate {
    spec: Option<WirePodSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePodSpec {
    #[serde(default)]
    containers: Vec<WireContainer>,
    #[serde(default)]
    init_containers: Vec<WireContainer>,
    #[serde(default)]
    volumes: Vec<WireVolume>,
}

#[derive(Deserialize)]
struct WireContainer {
    #[serde(default)]
    name: String,
    resources: Option<ResourceRequirements>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireVolume {
    #[serde(default)]
    name: String,
    persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
}

impl WireTemplate {
    /// The footprint of a pod of this template, counted by the same code as a rendered one's.
    pub(super) fn footprint(self) -> PodFootprint {
        let Some(spec) = self.spec else {
            return PodFootprint::default();
        };
        let container = |c: WireContainer| Container {
            name: c.name,
            resources: c.resources,
            ..Container::default()
        };
        let volumes = spec
            .volumes
            .into_iter()
            .map(|v| Volume {
                name: v.name,
                persistent_volume_claim: v.persistent_volume_claim,
                ..Volume::default()
            })
            .collect();
        PodFootprint::of_spec(&PodSpec {
            containers: spec.containers.into_iter().map(container).collect(),
            init_containers: Some(spec.init_containers.into_iter().map(container).collect()),
            volumes: Some(volumes),
            ..PodSpec::default()
        })
    }
}
