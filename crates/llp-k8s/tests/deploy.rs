//! The manifests in `deploy/`: they parse as the Kubernetes types they claim to be. That the
//! Role grants exactly the calls the service makes is proven against the simulator enforcing
//! it (`tests/api/rbac.rs`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::collections::BTreeSet;

const MANIFESTS: &str = include_str!("../../../deploy/llp-k8s.yaml");
const ROUTE: &str = include_str!("../../../deploy/llp-route.yaml");

fn documents() -> Vec<Value> {
    serde_saphyr::from_multiple(MANIFESTS).expect("the manifests are YAML")
}

fn of_kind(kind: &str) -> Vec<Value> {
    documents().into_iter().filter(|d| d["kind"] == kind).collect()
}

fn grants(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut granted = BTreeSet::new();
    for rule in rules.as_array().into_iter().flatten() {
        for group in rule["apiGroups"].as_array().into_iter().flatten() {
            for resource in rule["resources"].as_array().into_iter().flatten() {
                for verb in rule["verbs"].as_array().into_iter().flatten() {
                    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                    granted.insert((text(group), text(resource), text(verb)));
                }
            }
        }
    }
    granted
}

#[test]
fn every_manifest_parses_as_its_kind() {
    let kinds: Vec<String> = documents()
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "NetworkPolicy"
        ]
    );
    let deployment: Deployment = serde_json::from_value(of_kind("Deployment").remove(0)).expect("a valid Deployment");
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(
        container
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    let _: Role = serde_json::from_value(of_kind("Role").remove(0)).expect("a valid Role");
    let _: PodDisruptionBudget =
        serde_json::from_value(of_kind("PodDisruptionBudget").remove(0)).expect("a valid PodDisruptionBudget");
    let _: ClusterRole = serde_json::from_value(of_kind("ClusterRole").remove(0)).expect("a valid ClusterRole");
}

#[test]
fn the_cluster_wide_grants_only_read_nodes_and_ingresses() {
    let granted = grants(&of_kind("ClusterRole").remove(0)["rules"]);
    assert_eq!(
        granted,
        BTreeSet::from([
            (String::new(), "nodes".to_owned(), "list".to_owned()),
            (
                "networking.k8s.io".to_owned(),
                "ingresses".to_owned(),
                "list".to_owned()
            )
        ])
    );
}

#[test]
fn the_config_in_the_manifest_is_valid() {
    let config_map = of_kind("ConfigMap").remove(0);
    let dir = std::env::temp_dir().join(format!("llp-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    std::fs::write(&file, config_map["data"]["config.toml"].as_str().unwrap()).unwrap();
    let config =
        llp_k8s::config::Config::load(Some(&file), |_| None).expect("the ConfigMap holds a valid configuration");
    assert_eq!(config.cluster.namespace, "services");
    assert_eq!(config.records.source, llp_k8s::config::SourceKind::Directus);
}

#[test]
fn the_llp_route_sends_kubernetes_to_the_service_and_the_rest_to_directus() {
    let ingress: k8s_openapi::api::networking::v1::Ingress =
        serde_saphyr::from_str(ROUTE).expect("deploy/llp-route.yaml is an Ingress");
    let rule = &ingress.spec.unwrap().rules.unwrap()[0];
    let paths = &rule.http.as_ref().unwrap().paths;
    let backend = |path: &str| {
        let found = paths.iter().find(|p| p.path.as_deref() == Some(path)).unwrap();
        found.backend.service.as_ref().unwrap().name.clone()
    };
    assert_eq!(backend("/kubernetes"), "llp-k8s");
    assert_eq!(backend("/"), "directus");
    let service = of_kind("Service").remove(0);
    assert_eq!(service["metadata"]["name"], "llp-k8s");
    assert_eq!(
        ingress.metadata.namespace.as_deref(),
        service["metadata"]["namespace"].as_str(),
        "an Ingress reaches Services of its own namespace only"
    );
}

#[test]
fn the_disruption_budget_covers_the_service_pods_and_leaves_one_to_go() {
    let deployment: Deployment = serde_json::from_value(of_kind("Deployment").remove(0)).unwrap();
    let budget: PodDisruptionBudget = serde_json::from_value(of_kind("PodDisruptionBudget").remove(0)).unwrap();
    let spec = deployment.spec.unwrap();
    let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
    let budget = budget.spec.unwrap();
    let selected = budget.selector.unwrap().match_labels.unwrap();
    assert!(
        selected.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "the budget selects {selected:?}, the pods carry {pod_labels:?}"
    );
    let replicas = spec.replicas.unwrap();
    let IntOrString::Int(min_available) = budget.min_available.unwrap() else {
        panic!("minAvailable is a count")
    };
    assert!(
        (1..replicas).contains(&min_available),
        "with {replicas} replicas, minAvailable {min_available} must keep one serving and let one go"
    );
}

#[test]
fn only_the_ingress_controller_reaches_the_service_pods() {
    let deployment: Deployment = serde_json::from_value(of_kind("Deployment").remove(0)).unwrap();
    let policy: NetworkPolicy =
        serde_json::from_value(of_kind("NetworkPolicy").remove(0)).expect("a valid NetworkPolicy");
    let pod = deployment.spec.unwrap().template;
    let pod_labels = pod.metadata.unwrap().labels.unwrap();
    let policy = policy.spec.unwrap();
    let selected = policy.pod_selector.unwrap().match_labels.unwrap();
    assert!(
        selected.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "the policy selects {selected:?}, the pods carry {pod_labels:?}"
    );
    assert_eq!(policy.policy_types.unwrap(), ["Ingress"]);
    let rules = policy.ingress.unwrap();
    assert_eq!(rules.len(), 1, "one way in");
    let from = rules[0].from.as_ref().unwrap();
    assert!(
        from.iter()
            .all(|peer| peer.namespace_selector.is_some() && peer.pod_selector.is_some() && peer.ip_block.is_none()),
        "each peer is a namespace's pods, none the whole cluster: {from:?}"
    );
    let port_name = pod.spec.unwrap().containers[0].ports.as_ref().unwrap()[0]
        .name
        .clone()
        .unwrap();
    let ports = rules[0].ports.as_ref().unwrap();
    assert_eq!(
        ports[0].port,
        Some(IntOrString::String(port_name)),
        "the service's port only"
    );
}
