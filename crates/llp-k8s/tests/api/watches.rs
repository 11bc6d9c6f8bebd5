//! The watch caches survive what a real API server does to watches: it restarts, and etcd's
//! history is compacted meanwhile, so resuming from the last resourceVersion gets 410 Gone.
//! The caches must list again and stay correct. Real control plane only (a testbed of its
//! own, since its API server is restarted).

use crate::helpers::app_with_testbed_of;
use axum::http::StatusCode;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, DeleteParams};
use serde_json::json;
use std::time::Duration;

/// The service's list requests so far (reflectors list on start and after a 410).
async fn lists(app: &crate::helpers::TestApp) -> u64 {
    let (_, text) = app.raw("GET", "/metrics", "").await;
    text.lines()
        .filter(|l| l.starts_with("llp_k8s_kube_api_requests_total{") && l.contains("verb=\"list\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_list_again_after_a_compacted_resume_and_stay_correct() {
    let mut testbed = tokio::task::spawn_blocking(|| llp_testbed::Testbed::up(llp_testbed::Options::default()))
        .await
        .unwrap()
        .expect("a control plane of its own");
    let app = app_with_testbed_of(&testbed).await;
    let id = app.create_record(&app.alice).await;
    let deployment = format!("/kubernetes/deployments/{id}");
    assert_eq!(
        app.call("PUT", &deployment, &app.alice, None).await.0,
        StatusCode::CREATED
    );
    let listed_before = lists(&app).await;

    // A write no cache watches, just before the compaction: every watch's resourceVersion is
    // then older than what survives it (a bookmark a moment earlier could otherwise have
    // brought one up to the compacted revision, and its resume would not need a list).
    let marker: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "before-compaction"}})).unwrap();
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(crate::testbed::admin_of(&testbed), "default")
        .create(&Default::default(), &marker)
        .await
        .unwrap();
    let mut testbed = tokio::task::spawn_blocking(move || {
        testbed.compact_etcd().expect("etcd compacts");
        testbed.restart_apiserver().expect("the API server comes back");
        testbed
    })
    .await
    .unwrap();
    // Behind the service's back, the deployment's StatefulSet goes.
    let admin = crate::testbed::admin_of(&testbed);
    Api::<StatefulSet>::namespaced(admin, &app.cluster().namespace)
        .delete(&format!("sd-{id}"), &DeleteParams::default())
        .await
        .unwrap();

    let gone = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let (status, body) = app.call("GET", &deployment, &app.alice, None).await;
            if status == StatusCode::NOT_FOUND {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the caches see the deletion after the API server's restart");
    assert!(
        gone["errors"][0]["message"].as_str().unwrap().contains("not deployed"),
        "{gone}"
    );
    assert!(
        lists(&app).await > listed_before,
        "the caches listed again (410 Gone on resume)"
    );
    assert_eq!(
        app.call("GET", "/readyz", "", None).await.0,
        StatusCode::OK,
        "ready again: {}",
        json!(null)
    );
    tokio::task::spawn_blocking(move || testbed.stop()).await.unwrap();
}
