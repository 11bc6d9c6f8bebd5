//! Watch caches of the managed namespace: reflectors over the StatefulSets, pods and claims
//! that carry our `managed-by` label. Status requests read only these, so polling costs the
//! Kubernetes API nothing.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use llp_spec::names::{APP_LABEL, MANAGED_BY};
use std::sync::Arc;

/// The reflector stores.
#[derive(Clone)]
pub struct Caches {
    /// StatefulSets.
    pub stateful_sets: Store<StatefulSet>,
    /// Pods.
    pub pods: Store<Pod>,
    /// Volume claims.
    pub claims: Store<PersistentVolumeClaim>,
    /// The namespace they watch.
    namespace: String,
}

/// Starts the reflectors; they run until the runtime stops.
pub fn start(client: &kube::Client, namespace: &str) -> Caches {
    let config = || watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    Caches {
        stateful_sets: reflect(Api::namespaced(client.clone(), namespace), config()),
        pods: reflect(Api::namespaced(client.clone(), namespace), config()),
        claims: reflect(Api::namespaced(client.clone(), namespace), config()),
        namespace: namespace.to_owned(),
    }
}

fn reflect<K>(api: Api<K>, config: watcher::Config) -> Store<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .applied_objects();
    tokio::spawn(stream.for_each(|_| async {}));
    reader
}

impl Caches {
    /// Waits until every store has its first full list.
    pub async fn ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.stateful_sets.wait_until_ready().await?;
        self.pods.wait_until_ready().await?;
        self.claims.wait_until_ready().await
    }

    /// The StatefulSet named `name`.
    pub fn stateful_set(&self, name: &str) -> Option<Arc<StatefulSet>> {
        self.stateful_sets
            .get(&reflector::ObjectRef::new(name).within(&self.namespace))
    }

    /// Waits (up to 10 s) until the cache holds StatefulSet `name` at `generation` or later,
    /// so that a status request right after a deploy sees it.
    pub async fn observe(&self, name: &str, generation: i64) -> bool {
        for _ in 0..200 {
            if self
                .stateful_set(name)
                .is_some_and(|s| s.metadata.generation.unwrap_or(0) >= generation)
            {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    }

    /// The pods and claims of the deployment whose base name is `base`.
    pub fn members(&self, base: &str) -> (Vec<Pod>, Vec<PersistentVolumeClaim>) {
        let ours = |labels: &Option<std::collections::BTreeMap<String, String>>| {
            labels.as_ref().and_then(|l| l.get(APP_LABEL)).map(String::as_str) == Some(base)
        };
        let pods = self
            .pods
            .state()
            .iter()
            .filter(|p| ours(&p.metadata.labels))
            .map(|p| (**p).clone())
            .collect();
        let claims = self
            .claims
            .state()
            .iter()
            .filter(|c| ours(&c.metadata.labels))
            .map(|c| (**c).clone())
            .collect();
        (pods, claims)
    }
}
