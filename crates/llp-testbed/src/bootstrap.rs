//! The cluster's first objects and the waits around them: the API server's readiness, the
//! nodes (kwok plays their kubelets), the default StorageClass, the namespaces, and the
//! moment the controllers have caught up (nodes untainted, default ServiceAccounts made).

use crate::Error;
use crate::process::Component;
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use llp_sim::ClusterSpec;
use serde_json::json;
use std::time::{Duration, Instant};

/// Nodes with this annotation are kwok's to play.
pub const KWOK_ANNOTATION: &str = "kwok.x-k8s.io/node";

/// The provisioner name of the default StorageClass (served by [`crate::provisioner`]).
pub const PROVISIONER: &str = "testbed.llp-k8s/hostpath";

/// The default StorageClass's name.
pub const STORAGE_CLASS: &str = "standard";

/// An error if any component has exited.
pub fn check_running(components: &mut [Component]) -> Result<(), Error> {
    for component in components.iter_mut() {
        if !component.is_running() {
            return Err(Error::NotReady {
                component: component.name,
                what: "exited".into(),
                output: component.tail(40),
            });
        }
    }
    Ok(())
}

/// Waits until the API server answers `/readyz` with 200.
pub async fn wait_ready(admin: &kube::Client, components: &mut [Component], deadline: Instant) -> Result<(), Error> {
    loop {
        let request = http_get("/readyz");
        if admin.request_text(request).await.is_ok() {
            return Ok(());
        }
        check_running(components)?;
        if Instant::now() > deadline {
            let output = components.last().map(|c| c.tail(40)).unwrap_or_default();
            return Err(Error::NotReady {
                component: "kube-apiserver",
                what: "was not ready in time".into(),
                output,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates the nodes, the default StorageClass and the namespaces of `cluster`.
///
/// Beside real nodes, the control-plane node is tainted as a real cluster's is: a pod without
/// a node selector (the service of `deploy/`) must land on a node that runs it, not on kwok's.
pub async fn create_cluster(
    admin: &kube::Client,
    cluster: &ClusterSpec,
    release: &str,
    kwok_port: u16,
    real_nodes: bool,
) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(admin.clone());
    for spec in &cluster.nodes {
        let mut object = spec.to_object();
        if real_nodes && spec.labels.contains_key("node-role.kubernetes.io/control-plane") {
            object["spec"]["taints"] =
                json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
        }
        object["metadata"]["annotations"] = json!({KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"});
        object["status"]["addresses"] = json!([
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": spec.name},
        ]);
        // The API server reaches a node's kubelet (here: kwok) at this port for pods/log.
        object["status"]["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": kwok_port}});
        object["status"]["nodeInfo"]["kubeletVersion"] = json!(release);
        // kwok's first stage makes it Ready, as a kubelet's first status does.
        object["status"]["conditions"] = json!([]);
        let node: Node = serde_json::from_value(object).expect("a node object from NodeSpec");
        create(&nodes, &node, &format!("create node {}", spec.name)).await?;
    }
    let classes: Api<StorageClass> = Api::all(admin.clone());
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": true,
    }))
    .expect("a storage class");
    create(&classes, &class, "create the default StorageClass").await?;
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for name in &cluster.namespaces {
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("a namespace");
        create(&namespaces, &namespace, &format!("create namespace {name}")).await?;
    }
    Ok(())
}

/// Waits until each real node's kubelet has registered it, then gives it the worker role (a
/// kubelet may not label itself so: NodeRestriction).
pub async fn label_real_nodes(
    admin: &kube::Client,
    nodes: &[crate::pki::NodeIdentity],
    components: &mut [Component],
    deadline: Instant,
) -> Result<(), Error> {
    let api: Api<Node> = Api::all(admin.clone());
    for node in nodes {
        loop {
            if matches!(api.get_opt(&node.name).await, Ok(Some(_))) {
                break;
            }
            check_running(components)?;
            if Instant::now() > deadline {
                return Err(Error::NotReady {
                    component: "kubelet",
                    what: format!("had not registered node {} in time", node.name),
                    output: components
                        .iter()
                        .find(|c| c.name == format!("kubelet-{}", node.name))
                        .map(|c| c.tail(40))
                        .unwrap_or_default(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let patch = json!({"metadata": {"labels": {"node-role.kubernetes.io/worker": "worker"}}});
        api.patch(&node.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|source| Error::Bootstrap {
                step: format!("label node {}", node.name),
                source,
            })?;
    }
    Ok(())
}

/// Waits until every node is Ready without the not-ready taint the API server put on it at
/// creation, and every namespace of `cluster` has its default ServiceAccount (pods need it).
pub async fn wait_settled(
    admin: &kube::Client,
    cluster: &ClusterSpec,
    components: &mut [Component],
    deadline: Instant,
) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(admin.clone());
    loop {
        let mut pending = Vec::new();
        match nodes.list(&Default::default()).await {
            Ok(list) => pending.extend(
                list.items
                    .iter()
                    .filter(|n| !node_settled(n))
                    .map(|n| format!("node {}", n.metadata.name.clone().unwrap_or_default())),
            ),
            Err(e) => pending.push(format!("nodes ({e})")),
        }
        for namespace in &cluster.namespaces {
            let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
            if !matches!(accounts.get_opt("default").await, Ok(Some(_))) {
                pending.push(format!("ServiceAccount {namespace}/default"));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        check_running(components)?;
        if Instant::now() > deadline {
            return Err(Error::NotReady {
                component: "kube-controller-manager",
                what: format!("had not settled in time: waiting for {}", pending.join(", ")),
                output: components
                    .iter()
                    .find(|c| c.name == "kube-controller-manager")
                    .map(|c| c.tail(30))
                    .unwrap_or_default(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn node_settled(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.key.starts_with("node.kubernetes.io/")));
    ready && !tainted
}

/// Creates `object`; one that exists already is fine. A failure names `step`.
pub(crate) async fn create<K>(api: &Api<K>, object: &K, step: &str) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(source) => Err(Error::Bootstrap {
            step: step.to_owned(),
            source,
        }),
    }
}

fn http_get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path).body(Vec::new()).expect("a GET request")
}
