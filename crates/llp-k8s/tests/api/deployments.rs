//! `/kubernetes/deployments/{id}` against the simulator: deploy, status from the caches,
//! isolation, bad input, pruning.

use crate::helpers::{app, app_on, app_with_cluster, code};
use axum::http::StatusCode;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use std::time::Duration;

const TWO_CONTAINERS: &str = "containers:\n  - {name: web, image: nginx, ports: [{name: http, port: 80}]}\n  - {name: api, image: app, ports: [{name: api, port: 8080}]}\n";

async fn until_running(app: &crate::helpers::TestApp, id: &str) -> Value {
    until(app, id, |s| {
        s["pods"][0]["phase"] == "Running" && s["pods"][0]["containers"][0]["ready"] == true
    })
    .await
}

#[tokio::test]
async fn without_a_cluster_deploys_are_503_naming_it() {
    let app = app();
    let id = app.create_record(&app.alice).await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
    );
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("the cluster"),
        "{body}"
    );
}

async fn until(app: &crate::helpers::TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    app.status_until(id, &app.alice, done).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_503_naming_the_cluster() {
    let mut app = app_with_cluster().await;
    let id = app.create_record(&app.alice).await;
    app.sim.take().unwrap().stop().await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
    );
    // The first cluster call of a deploy is its admission: nothing was applied.
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert_eq!(message, "the cluster is unavailable; try again later.");
}

/// Alice's deployment of [`TWO_CONTAINERS`], deployed; returns its id.
async fn deploy_two_containers(app: &crate::helpers::TestApp) -> String {
    let id = app
        .create_record_with(&app.alice, json!({"data": TWO_CONTAINERS}))
        .await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    id
}

