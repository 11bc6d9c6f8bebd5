//! The manifests in `deploy/`: they parse as the Kubernetes types they claim to be, and the
//! Role grants exactly the calls the service makes in its namespace (the list below mirrors
//! `cluster/`, `http/actions.rs`, `http/data.rs` and `http/capacity.rs`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use serde_json::Value;
use std::collections::BTreeSet;

const MANIFESTS: &str = include_str!("../../../deploy/llp-k8s.yaml");

/// (API group, resource, verb) of every call the service makes in the managed namespace.
const CALLS: &[(&str, &str, &str)] = &[
    ("apps", "statefulsets", "get"),
    ("apps", "statefulsets", "list"),
    ("apps", "statefulsets", "watch"),
    ("apps", "statefulsets", "create"),
    ("apps", "statefulsets", "patch"),
    ("apps", "statefulsets", "delete"),
    ("apps", "statefulsets/scale", "patch"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "pods", "delete"),
    ("", "pods/log", "get"),
    ("", "persistentvolumeclaims", "list"),
    ("", "persistentvolumeclaims", "watch"),
    ("", "persistentvolumeclaims", "deletecollection"),
    ("", "services", "list"),
    ("", "services", "patch"),
    ("", "services", "delete"),
    ("", "services", "deletecollection"),
    ("", "secrets", "get"),
    ("", "secrets", "patch"),
    ("", "secrets", "delete"),
    ("", "configmaps", "get"),
    ("", "configmaps", "patch"),
    ("", "configmaps", "delete"),
    ("networking.k8s.io", "ingresses", "list"),
    ("networking.k8s.io", "ingresses", "patch"),
    ("networking.k8s.io", "ingresses", "delete"),
    ("networking.k8s.io", "ingresses", "deletecollection"),
    ("", "events", "list"),
];

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
            "Service"
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
    let _: ClusterRole = serde_json::from_value(of_kind("ClusterRole").remove(0)).expect("a valid ClusterRole");
}

#[test]
fn the_role_grants_exactly_the_calls_the_service_makes() {
    let role = of_kind("Role").remove(0);
    assert_eq!(
        role["metadata"]["namespace"], "services",
        "limited to the managed namespace"
    );
    let granted = grants(&role["rules"]);
    let wanted: BTreeSet<(String, String, String)> = CALLS
        .iter()
        .map(|(g, r, v)| ((*g).into(), (*r).into(), (*v).into()))
        .collect();
    assert_eq!(
        granted,
        wanted,
        "missing: {:?}, extra: {:?}",
        wanted.difference(&granted).collect::<Vec<_>>(),
        granted.difference(&wanted).collect::<Vec<_>>()
    );
}

#[test]
fn nodes_are_only_read() {
    let granted = grants(&of_kind("ClusterRole").remove(0)["rules"]);
    assert_eq!(
        granted,
        BTreeSet::from([(String::new(), "nodes".to_owned(), "list".to_owned())])
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
