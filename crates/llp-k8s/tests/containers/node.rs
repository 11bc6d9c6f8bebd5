//! The real node's testbed, the service on it, and the turns scenarios take on it.

use crate::helpers::{TestApp, app_with_testbed_of};
use axum::http::StatusCode;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams};
use llp_spec::RenderConfig;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// One scenario at a time on the node: held for the whole scenario.
pub type Turn = tokio::sync::MutexGuard<'static, ()>;

/// Waits for the node, clears what an earlier scenario left running on it (a failed one
/// leaves its pods; so does a failed in-cluster service), and returns the service on the real
/// node, in a namespace of its own, rendering `IfNotPresent` (the images are on the node; there
/// is no registry).
pub async fn take_turn() -> (Turn, TestApp) {
    static NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let turn = NODE.lock().await;
    let testbed = crate::testbed::with_real_node();
    let admin = crate::testbed::admin_of(testbed);
    delete_everywhere::<StatefulSet>(&admin, "app.kubernetes.io/managed-by=llp-k8s").await;
    delete_everywhere::<Job>(&admin, "app.kubernetes.io/managed-by=llp-k8s").await;
    // The service itself, run from its image by `in_cluster` (it holds a tenth of a core; the
    // node has two and the scenarios' pods ask for one each).
    delete_everywhere::<Deployment>(&admin, "app=llp-k8s").await;
    // Their pods hold cores until they are gone (a `sleep` ignores SIGTERM: 30 s).
    let pods: Api<Pod> = Api::all(admin.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    for selector in ["app.kubernetes.io/managed-by=llp-k8s", "app=llp-k8s"] {
        let selected = ListParams::default().labels(selector);
        loop {
            let left: Vec<_> = pods
                .list(&selected)
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
            if left.is_empty() {
                break;
            }
            // A scenario on a node still busy would fail later with a confusing "Insufficient cpu".
            assert!(
                tokio::time::Instant::now() < deadline,
                "pods of an earlier scenario still hold the node after 90 s: {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let mut app = app_with_testbed_of(testbed).await;
    let render = RenderConfig {
        image_pull_policy: "IfNotPresent".into(),
        ..(*app.state.render).clone()
    };
    app.state.render = Arc::new(render);
    (turn, app)
}

/// Deletes every object of kind `K` with the labels `selector`, in every namespace.
async fn delete_everywhere<K>(admin: &kube::Client, selector: &str)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let selected = ListParams::default().labels(selector);
    for object in Api::<K>::all(admin.clone()).list(&selected).await.unwrap() {
        let meta = object.meta();
        let api: Api<K> = Api::namespaced(admin.clone(), meta.namespace.as_deref().unwrap());
        let _ = api
            .delete(meta.name.as_deref().unwrap(), &DeleteParams::foreground())
            .await;
    }
}

/// Alice's deployment of `yaml`, deployed (201); its id.
pub async fn deploy(app: &TestApp, yaml: &str) -> String {
    let id = app
        .create_record_with(&app.alice, json!({"title": "real", "data": yaml}))
        .await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    id
}

/// Polls alice's status of `id` until `done` holds, for at most `seconds`; that status.
pub async fn status_until(app: &TestApp, id: &str, seconds: u64, done: impl Fn(&Value) -> bool) -> Value {
    let uri = format!("/kubernetes/deployments/{id}");
    let mut last = Value::Null;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while tokio::time::Instant::now() < deadline {
        let (_, body) = app.call("GET", &uri, &app.alice, None).await;
        if done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the status of {id} did not reach the state in {seconds} s; the last: {last:#}")
}

/// The first container of the first pod: its status.
pub fn first_container(status: &Value) -> &Value {
    &status["pods"][0]["containers"][0]
}

/// The first pod's name.
pub fn first_pod(status: &Value) -> String {
    status["pods"][0]["name"].as_str().unwrap().to_owned()
}

/// Polls alice's logs of `pod` (with `query`) until they hold `text`, for at most `seconds`.
pub async fn logs_until(app: &TestApp, id: &str, pod: &str, query: &str, text: &str, seconds: u64) -> String {
    let uri = format!("/kubernetes/deployments/{id}/logs/{pod}?{query}");
    let mut last = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while tokio::time::Instant::now() < deadline {
        let (status, body) = app.raw("GET", &uri, &app.alice).await;
        if status == StatusCode::OK && body.contains(text) {
            return body;
        }
        last = format!("{status}: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the logs of {pod} ({query}) never held {text:?} in {seconds} s; the last: {last}")
}

/// The name and cluster IP of the Service of `container` of deployment `id`.
pub async fn service(app: &TestApp, id: &str, container: &str) -> (String, String) {
    let admin = crate::testbed::admin_of(crate::testbed::with_real_node());
    let services: Api<Service> = Api::namespaced(admin, &app.state.render.namespace);
    let selector = format!("llp.kitegg.de/deployment={id}");
    let list = services.list(&ListParams::default().labels(&selector)).await.unwrap();
    let service = list
        .items
        .iter()
        .find(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with(&format!("-{container}")))
        })
        .unwrap_or_else(|| panic!("no Service for container {container} of {id}"));
    let name = service.metadata.name.clone().unwrap();
    (name, service.spec.as_ref().unwrap().cluster_ip.clone().unwrap())
}

/// Deletes alice's deployment `id` (200).
pub async fn delete(app: &TestApp, id: &str) {
    let (status, body) = app
        .call("DELETE", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Labels the app's namespace so that the API server enforces Pod Security `level`.
pub async fn enforce_pod_security(app: &TestApp, level: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams};
    let admin = crate::testbed::admin_of(crate::testbed::with_real_node());
    let patch = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": level}}});
    Api::<Namespace>::all(admin)
        .patch(
            &app.state.render.namespace,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .unwrap();
}

/// Sends `method uri` as alice and expects 200.
pub async fn ok(app: &TestApp, method: &str, uri: &str) -> Value {
    let (status, body) = app.call(method, uri, &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{method} {uri}: {body}");
    body
}