crate::on_both_backends! {
async fn what_the_yaml_drops_is_gone_from_the_cluster_also_after_a_recreate(backend) {
    let app = app_on(backend).await;
    let full = "containers:\n  - {name: web, image: nginx, environment: [{name: A, value: '1'}, {name: B, value: '2'}], gpu: nvidia.com/mig-1g.10gb}\n  - {name: side, image: busybox}\n";
    app.book_today(&app.alice, &["gpu-xs"]).await;
    let id = app.create_record_with(&app.alice, json!({"data": full})).await;
    let deployment = format!("/kubernetes/deployments/{id}");
    assert_eq!(app.call("PUT", &deployment, &app.alice, None).await.0, StatusCode::CREATED);
    // A new volume changes the claim templates: the StatefulSet is recreated.
    let recreated = format!("{full}volumes: [{{name: data, size: 1Gi}}]\n");
    app.call("PATCH", &format!("/items/deployments/{id}"), &app.alice, Some(json!({"data": recreated}))).await;
    let (status, body) = app.call("PUT", &deployment, &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Then the YAML drops a container, a variable and the GPU.
    let smaller = "containers:\n  - {name: web, image: nginx, environment: [{name: A, value: '1'}]}\nvolumes: [{name: data, size: 1Gi}]\n";
    app.call("PATCH", &format!("/items/deployments/{id}"), &app.alice, Some(json!({"data": smaller}))).await;
    let (status, body) = app.call("PUT", &deployment, &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sts = app.cluster().api::<StatefulSet>().get(&format!("sd-{id}")).await.unwrap();
    let pod = sts.spec.unwrap().template.spec.unwrap();
    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web"], "the dropped container is gone");
    let env: Vec<_> = pod.containers[0].env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert_eq!(env, ["A"], "the dropped variable is gone");
    let limits = pod.containers[0].resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert!(!limits.contains_key("nvidia.com/mig-1g.10gb"), "the dropped GPU limit is gone: {limits:?}");
}

async fn gpu_pods_tolerate_the_gpu_nodes_taint_as_configured(backend) {
    let mut app = app_on(backend).await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(app.admin_client());
    let taint = |taints: Value| json!({"spec": {"taints": taints}});
    let gpu_taint = json!([{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]);
    for node in ["worker-1", "worker-3"] {
        nodes.patch(node, &Default::default(), &kube::api::Patch::Merge(taint(gpu_taint.clone()))).await.unwrap();
    }
    app.book_today(&app.alice, &["gpu-l", "gpu-l"]).await;
    let gpu = json!({"data": "containers: [{name: train, image: trainer, cpu: 1, memory: 1, gpu: nvidia.com/gpu}]"});
    let id = app.create_record_with(&app.alice, gpu.clone()).await;
    app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None).await;
    until(&app, &id, |s| s["pods"][0]["phase"] == "Running").await;

    // Without the toleration in the configuration, the tainted GPU nodes refuse the pod.
    app.state.render = std::sync::Arc::new(llp_spec::RenderConfig {
        gpu_tolerations: Vec::new(),
        ..(*app.state.render).clone()
    });
    let id = app.create_record_with(&app.alice, gpu).await;
    app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None).await;
    let status = until(&app, &id, |s| s["pods"][0]["scheduling"].is_string()).await;
    let why = status["pods"][0]["scheduling"].as_str().unwrap();
    for node in ["worker-1", "worker-3"] {
        nodes.patch(node, &Default::default(), &kube::api::Patch::Merge(taint(json!(null)))).await.unwrap();
    }
    assert!(why.contains("untolerated taint"), "{why}");
}

async fn pods_the_cluster_refuses_to_create_are_explained_in_the_status(backend) {
    let app = app_on(backend).await;
    let quota: k8s_openapi::api::core::v1::ResourceQuota =
        serde_json::from_value(json!({"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}})).unwrap();
    Api::namespaced(app.admin_client(), &app.cluster().namespace)
        .create(&Default::default(), &quota)
        .await
        .unwrap();
    let id = app.create_record(&app.alice).await;
    let (status, body) = app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let status = until(&app, &id, |s| s["problem"].is_string()).await;
    assert_eq!(status["pods"], json!([]));
    let problem = status["problem"].as_str().unwrap();
    assert!(
        problem.starts_with("the cluster refuses to create this deployment's pods: ") && problem.contains("exceeded quota: no-pods"),
        "{problem}"
    );
}

async fn the_longest_names_validation_allows_deploy_and_run(backend) {
    let app = app_on(backend).await;
    let long = "abcdefghijklmnopqrstuvwxyz-abcdefghijklmnopqrstuvwxyz-012345678";
    let data = format!(
        "containers: [{{name: {long}, image: nginx, ports: [{{name: abcdefghijklmno, port: 80}}], volumeMounts: [{{name: {long}, mountPath: /d}}]}}]\nvolumes: [{{name: {long}, size: 1Gi}}]"
    );
    let title = "Ein sehr langer Titel".repeat(5);
    let id = app.create_record_with(&app.alice, json!({"title": title, "data": data})).await;
    let (status, body) = app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let status = until(&app, &id, |s| {
        s["pods"][0]["containers"][0]["ready"] == true && s["volumes"][0]["phase"] == "Bound"
    })
    .await;
    assert_eq!(status["volumes"][0]["capacity"], "1Gi");
}

async fn a_deploy_comes_up_and_its_status_costs_the_cluster_nothing(backend) {
    let app = app_on(backend).await;
    let id = app.create_record(&app.alice).await;
    let (status, spec) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{spec}");
    assert_eq!(
        spec["containers"][0]["cpu"], 4,
        "the normalised spec, defaults filled in"
    );
    let (status, _) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::OK, "a second deploy is an update");

    let body = until_running(&app, &id).await;
    assert_eq!(body["replicas"], 1);
    assert_eq!(body["pods"][0]["initContainers"], json!([]), "always there, as the extension answered");
    assert_eq!(body["pods"][0]["name"], format!("sd-{id}-0"));

    // The service's own count of its Kubernetes API requests (what /metrics reports).
    let before = app.kube_api_requests().await;
    for _ in 0..20 {
        let (status, _) = app
            .call("GET", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(app.kube_api_requests().await, before, "status is served from the watch caches");
}

/// A first deploy costs the Kubernetes API at most 5 requests (its admission included), an
/// unchanged one fewer: what is there and what to prune come from the watch caches.
async fn a_first_deploy_costs_at_most_five_kubernetes_requests_and_an_unchanged_one_fewer(backend) {
    let app = app_on(backend).await;
    let yaml = "replicas: 4\ncontainers: [{name: web, image: nginx, cpu: 1, memory: 0.1, ports: [{name: http, port: 80}]}]";
    let id = app.create_record_with(&app.alice, json!({"data": yaml})).await;
    let uri = format!("/kubernetes/deployments/{id}");
    let mut costs = Vec::new();
    for expected in [StatusCode::CREATED, StatusCode::OK] {
        let before = requests_but_watches(&app).await;
        let (status, body) = app.call("PUT", &uri, &app.alice, None).await;
        assert_eq!(status, expected, "{body}");
        costs.push(requests_but_watches(&app).await - before);
    }
    assert!(costs[0] <= 5, "a first deploy made {} requests", costs[0]);
    assert!(costs[1] < costs[0], "an unchanged deploy made {} requests, the first {}", costs[1], costs[0]);
}

async fn another_user_cannot_deploy_or_read_a_deployment_and_cannot_tell_it_exists(backend) {
    let app = app_on(backend).await;
    let id = app.create_record(&app.alice).await;
    app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    let unknown = "00000000-0000-4000-8000-000000000000";
    for method in ["PUT", "GET"] {
        let theirs = app
            .call(method, &format!("/kubernetes/deployments/{id}"), &app.bob, None)
            .await;
        let missing = app
            .call(method, &format!("/kubernetes/deployments/{unknown}"), &app.bob, None)
            .await;
        assert_eq!(theirs.0, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(theirs, missing, "{method}");
    }
    let (status, _) = app
        .call("GET", &format!("/kubernetes/deployments/{id}"), &app.admin, None)
        .await;
    assert_eq!(status, StatusCode::OK, "admins act on all");
}

async fn an_invalid_spec_is_400_with_every_problem_and_creates_nothing(backend) {
    let app = app_on(backend).await;
    let body = json!({"data": "containers:\n  - {name: ../../etc, image: nginx, cpu: \"8\"}\n"});
    let id = app.create_record_with(&app.alice, body).await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "VALIDATION_FAILED"));
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["extensions"]["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["containers[0].name", "containers[0].cpu"]);
    let sets: Api<StatefulSet> = app.cluster().api();
    assert!(sets.list(&ListParams::default()).await.unwrap().items.is_empty());
}

async fn a_record_not_yet_deployed_is_404_saying_so(backend) {
    let app = app_on(backend).await;
    let id = app.create_record(&app.alice).await;
    let (status, body) = app
        .call("GET", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not deployed yet"),
        "{body}"
    );
}

async fn a_removed_container_loses_its_service_on_the_next_deploy(backend) {
    let app = app_on(backend).await;
    let id = deploy_two_containers(&app).await;
    let services: Api<Service> = app.cluster().api();
    let names = || async {
        services
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|s| s.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(names().await.len(), 2);
    let one = json!({"data": "containers:\n  - {name: web, image: nginx, ports: [{name: http, port: 80}]}\n"});
    app.call("PATCH", &format!("/items/deployments/{id}"), &app.alice, Some(one))
        .await;
    let (status, _) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names().await, [format!("sd-{id}-web")]);
}

async fn a_hostname_in_use_by_another_deployment_is_409(backend) {
    let app = app_on(backend).await;
    let exposed = json!({"data": "containers: [{name: web, image: nginx, ports: [{name: http, port: 80}]}]",
        "exposed_service": "web", "exposed_port": 80, "exposed_hostname": "shared"});
    let alice = app.create_record_with(&app.alice, exposed.clone()).await;
    let bob = app.create_record_with(&app.bob, exposed).await;
    assert_eq!(
        app.call("PUT", &format!("/kubernetes/deployments/{alice}"), &app.alice, None)
            .await
            .0,
        StatusCode::CREATED
    );
    // Once the service's watch has Alice's claim, Bob's deploy is refused before it writes.
    let claims = &app.cluster().caches.host_claims;
    while !claims.state().iter().any(|c| c.metadata.name.as_deref() == Some("llp-host-shared")) {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{bob}"), &app.bob, None)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "CONFLICT"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "exposed_hostname");
    let ledgers = kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(app.admin_client(), &app.cluster().namespace)
        .list(&kube::api::ListParams::default().labels("llp.kitegg.de/ledger=admission"))
        .await
        .unwrap();
    assert!(
        ledgers.items.into_iter().all(|l| !l.data.unwrap_or_default().contains_key(&bob)),
        "refused before the first write: nothing admitted for Bob"
    );
    assert_eq!(
        app.call("PUT", &format!("/kubernetes/deployments/{alice}"), &app.alice, None)
            .await
            .0,
        StatusCode::OK,
        "its own hostname is no conflict"
    );
    let (_, status) = app
        .call("GET", &format!("/kubernetes/deployments/{alice}"), &app.alice, None)
        .await;
    assert_eq!(status["url"], "https://shared.llp.example.org");
}

async fn concurrent_deploys_of_one_record_create_it_once(backend) {
    let app = std::sync::Arc::new(app_on(backend).await);
    let id = app
        .create_record_with(&app.alice, json!({"data": TWO_CONTAINERS}))
        .await;
    let puts: Vec<_> = (0..5)
        .map(|_| {
            let (app, id) = (app.clone(), id.clone());
            tokio::spawn(async move {
                app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
                    .await
                    .0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for put in puts {
        statuses.push(put.await.unwrap());
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::CREATED
        ]
    );
    let services: Api<Service> = app.cluster().api();
    assert_eq!(services.list(&ListParams::default()).await.unwrap().items.len(), 2);
}

async fn capacity_shows_each_workers_gpus_and_what_is_requested(backend) {
    let app = app_on(backend).await;
    app.book_today(&app.alice, &["gpu-l", "gpu-l"]).await;
    let gpu = json!({"data": "containers: [{name: train, image: trainer, gpu: nvidia.com/gpu, gpuCount: 2}]"});
    let id = app.create_record_with(&app.alice, gpu).await;
    app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    let capacity = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (status, body) = app.call("GET", "/kubernetes/capacity", &app.bob, None).await;
            assert_eq!(status, StatusCode::OK);
            if body
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["gpus"]["gpu-l"]["requested"] == 2)
            {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the GPU request shows");
    let nodes: Vec<&str> = capacity
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["worker-1", "worker-2", "worker-3"], "workers only");
    assert_eq!(
        capacity[0]["gpus"]["gpu-l"],
        json!({"resource": "nvidia.com/gpu", "allocatable": 4, "requested": 2, "free": 2})
    );
    assert_eq!(capacity[1]["gpus"]["gpu-xs"]["allocatable"], 7);
    assert_eq!(
        app.call("GET", "/kubernetes/capacity", "", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Per profile over the workers, with what the bookings active now reserve (alice's two);
    // bob sees the same figures, not whose they are.
    let (status, profiles) = app.call("GET", "/kubernetes/capacity/profiles", &app.bob, None).await;
    assert_eq!(status, StatusCode::OK);
    let allocatable: i64 = capacity.as_array().unwrap().iter().map(|n| n["gpus"]["gpu-l"]["allocatable"].as_i64().unwrap()).sum();
    assert_eq!(
        profiles["gpu-l"],
        json!({"resource": "nvidia.com/gpu", "allocatable": allocatable, "requested": 2, "free": allocatable - 2, "reserved": 2})
    );
    assert_eq!(profiles["gpu-xs"]["reserved"], 0);
}

async fn a_gpu_request_no_node_can_meet_says_why_in_the_status(backend) {
    let app = app_on(backend).await;
    app.book_today(&app.alice, &["gpu-m"; 4]).await;
    let id = app.create_record_with(&app.alice, json!({"data": "containers: [{name: big, image: trainer, gpu: nvidia.com/mig-3g.40gb, gpuCount: 2}]\nreplicas: 2"})).await;
    app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    // The first pod fits (worker-3 has two mig-3g.40gb slices), the second finds none left.
    let status = until(&app, &id, |s| {
        s["pods"][0]["containers"][0]["ready"] == true && s["pods"][1]["scheduling"].is_string()
    })
    .await;
    assert_eq!(status["pods"][1]["phase"], "Pending");
    let why = status["pods"][1]["scheduling"].as_str().unwrap();
    assert!(
        why.starts_with("waiting for a node with enough free nvidia.com/mig-3g.40gb"),
        "{why}"
    );
}

async fn yaml_that_does_not_parse_is_400_on_data(backend) {
    let app = app_on(backend).await;
    let id = app
        .create_record_with(&app.alice, json!({"data": "containers: [\n"}))
        .await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "VALIDATION_FAILED"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "data");
    assert_eq!(body["errors"][0]["extensions"]["type"], "syntax");
}

async fn an_admin_may_deploy_scale_and_delete_anyones_deployment(backend) {
    let app = app_on(backend).await;
    let id = app.create_record(&app.alice).await;
    assert_eq!(
        app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.admin, None)
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        app.call(
            "PATCH",
            &format!("/kubernetes/deployments/{id}?scale=0"),
            &app.admin,
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    let sets: Api<StatefulSet> = app.cluster().api();
    let sts = sets.get(&format!("sd-{id}")).await.unwrap();
    assert_eq!(
        sts.metadata.labels.unwrap()["llp.kitegg.de/owner"],
        app.state
            .embedded
            .as_ref()
            .unwrap()
            .authenticate(&app.alice)
            .unwrap()
            .id,
        "still alice's"
    );
    assert_eq!(
        app.call("DELETE", &format!("/kubernetes/deployments/{id}"), &app.admin, None)
            .await
            .0,
        StatusCode::OK
    );
}

async fn the_next_deploy_repairs_a_half_applied_deployment(backend) {
    let app = app_on(backend).await;
    let id = deploy_two_containers(&app).await;
    // Leave the deployment as a deploy that failed half-way would: one Service missing.
    let services: Api<Service> = app.cluster().api();
    services
        .delete(&format!("sd-{id}-api"), &Default::default())
        .await
        .unwrap();
    let (status, _) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut names: Vec<String> = services
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.metadata.name.unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [format!("sd-{id}-api"), format!("sd-{id}-web")]);
}

async fn a_dry_run_checks_what_a_deploy_checks_writes_nothing_and_says_where_pods_would_go(backend) {
    let app = app_on(backend).await;
    app.book_today(&app.alice, &["gpu-m", "gpu-m", "gpu-m", "gpu-m"]).await;
    // Two pods of two gpu-m each: the workers have two gpu-m, on worker-3.
    let training = |replicas: u32| {
        json!({"data": format!(
            "containers: [{{name: train, image: trainer, cpu: 1, memory: 1, gpu: nvidia.com/mig-3g.40gb, gpuCount: 2}}]\nreplicas: {replicas}"
        )})
    };
    let id = app.create_record_with(&app.alice, training(2)).await;
    let uri = format!("/kubernetes/deployments/{id}");
    let (status, preview) = app.call("PUT", &format!("{uri}?dryRun=true"), &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["dryRun"], true);
    assert_eq!(preview["spec"]["replicas"], 2);
    let workload = preview["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "StatefulSet")
        .expect("the StatefulSet as the API server's dry run answers it");
    assert_eq!(workload["metadata"]["name"], format!("sd-{id}"));
    assert_eq!(preview["placement"]["nodes"], json!(["worker-3"]), "{preview}");
    let waiting = preview["placement"]["waiting"].as_str().unwrap();
    assert!(waiting.starts_with("1 of 2 pods would wait (Pending) until GPUs are free: each needs 2 × nvidia.com/mig-3g.40gb"), "{waiting}");

    // Nothing was written: no workload, no admission.
    let (status, _) = app.call("GET", &uri, &app.alice, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not deployed");
    let namespace = &app.cluster().namespace;
    let sets = Api::<StatefulSet>::namespaced(app.admin_client(), namespace).list(&ListParams::default()).await.unwrap();
    assert!(sets.items.is_empty(), "no StatefulSet was made");
    let ledgers = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(app.admin_client(), namespace)
        .list(&ListParams::default().labels("llp.kitegg.de/ledger=admission"))
        .await
        .unwrap();
    assert!(ledgers.items.into_iter().all(|l| !l.data.unwrap_or_default().contains_key(&id)), "nothing admitted");

    // Not Bob's to preview; a refusal is the one the deploy gives; a bad flag names itself.
    let (status, _) = app.call("PUT", &format!("{uri}?dryRun=true"), &app.bob, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let over = app.create_record_with(&app.alice, training(3)).await;
    let (status, refused) = app.call("PUT", &format!("/kubernetes/deployments/{over}?dryRun=true"), &app.alice, None).await;
    assert_eq!((status, code(&refused)), (StatusCode::BAD_REQUEST, "NOT_ENOUGH_RESOURCES"), "{refused}");
    let (status, bad) = app.call("PUT", &format!("{uri}?dryRun=maybe"), &app.alice, None).await;
    assert_eq!((status, bad["errors"][0]["extensions"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("dryRun")));
    // A proposed record in the body is tried instead of the stored one; a malformed one names its field.
    let proposed = json!({"data": "containers: [{name: web, image: nginx, cpu: 1000}]"});
    let (status, refused) = app.call("PUT", &format!("{uri}?dryRun=true"), &app.alice, Some(proposed)).await;
    assert_eq!(
        (status, refused["errors"][0]["extensions"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("containers[0].cpu")),
        "{refused}"
    );
    let (status, bad) = app.call("PUT", &format!("{uri}?dryRun=true"), &app.alice, Some(json!({"data": 7}))).await;
    assert_eq!((status, bad["errors"][0]["extensions"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("data")), "{bad}");

    // No real deploy here: the testbed's two gpu-m slices are shared by every test.
}
}

/// The Kubernetes API requests the service has made so far but its caches' watches.
async fn requests_but_watches(app: &crate::helpers::TestApp) -> u64 {
    let (_, text) = app.raw("GET", "/metrics", "").await;
    text.lines()
        .filter(|l| l.starts_with("llp_k8s_kube_api_requests_total{") && !l.contains("verb=\"watch\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
