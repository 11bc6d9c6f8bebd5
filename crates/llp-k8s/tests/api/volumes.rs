//! Shared (`ReadWriteMany`) volumes on the simulator: one claim per owner and volume name,
//! mounted by every deployment of that owner that declares it, never by another owner's, and
//! deleted with the last deployment that declared it.

use crate::helpers::{TestApp, app_with_cluster, code, pod_names};
use axum::http::StatusCode;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// A deployment mounting `volume` shared, of `size`.
fn shared(volume: &str, size: &str) -> Value {
    json!({"title": "shared", "data": format!(
        "containers: [{{name: app, image: nginx, volumeMounts: [{{name: {volume}, mountPath: /data, type: ReadWriteMany}}]}}]\n\
         volumes: [{{name: {volume}, size: {size}}}]\nreplicas: 2\n"
    )})
}

async fn deploy(app: &TestApp, token: &str, body: Value) -> String {
    let id = app.create_record_with(token, body).await;
    let (status, json) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), token, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    id
}

/// The status once every pod runs and the shared claim is bound; returns the claim's name.
async fn bound_claim(app: &TestApp, id: &str, token: &str) -> String {
    let status = app
        .status_until(id, token, |s| {
            s["pods"]
                .as_array()
                .is_some_and(|p| p.len() == 2 && p.iter().all(|p| p["phase"] == "Running"))
                && s["volumes"][0]["phase"] == "Bound"
        })
        .await;
    let volumes = status["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 1, "one claim for both replicas: {status}");
    assert_eq!(
        (&volumes[0]["name"], &volumes[0]["type"], &volumes[0]["shared"]),
        (&json!("data"), &json!("ReadWriteMany"), &json!(true)),
        "{status}"
    );
    volumes[0]["claim"].as_str().unwrap().to_owned()
}

fn claims(app: &TestApp) -> Api<PersistentVolumeClaim> {
    Api::namespaced(app.admin_client(), &app.cluster().namespace)
}

async fn claim_exists(app: &TestApp, name: &str) -> bool {
    claims(app)
        .get_opt(name)
        .await
        .unwrap()
        .is_some_and(|c| c.metadata.deletion_timestamp.is_none())
}

crate::on_both_backends! {
async fn deployments_of_one_owner_share_a_volume_and_another_owner_gets_their_own(backend) {
    let app = crate::helpers::app_on(backend).await;
    let first = deploy(&app, &app.alice, shared("data", "1Gi")).await;
    let second = deploy(&app, &app.alice, shared("data", "1Gi")).await;
    let bobs = deploy(&app, &app.bob, shared("data", "1Gi")).await;
    let alices_claim = bound_claim(&app, &first, &app.alice).await;
    assert_eq!(bound_claim(&app, &second, &app.alice).await, alices_claim);
    let bobs_claim = bound_claim(&app, &bobs, &app.bob).await;
    assert_ne!(bobs_claim, alices_claim, "same volume name, other owner: another claim");

    // The pods of both deployments mount the one claim.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(app.admin_client(), &app.cluster().namespace);
    let mounting = pods
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.spec.iter().flat_map(|s| s.volumes.iter().flatten()).any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == alices_claim)
            })
        })
        .count();
    assert_eq!(mounting, 4, "two replicas of two deployments");

    // Bob cannot delete what Alice shares; deleting one of Alice's keeps it for the other.
    let (status, _) = app
        .call("DELETE", &format!("/kubernetes/deployments/{first}"), &app.bob, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .call("DELETE", &format!("/kubernetes/deployments/{first}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(claim_exists(&app, &alices_claim).await, "still declared by the second");
    bound_claim(&app, &second, &app.alice).await;

    // The last one takes it along; Bob's stays.
    let (status, body) = app
        .call("DELETE", &format!("/kubernetes/deployments/{second}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !claim_exists(&app, &alices_claim).await,
        "deleted with its last deployment"
    );
    assert!(claim_exists(&app, &bobs_claim).await);
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_of_the_shared_name_that_is_not_the_owners_is_never_mounted() {
    let app = app_with_cluster().await;
    let alice = app.user_id(&app.alice);
    let name = llp_spec::names::shared_claim("sd-", &alice, "data");
    // Made by someone else (an administrator, another tool) under the name Alice's would get.
    let squatter: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"llp.kitegg.de/owner": "someone-else", "llp.kitegg.de/shared-volume": "data"}},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    claims(&app).create(&PostParams::default(), &squatter).await.unwrap();
    let id = app.create_record_with(&app.alice, shared("data", "1Gi")).await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "CONFLICT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "volumes", "{body}");
    let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(app.admin_client(), &app.cluster().namespace);
    assert!(
        sets.list(&Default::default()).await.unwrap().items.is_empty(),
        "nothing that mounts it was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_that_fails_after_claiming_a_hostname_gives_it_back() {
    let app = app_with_cluster().await;
    let alice = app.user_id(&app.alice);
    // A claim under the name Alice's shared volume would get stops her deploy at the apply,
    // after the hostname was claimed.
    let squatter: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": llp_spec::names::shared_claim("sd-", &alice, "data"), "labels": {"llp.kitegg.de/owner": "someone-else"}},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    claims(&app).create(&PostParams::default(), &squatter).await.unwrap();
    let mut alices = shared("data", "1Gi");
    alices["data"] = json!(format!(
        "{}\n",
        alices["data"]
            .as_str()
            .unwrap()
            .replace("volumeMounts", "ports: [{name: http, port: 80}], volumeMounts")
    ));
    alices["exposed_service"] = json!("app");
    alices["exposed_port"] = json!(80);
    alices["exposed_hostname"] = json!("wanted");
    let id = app.create_record_with(&app.alice, alices).await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["field"].as_str()),
        (StatusCode::CONFLICT, Some("volumes")),
        "{body}"
    );
    let bobs = json!({"data": "containers: [{name: web, image: nginx, ports: [{name: http, port: 80}]}]",
        "exposed_service": "web", "exposed_port": 80, "exposed_hostname": "wanted"});
    let bob = app.create_record_with(&app.bob, bobs).await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{bob}"), &app.bob, None)
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a record that never ran holds no hostname: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_name_shared_by_one_and_per_replica_in_another_deployment_are_two_volumes() {
    let app = app_with_cluster().await;
    let shared_id = deploy(&app, &app.alice, shared("data", "1Gi")).await;
    let own = json!({"title": "own", "data":
        "containers: [{name: app, image: nginx, volumeMounts: [{name: data, mountPath: /data}]}]\nvolumes: [{name: data, size: 1Gi}]\n"});
    let own_id = deploy(&app, &app.alice, own).await;
    let shared_claim = bound_claim(&app, &shared_id, &app.alice).await;
    let status = app
        .status_until(&own_id, &app.alice, |s| s["volumes"][0]["phase"] == "Bound")
        .await;
    assert_eq!(status["volumes"][0]["type"], "ReadWriteOnce", "{status}");
    assert_eq!(status["volumes"][0]["shared"], false, "{status}");
    assert_ne!(status["volumes"][0]["claim"], json!(shared_claim));
    // Deleting the per-replica one leaves the shared claim alone.
    let (status, _) = app
        .call("DELETE", &format!("/kubernetes/deployments/{own_id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(claim_exists(&app, &shared_claim).await);
}

/// Two replicas with a per-replica volume `data` and a shared one `shared`, both of `size`.
fn growing(size: &str) -> String {
    format!(
        "containers: [{{name: app, image: nginx, cpu: 1, memory: 1, volumeMounts: [{{name: data, mountPath: /data}}, \
         {{name: shared, mountPath: /shared, type: ReadWriteMany}}]}}]\n\
         volumes: [{{name: data, size: {size}}}, {{name: shared, size: {size}}}]\nreplicas: 2\n"
    )
}

crate::on_both_backends! {
async fn a_larger_size_grows_the_claims_in_place_and_a_smaller_one_is_refused(backend) {
    let app = crate::helpers::app_on(backend).await;
    let id = deploy(&app, &app.alice, json!({"data": growing("1Gi")})).await;
    let deployment = format!("/kubernetes/deployments/{id}");
    let all_at = |size: &'static str, claims: usize| {
        move |s: &Value| {
            let volumes = s["volumes"].as_array().unwrap();
            volumes.len() == claims && volumes.iter().all(|v| v["phase"] == "Bound" && v["capacity"] == size)
                && s["pods"].as_array().unwrap().iter().all(|p| p["phase"] == "Running")
                && s["readyReplicas"] == s["replicas"]
        }
    };
    let before = app.status_until(&id, &app.alice, all_at("1Gi", 3)).await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(app.admin_client(), &app.cluster().namespace);
    let uids = |names: Vec<String>| {
        let pods = pods.clone();
        async move {
            let mut uids = Vec::new();
            for name in names {
                uids.push(pods.get(&name).await.unwrap().metadata.uid.unwrap());
            }
            uids
        }
    };
    let running = uids(pod_names(&before)).await;

    app.call("PATCH", &format!("/items/deployments/{id}"), &app.alice, Some(json!({"data": growing("2Gi")}))).await;
    let (status, body) = app.call("PUT", &deployment, &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = app.status_until(&id, &app.alice, all_at("2Gi", 3)).await;
    for volume in after["volumes"].as_array().unwrap() {
        assert_eq!(volume["requested"], "2Gi", "{after}");
    }
    assert_eq!(uids(pod_names(&after)).await, running, "the pods kept running: {after}");

    // New replicas get the new size: the StatefulSet's claim templates say 2Gi now.
    let (status, body) = app.call("PATCH", &format!("{deployment}?scale=3"), &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.status_until(&id, &app.alice, all_at("2Gi", 4)).await;

    // Smaller is refused, naming the current size, and changes nothing.
    app.call("PATCH", &format!("/items/deployments/{id}"), &app.alice, Some(json!({"data": growing("1Gi")}))).await;
    let (status, body) = app.call("PUT", &deployment, &app.alice, None).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "VALIDATION_FAILED"), "{body}");
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["extensions"]["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["volumes[0].size", "volumes[1].size"], "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("current size, 2Gi"), "{body}");
    let (_, status) = app.call("GET", &deployment, &app.alice, None).await;
    assert!(all_at("2Gi", 4)(&status), "{status}");
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_may_name_the_owners_existing_claim_as_upstream_allowed_and_no_one_elses() {
    let app = app_with_cluster().await;
    let first = json!({"data": "containers: [{name: app, image: nginx, volumeMounts: [{name: data, mountPath: /data}]}]\nvolumes: [{name: data, size: 1Gi}]\n"});
    let first = deploy(&app, &app.alice, first).await;
    let status = app
        .status_until(&first, &app.alice, |s| s["volumes"][0]["phase"] == "Bound")
        .await;
    let claim = status["volumes"][0]["claim"].as_str().unwrap().to_owned();
    assert_eq!(claim, format!("data-sd-{first}-0"));
    let mounting = json!({"data": format!("containers: [{{name: app, image: nginx, volumeMounts: [{{name: {claim}, mountPath: /theirs}}]}}]\n")});

    // Alice's own claim: mounted as it is.
    let second = deploy(&app, &app.alice, mounting.clone()).await;
    let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(app.admin_client(), &app.cluster().namespace);
    let sts = sets.get(&format!("sd-{second}")).await.unwrap();
    let volumes = sts.spec.unwrap().template.spec.unwrap().volumes.unwrap();
    assert_eq!(volumes[0].persistent_volume_claim.as_ref().unwrap().claim_name, claim);

    // Bob's deployment naming it gets the unknown-volume answer, as for any missing name.
    let id = app.create_record_with(&app.bob, mounting).await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.bob, None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "containers[0].volumeMounts[0].name",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["type"], "unknown_reference", "{body}");
    let unknown = json!({"data": "containers: [{name: app, image: nginx, volumeMounts: [{name: data-sd-nothing-0, mountPath: /theirs}]}]\n"});
    let id = app.create_record_with(&app.bob, unknown).await;
    let (_, missing) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.bob, None)
        .await;
    let message = |b: &Value| {
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .replace(&claim, "data-sd-nothing-0")
    };
    assert_eq!(
        message(&body),
        message(&missing),
        "indistinguishable from a missing claim"
    );
}
