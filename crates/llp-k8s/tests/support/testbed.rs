//! The real control plane (llp-testbed: kube-apiserver, controllers, scheduler, kwok) shared by
//! the tests of one process, and a namespace per test in which llp-k8s acts as the
//! ServiceAccount of `deploy/llp-k8s.yaml`, bound by that file's Role and ClusterRole, with a
//! token from the TokenRequest API: real RBAC decides what the service may do.

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use llp_testbed::{Options, Testbed};
use serde_json::{Value, json};
use std::sync::OnceLock;

const MANIFESTS: &str = include_str!("../../../../deploy/llp-k8s.yaml");

/// The process's control plane, started by the first test that asks for it.
pub fn shared() -> &'static Testbed {
    static TESTBED: OnceLock<Result<Testbed, String>> = OnceLock::new();
    TESTBED
        .get_or_init(|| Testbed::up(roomy()).map_err(|e| e.to_string()))
        .as_ref()
        .unwrap_or_else(|e| panic!("the real control plane did not start: {e}"))
}

/// A control plane of the process with one real node (kubelet, containerd) and no kwok
/// worker, started by the first test that asks for it (the `containers` tests).
#[allow(dead_code)]
pub fn with_real_node() -> &'static Testbed {
    static TESTBED: OnceLock<Result<Testbed, String>> = OnceLock::new();
    TESTBED
        .get_or_init(|| {
            let options = Options {
                cluster: llp_sim::ClusterSpec::with_workers(Some(0), None).expect("a cluster of no kwok worker"),
                real_nodes: 1,
                ..Options::default()
            };
            Testbed::up(options).map_err(|e| e.to_string())
        })
        .as_ref()
        .unwrap_or_else(|e| panic!("the control plane with a real node did not start: {e}"))
}

/// The simulator's nodes, with room for every pod the tests of a process leave running
/// (their namespaces stay until the process ends; a default pod asks for 4 cores).
fn roomy() -> Options {
    let mut options = Options::default();
    for node in &mut options.cluster.nodes {
        node.cpu = 4_096;
        node.memory_gi = 16_384;
        node.pods = 1_000;
    }
    options
}

/// An admin client of the shared control plane.
pub fn admin() -> kube::Client {
    admin_of(shared())
}

/// An admin client of `testbed`.
pub fn admin_of(testbed: &Testbed) -> kube::Client {
    kube::Client::try_from(testbed.client_config(&testbed.admin_token, "default")).unwrap()
}

/// A fresh namespace of `testbed` with the manifest's ServiceAccount, Role and bindings
/// applied to it, and a kube configuration that acts as that ServiceAccount.
pub async fn service_account_in_fresh_namespace_of(testbed: &Testbed, prefix: &str) -> (String, kube::Config) {
    let admin = admin_of(testbed);
    let namespace = format!(
        "{prefix}-{}",
        uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap()
    );
    let apply = PatchParams::apply("llp-k8s-tests").force();
    let ns: Api<Namespace> = Api::all(admin.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
    )
    .await
    .unwrap();
    for mut document in serde_saphyr::from_multiple::<Value>(MANIFESTS).unwrap() {
        // The manifest's namespaces (llp-system for the service, services for its Role) both
        // become the test's; cluster-scoped names get the namespace so tests do not share them.
        if document["metadata"]["namespace"].is_string() {
            document["metadata"]["namespace"] = json!(namespace);
        }
        for subject in document
            .get_mut("subjects")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            subject["namespace"] = json!(namespace);
        }
        let kind = document["kind"].as_str().unwrap_or_default().to_owned();
        let name = document["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "ServiceAccount" => {
                Api::<ServiceAccount>::namespaced(admin.clone(), &namespace)
                    .patch(&name, &apply, &Patch::Apply(document))
                    .await
                    .unwrap();
            }
            "Role" => {
                Api::<Role>::namespaced(admin.clone(), &namespace)
                    .patch(&name, &apply, &Patch::Apply(document))
                    .await
                    .unwrap();
            }
            "RoleBinding" => {
                Api::<RoleBinding>::namespaced(admin.clone(), &namespace)
                    .patch(&name, &apply, &Patch::Apply(document))
                    .await
                    .unwrap();
            }
            "ClusterRole" => {
                Api::<ClusterRole>::all(admin.clone())
                    .patch(&name, &apply, &Patch::Apply(document))
                    .await
                    .unwrap();
            }
            "ClusterRoleBinding" => {
                let binding = format!("{name}-{namespace}");
                document["metadata"]["name"] = json!(binding);
                Api::<ClusterRoleBinding>::all(admin.clone())
                    .patch(&binding, &apply, &Patch::Apply(document))
                    .await
                    .unwrap();
            }
            _ => {}
        }
    }
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    let token = Api::<ServiceAccount>::namespaced(admin, &namespace)
        .create_token_request("llp-k8s", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    (namespace.clone(), testbed.client_config(&token, &namespace))
}
