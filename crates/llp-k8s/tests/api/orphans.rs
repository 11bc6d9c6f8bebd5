//! Deployments whose record vanished behind the service's back (deleted in the LLP itself):
//! listed for admins, removed by the orphan reconciler after the grace period, never another
//! user's; and a record made later with the same id never gets the earlier one's volumes.

use crate::helpers::{Backend, TestApp, app_on};
use axum::http::StatusCode;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use llp_k8s::orphans::OrphanSettings;
use serde_json::{Value, json};
use std::time::Duration;

/// A web app with a per-replica volume and a hostname.
fn web(hostname: &str) -> Value {
    json!({"title": "web", "exposed_service": "web", "exposed_port": 80, "exposed_hostname": hostname,
           "data": "containers: [{name: web, image: nginx, ports: [{name: http, port: 80}], \
                    volumeMounts: [{name: data, mountPath: /data}]}]\nvolumes: [{name: data, size: 1Gi}]"})
}

async fn deploy(app: &TestApp, token: &str, body: Value) -> String {
    let id = app.create_record_with(token, body).await;
    let (status, answer) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), token, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    app.status_until(&id, token, |s| s["pods"][0]["phase"] == "Running")
        .await;
    id
}

/// How many objects of `K` carry the deployment label `id`.
async fn labelled<K>(app: &TestApp, id: &str) -> usize
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let api: Api<K> = app.cluster().api();
    let selector = ListParams::default().labels(&format!("llp.kitegg.de/deployment={id}"));
    api.list_metadata(&selector).await.unwrap().items.len()
}

/// Waits until nothing of deployment `id` is left in the cluster.
async fn until_gone(app: &TestApp, id: &str) {
    let base = format!("sd-{id}");
    tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let sets: Api<StatefulSet> = app.cluster().api();
            let secrets: Api<Secret> = app.cluster().api();
            let left = labelled::<PersistentVolumeClaim>(app, id).await
                + labelled::<Ingress>(app, id).await
                + labelled::<ConfigMap>(app, id).await
                + usize::from(sets.get_opt(&base).await.unwrap().is_some())
                + usize::from(secrets.get_opt(&base).await.unwrap().is_some());
            if left == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the orphan's objects are removed");
}

crate::on_both_backends! {
    async fn a_deployment_whose_record_vanished_is_listed_then_removed_after_its_grace_period(backend) {
        let app = app_on(backend).await;
        let gone = deploy(&app, &app.alice, web(&format!("orphan-{}", backend_name(backend)))).await;
        let (status, _) = app
            .call("PUT", &format!("/kubernetes/deployments/{gone}/secret"), &app.alice, Some(json!({"KEY": "v"})))
            .await;
        assert_eq!(status, StatusCode::OK);
        let kept = deploy(&app, &app.bob, web(&format!("kept-{}", backend_name(backend)))).await;
        app.forget_record(&gone);
        // The inventory reads its lists a page at a time: pages of one find the same.
        let inventory = llp_k8s::orphans::reconciler::inventory(app.cluster()).await.unwrap();
        assert!(inventory.len() >= 2, "{inventory:?}");
        let paged = llp_k8s::orphans::reconciler::inventory_in_pages(app.cluster(), 1).await.unwrap();
        assert_eq!(paged, inventory);

        // Only admins may list; the listing names what is left and when it goes.
        for user in [&app.alice, &app.bob] {
            let (status, body) = app.call("GET", "/kubernetes/orphans", user, None).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        }
        let (status, listing) = app.call("GET", "/kubernetes/orphans", &app.admin, None).await;
        assert_eq!(status, StatusCode::OK, "{listing}");
        assert_eq!(listing["orphans"].as_array().unwrap().len(), 1, "{listing}");
        let orphan = &listing["orphans"][0];
        assert_eq!(orphan["deployment"], gone.as_str());
        assert_eq!(orphan["base"], format!("sd-{gone}"));
        assert_eq!(orphan["owner"], app.user_id(&app.alice));
        let objects: Vec<&str> = orphan["objects"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
        for object in [format!("StatefulSet sd-{gone}"), format!("Secret sd-{gone}"), format!("PersistentVolumeClaim data-sd-{gone}-0")] {
            assert!(objects.contains(&object.as_str()), "{object} in {objects:?}");
        }
        assert_eq!(orphan["due"], false, "not before the grace period: {listing}");

        // Within the grace period, and in a dry run, nothing is removed.
        let patient = app.orphan_reconciler("orphans-test", OrphanSettings { grace_seconds: 3600, ..OrphanSettings::default() });
        let round = patient.round().await.unwrap().expect("it holds the lease");
        assert!(round.removed.is_empty());
        assert!(!round.survey.orphans[0].due);
        let dry = app.orphan_reconciler("orphans-test", OrphanSettings { grace_seconds: 0, dry_run: true, ..OrphanSettings::default() });
        let round = dry.round().await.unwrap().expect("it holds the lease");
        assert!(round.removed.is_empty());
        assert!(round.survey.orphans[0].due);
        assert_eq!(labelled::<PersistentVolumeClaim>(&app, &gone).await, 1, "a dry run keeps everything");

        // Past the grace period: removed, as DELETE would, and only that deployment.
        let reconciler = app.orphan_reconciler("orphans-test", OrphanSettings { grace_seconds: 0, ..OrphanSettings::default() });
        let round = reconciler.round().await.unwrap().expect("it holds the lease");
        assert_eq!(round.removed, std::slice::from_ref(&gone));
        until_gone(&app, &gone).await;
        let status = app.status_until(&kept, &app.bob, |s| s["pods"][0]["phase"] == "Running").await;
        assert_eq!(status["volumes"][0]["phase"], "Bound", "{status}");
        let round = reconciler.round().await.unwrap().expect("it holds the lease");
        assert!(round.survey.orphans.is_empty(), "{:?}", round.survey);

        // Its hostname is free again.
        let again = app.create_record_with(&app.bob, web(&format!("orphan-{}", backend_name(backend)))).await;
        let (status, body) = app.call("PUT", &format!("/kubernetes/deployments/{again}"), &app.bob, None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sim => "sim",
        Backend::Real => "real",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn most_deployments_vanishing_at_once_removes_none() {
    let app = crate::helpers::app_with_cluster().await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let body = json!({"data": "containers: [{name: web, image: nginx}]"});
        ids.push(deploy(&app, &app.alice, body).await);
    }
    for id in &ids[..3] {
        app.forget_record(id);
    }
    let reconciler = app.orphan_reconciler(
        "held",
        OrphanSettings {
            grace_seconds: 0,
            ..OrphanSettings::default()
        },
    );
    let round = reconciler.round().await.unwrap().expect("it holds the lease");
    assert!(round.removed.is_empty());
    let held = round.survey.held.expect("held back");
    assert!(held.contains("3 of 4 deployments"), "{held}");
    let (_, listing) = app.call("GET", "/kubernetes/orphans", &app.admin, None).await;
    assert_eq!(listing["held"], held.as_str(), "the listing says why too");
}
