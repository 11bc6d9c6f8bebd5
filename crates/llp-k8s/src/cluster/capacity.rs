//! The workers' GPUs: what each offers (the nodes, listed now) and what the pods of the
//! managed namespace request on it (the pod cache). Pods of other namespaces are not counted:
//! the service may read only its namespace.

use super::Cluster;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use std::collections::BTreeMap;

/// One GPU resource on one worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gpus {
    /// What the node offers.
    pub allocatable: i64,
    /// What the pods on it request.
    pub requested: i64,
}

/// Each worker (the nodes `node_selector` selects) and its GPUs by extended resource name,
/// for every resource in `resources`.
pub async fn worker_gpus(
    cluster: &Cluster,
    node_selector: &BTreeMap<String, String>,
    resources: &[&str],
) -> Result<Vec<(String, BTreeMap<String, Gpus>)>, kube::Error> {
    let selector: Vec<String> = node_selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let nodes = Api::<Node>::all(cluster.client.clone())
        .list(&ListParams::default().labels(&selector.join(",")))
        .await?;
    // A finished pod (a run to completion's) holds nothing any more.
    let pods: Vec<_> = cluster
        .caches
        .pods
        .state()
        .into_iter()
        .filter(|p| !matches!(p.phase(), Some("Succeeded" | "Failed")))
        .collect();
    Ok(nodes
        .items
        .iter()
        .map(|node| {
            let name = node.metadata.name.clone().unwrap_or_default();
            let allocatable = node
                .status
                .as_ref()
                .and_then(|s| s.allocatable.clone())
                .unwrap_or_default();
            let gpus = resources
                .iter()
                .map(|resource| {
                    let gpus = Gpus {
                        allocatable: allocatable.get(*resource).and_then(|q| q.0.parse().ok()).unwrap_or(0),
                        requested: pods
                            .iter()
                            .filter(|p| p.node_name.as_deref() == Some(name.as_str()))
                            .map(|p| p.requested(resource))
                            .sum(),
                    };
                    ((*resource).to_owned(), gpus)
                })
                .collect();
            (name, gpus)
        })
        .collect())
}
