//! The cluster side: applying deployments and the watch caches status is read from.

pub mod apply;
pub mod cache;
pub mod calls;
pub mod index;
pub mod lease;
pub mod resize;
pub mod shared;
pub mod trim;
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
}

impl Cluster {
    /// The API of kind `K` in the managed namespace.
    pub fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        kube::Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Starts the caches of `namespace`.
    pub fn start(client: kube::Client, namespace: &str) -> Self {
        let caches = cache::start(&client, namespace);
        Self {
            client,
            namespace: namespace.to_owned(),
            caches,
        }
    }
}
