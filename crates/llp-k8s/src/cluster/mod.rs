//! The cluster side: applying deployments and the watch caches status is read from.

pub mod apply;
pub mod cache;
pub mod calls;
pub mod capacity;
pub mod health;
pub mod hostnames;
pub mod index;
pub mod lease;
pub mod ledger;
pub mod leftovers;
pub mod pages;
pub mod removal;
pub mod resize;
pub mod sessions;
pub mod shared;
pub mod trim;
pub mod wakers;
pub mod workload;

/// A cluster the service deploys to.
#[derive(Clone)]
pub struct Cluster {
    /// The client (kubeconfig or in-cluster).
    pub client: kube::Client,
    /// The managed namespace.
    pub namespace: String,
    /// Watch caches of the namespace.
    pub caches: cache::Caches,
    /// Whether the caches follow the cluster.
    pub health: health::Health,
    /// How long the caches may fail to follow the cluster before `/readyz` fails.
    pub stale_after: std::time::Duration,
    /// The probe's task.
    probe: tokio::task::AbortHandle,
}

/// How often the API server is probed while the service runs.
pub const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How long the caches may fail to follow the cluster before `/readyz` fails, by default.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

impl Cluster {
    /// The API of kind `K` in the managed namespace.
    pub fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        kube::Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Starts the caches of `namespace` and the probe of the API server (every
    /// [`PROBE_EVERY`]).
    pub fn start(client: kube::Client, namespace: &str) -> Self {
        Self::start_probing(client, namespace, PROBE_EVERY)
    }

    /// [`Cluster::start`], probing the API server every `probe_every`.
    pub fn start_probing(client: kube::Client, namespace: &str, probe_every: std::time::Duration) -> Self {
        let health = health::Health::default();
        let caches = cache::start(&client, namespace, &health);
        let probe = health::spawn_probe(client.clone(), health.clone(), probe_every);
        Self {
            client,
            namespace: namespace.to_owned(),
            caches,
            health,
            stale_after: STALE_AFTER,
            probe,
        }
    }

    /// Stops following the cluster: the caches' watches and the probe end (before a demo's
    /// simulator stops, so that they do not report its closed connections).
    pub fn stop(&self) {
        self.caches.stop();
        self.probe.abort();
    }
}
