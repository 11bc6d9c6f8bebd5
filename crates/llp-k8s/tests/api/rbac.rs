//! The Role and ClusterRole of `deploy/llp-k8s.yaml` against the simulator enforcing them:
//! every route works under them (nothing refused), and they grant exactly the calls the
//! service made (nothing unused).

use crate::helpers::{TestApp, app_with_sim, app_with_testbed, code};
use axum::http::StatusCode;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use llp_sim::{Rbac, SimOptions};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const MANIFESTS: &str = include_str!("../../../../deploy/llp-k8s.yaml");

fn of_kind<T: serde::de::DeserializeOwned>(kind: &str) -> T {
    let documents: Vec<Value> = serde_saphyr::from_multiple(MANIFESTS).unwrap();
    let document = documents.into_iter().find(|d| d["kind"] == kind).unwrap();
    serde_json::from_value(document).unwrap()
}

fn granted(role: &Role, nodes: &ClusterRole) -> BTreeSet<(String, String, String)> {
    let mut granted = BTreeSet::new();
    for rule in role.rules.iter().flatten().chain(nodes.rules.iter().flatten()) {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    granted
}

/// The service on a simulator that grants its ServiceAccount `role` and `nodes` only.
async fn app_under(role: &Role, nodes: &ClusterRole) -> TestApp {
    let rbac = Rbac::new("system:serviceaccount:llp-system:llp-k8s")
        .role(role)
        .cluster_role(nodes);
    app_with_sim(SimOptions {
        rbac: Some(rbac),
        ..SimOptions::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_role_is_exactly_what_every_route_needs() {
    let role: Role = of_kind("Role");
    let nodes: ClusterRole = of_kind("ClusterRole");
    let app = app_under(&role, &nodes).await;
    exercise_every_route(&app).await;
    // A terminal: authorized (get and create on pods/exec), then refused by the simulator's
    // nodes, which run no containers (tests/containers/terminal.rs opens one on a real node).
    let (id, pod) = app
        .running(json!({"title": "web", "data": "containers: [{name: web, image: nginx}]"}))
        .await;
    let addr = crate::helpers::serve_with(&app, Default::default()).await;
    let (status, body) = crate::helpers::open_terminal(addr, (&id, &pod), "", &app.alice)
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let sim = app.sim.as_ref().unwrap();
    assert_eq!(sim.requests().forbidden(), Vec::<String>::new(), "nothing refused");
    let used = sim.requests().used();
    let granted = granted(&role, &nodes);
    assert_eq!(
        used,
        granted,
        "used but not granted: {:?}; granted but never used: {:?}",
        used.difference(&granted).collect::<Vec<_>>(),
        granted.difference(&used).collect::<Vec<_>>()
    );
}

/// Every route of SPEC section 5, as alice, each answering 2xx: secret and config, deploy with
/// a volume, an env from each and a hostname, status until Running, logs, events, scale,
/// restart, pod delete, capacity, a changed record (prune and recreate), delete.
async fn exercise_every_route(app: &TestApp) {
    let alice = app.alice.clone();
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (app, alice) = (&app, alice.clone());
        async move {
            let (status, body) = app.call(method, &path, &alice, body).await;
            assert!(status.is_success(), "{method} {path}: {status} {body}");
            body
        }
    };

    let web = "containers: [{name: web, image: nginx, ports: [{name: http, port: 80}], \
               environment: [{name: KEY, fromSecret: key}, {name: MODE, fromConfig: mode}], \
               volumeMounts: [{name: data, mountPath: /data}]}]\nvolumes: [{name: data, size: 1Gi}]";
    let id = app
        .create_record_with(
            &alice,
            json!({"title": "web", "data": web, "exposed_service": "web", "exposed_port": 80, "exposed_hostname": "rbac-web"}),
        )
        .await;
    let deployment = format!("/kubernetes/deployments/{id}");
    call("PUT", format!("{deployment}/secret"), Some(json!({"key": "s3cret"}))).await;
    call("PUT", format!("{deployment}/config"), Some(json!({"mode": "fast"}))).await;
    call("GET", format!("{deployment}/secret"), None).await;
    call("GET", format!("{deployment}/config"), None).await;
    call("PUT", deployment.clone(), None).await;

    let pod = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let status = call("GET", deployment.clone(), None).await;
            if status["pods"][0]["phase"] == "Running" {
                return status["pods"][0]["name"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the pod runs");
    call("GET", format!("{deployment}/logs/{pod}?timestamps=true"), None).await;
    call("GET", format!("{deployment}/events/{pod}"), None).await;
    call("PATCH", format!("{deployment}?scale=2"), None).await;
    call("POST", format!("{deployment}/hooks/restart"), None).await;
    call("DELETE", format!("{deployment}/pods/{pod}"), None).await;
    call("GET", "/kubernetes/capacity".into(), None).await;

    // The GPU reservation reconciler: a GPU deployment whose booking is cancelled is stopped
    // (its lease taken, then renewed; the StatefulSet patched; an Event recorded).
    let booking = app.book_today(&alice, &["gpu-xs"]).await;
    let gpu = app
        .create_record_with(
            &alice,
            json!({"data": "containers: [{name: train, image: trainer, gpu: nvidia.com/mig-1g.10gb, \
                volumeMounts: [{name: shared, mountPath: /shared, type: ReadWriteMany}]}]\n\
                volumes: [{name: shared, size: 1Gi}]"}),
        )
        .await;
    call("PUT", format!("/kubernetes/deployments/{gpu}"), None).await;
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/items/gpu_reservations/{booking}"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let reconciler = app.reconciler("rbac-test");
    let first = reconciler.round().await.expect("the reconciler works under the Role");
    assert_eq!(first.expect("it holds the lease").stopped, [format!("sd-{gpu}")]);
    app.status_until(&gpu, &alice, |s| s["stopped"].is_string()).await;
    let second = reconciler.round().await.expect("and renews its lease");
    assert_eq!(second.expect("it still holds the lease").stopped, Vec::<String>::new());

    // A run to completion: a Job, run again by restart, deleted with its pods.
    let run = app
        .create_record_with(
            &alice,
            json!({"data": "containers: [{name: train, image: trainer, cpu: 1, memory: 1}]\nrestartPolicy: Never"}),
        )
        .await;
    call("PUT", format!("/kubernetes/deployments/{run}"), None).await;
    app.status_until(&run, &alice, |s| s["run"]["state"] == "Complete")
        .await;
    call("POST", format!("/kubernetes/deployments/{run}/hooks/restart"), None).await;
    call("DELETE", format!("/kubernetes/deployments/{run}"), None).await;

    // No hostname, no ports, a second volume and the GPU deployment's shared one: the Ingress
    // and the container's Service are pruned, the shared claim labelled as this one's too, and
    // the StatefulSet recreated (its volume claim templates cannot change in place). The
    // shared claim goes with the last of the two.
    let changed = web
        .replace(
            "volumes: [",
            "volumes: [{name: scratch, size: 1Gi}, {name: shared, size: 1Gi}, ",
        )
        .replace(
            "mountPath: /data}",
            "mountPath: /data}, {name: shared, mountPath: /shared, type: ReadWriteMany}",
        )
        .replace("ports: [{name: http, port: 80}], ", "");
    assert_ne!(changed, web);
    app.state
        .embedded
        .as_ref()
        .unwrap()
        .update(
            &app.state.embedded.as_ref().unwrap().authenticate(&alice).unwrap(),
            &llp_spec::RecordId::Text(id.clone()),
            &llp_k8s::records::embedded::RecordInput {
                data: Some(Some(changed)),
                exposed_hostname: Some(None),
                exposed_service: Some(None),
                exposed_port: Some(None),
                ..Default::default()
            },
        )
        .unwrap();
    let (status, body) = app.call("PUT", &deployment, &alice, None).await;
    assert!(status.is_success(), "{status} {body}");
    let status = app
        .status_until(&id, &alice, |s| {
            s["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["shared"] == true)
        })
        .await;
    let shared = status["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["shared"] == true)
        .unwrap();
    let shared_claim = shared["claim"].as_str().unwrap().to_owned();
    // The orphan reconciler: a deployment whose record vanished in the LLP is listed (metadata
    // only) and removed.
    let lost = app
        .create_record_with(&alice, json!({"data": "containers: [{name: web, image: nginx}]"}))
        .await;
    call(
        "PUT",
        format!("/kubernetes/deployments/{lost}/secret"),
        Some(json!({"KEY": "v"})),
    )
    .await;
    call("PUT", format!("/kubernetes/deployments/{lost}"), None).await;
    app.forget_record(&lost);
    let (status, listing) = app.call("GET", "/kubernetes/orphans", &app.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    let settings = llp_k8s::orphans::OrphanSettings {
        grace_seconds: 0,
        ..Default::default()
    };
    let round = app.orphan_reconciler("rbac-test", settings).round().await;
    let round = round.expect("the orphan reconciler works under the Role");
    assert_eq!(round.expect("it holds the lease").removed, [lost]);

    call("DELETE", deployment.clone(), None).await;
    call("DELETE", format!("/kubernetes/deployments/{gpu}"), None).await;
    let claims: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        kube::Api::namespaced(app.admin_client(), &app.cluster().namespace);
    let left = claims.get_opt(&shared_claim).await.unwrap();
    assert!(
        left.is_none_or(|c| c.metadata.deletion_timestamp.is_some()),
        "the shared claim goes with its last deployment"
    );
    let (status, body) = app.call("GET", &deployment, &alice, None).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "NOT_FOUND"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_works_on_kubernetes_as_the_manifests_service_account() {
    let app = app_with_testbed().await;
    exercise_every_route(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_of_kind_the_cluster_refuses_leaves_the_deployment_running() {
    // The manifest's Role, Jobs read-only: the switch to a run to completion is refused.
    let mut role: Role = of_kind("Role");
    for rule in role.rules.iter_mut().flatten() {
        if rule.resources.as_ref().is_some_and(|r| r.iter().any(|r| r == "jobs")) {
            rule.verbs.retain(|v| ["get", "list", "watch"].contains(&v.as_str()));
        }
    }
    let nodes: ClusterRole = of_kind("ClusterRole");
    let app = app_under(&role, &nodes).await;
    let (id, pod) = app
        .running(json!({"data": "containers: [{name: web, image: nginx, cpu: 1, memory: 1}]"}))
        .await;
    let run = json!({"data": "containers: [{name: web, image: nginx, cpu: 1, memory: 1}]\nrestartPolicy: Never"});
    app.call("PATCH", &format!("/items/deployments/{id}"), &app.alice, Some(run))
        .await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert!(status.is_server_error(), "refused by the cluster: {status} {body}");
    // The StatefulSet and its pod still run.
    let status = app
        .status_until(&id, &app.alice, |s| s["pods"][0]["phase"] == "Running")
        .await;
    assert_eq!(status["pods"][0]["name"], pod.as_str(), "{status}");
    assert!(status["run"].is_null(), "still a StatefulSet: {status}");
}
