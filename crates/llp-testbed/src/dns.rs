//! Cluster DNS for real nodes: CoreDNS (built from the Go module proxy, `testbed/dns`) runs on
//! this machine with its `kubernetes` plugin, and the `kube-dns` Service (the kubelets'
//! `clusterDNS`) routes to it through kube-proxy, by an EndpointSlice that names the machine's
//! address. Pods resolve `<service>`, `<service>.<namespace>` and the full names; nothing
//! outside `cluster.local` (there is no resolver beyond this machine to ask).

use crate::binaries::Binaries;
use crate::bootstrap::create;
use crate::process::Component;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::Api;
use serde_json::json;
use std::net::IpAddr;
use std::path::Path;

/// The user CoreDNS acts as (a static token), allowed to read what it serves.
pub const USER: &str = "llp-testbed:coredns";

/// CoreDNS's configuration: the cluster's zones on `address:port`.
pub fn corefile(kubeconfig: &Path, address: IpAddr, port: u16) -> String {
    format!(
        "cluster.local:{port} in-addr.arpa:{port} ip6.arpa:{port} {{\n    bind {address}\n    errors\n    kubernetes cluster.local in-addr.arpa ip6.arpa {{\n        kubeconfig {}\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }}\n    cache 5\n}}\n",
        kubeconfig.display()
    )
}

/// Starts CoreDNS with its files in `dir`.
pub fn start(
    dir: &Path,
    binaries: &Binaries,
    server: &str,
    ca_pem: &str,
    token: &str,
    address: IpAddr,
    port: u16,
) -> Result<Component, crate::Error> {
    std::fs::create_dir_all(dir)?;
    let kubeconfig = dir.join("coredns.kubeconfig");
    std::fs::write(
        &kubeconfig,
        llp_sim::kubeconfig::render(server, Some(ca_pem), token, "default"),
    )?;
    let corefile_path = dir.join("Corefile");
    std::fs::write(&corefile_path, corefile(&kubeconfig, address, port))?;
    let args = vec!["-conf".to_owned(), corefile_path.display().to_string()];
    Ok(Component::start("coredns", dir, &binaries.path("coredns"), &args)?)
}

/// CoreDNS's read access, and the `kube-dns` Service at the kubelets' `clusterDNS` address,
/// routed to CoreDNS on this machine.
pub async fn create_objects(admin: &kube::Client, address: IpAddr, port: u16) -> Result<(), crate::Error> {
    let role: ClusterRole = from_json(json!({
        "metadata": {"name": USER},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "endpoints", "namespaces", "pods"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    }));
    create(&Api::all(admin.clone()), &role, "create the ClusterRole of CoreDNS").await?;
    let binding: ClusterRoleBinding = from_json(json!({
        "metadata": {"name": USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
    }));
    create(
        &Api::all(admin.clone()),
        &binding,
        "create the ClusterRoleBinding of CoreDNS",
    )
    .await?;
    let service: Service = from_json(json!({
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {
            "clusterIP": crate::node::CLUSTER_DNS,
            "ports": [
                {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": port},
                {"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": port},
            ],
        },
    }));
    create(
        &Api::namespaced(admin.clone(), "kube-system"),
        &service,
        "create the kube-dns Service",
    )
    .await?;
    let slice: EndpointSlice = from_json(json!({
        "metadata": {
            "name": "kube-dns-coredns",
            "namespace": "kube-system",
            "labels": {"kubernetes.io/service-name": "kube-dns", "endpointslice.kubernetes.io/managed-by": "llp-testbed"},
        },
        "addressType": if address.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [address.to_string()], "conditions": {"ready": true}}],
        "ports": [
            {"name": "dns", "protocol": "UDP", "port": port},
            {"name": "dns-tcp", "protocol": "TCP", "port": port},
        ],
    }));
    create(
        &Api::namespaced(admin.clone(), "kube-system"),
        &slice,
        "create the kube-dns EndpointSlice",
    )
    .await
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a well-formed object")
}
