//! Records deleted in the LLP itself (a real Directus): the orphan reconciler finds their
//! deployments with the service token and removes them, and a record made later with the same
//! id starts with fresh volumes, never the earlier record's.

use crate::helpers::{TestApp, app_with_cluster};
use crate::llp_api::{Role, llp_api};
use axum::http::StatusCode;
use k8s_openapi::api::apps::v1::StatefulSet;
use llp_k8s::orphans::OrphanSettings;
use llp_k8s::records::Token;
use llp_k8s::records::directus::{DirectusConfig, DirectusSource};
use llp_spec::names::RECORD_CREATED_ANNOTATION;
use serde_json::{Value, json};
use std::sync::Arc;

const WITH_VOLUME: &str = "containers: [{name: web, image: nginx, volumeMounts: [{name: data, mountPath: /data}]}]\n\
                           volumes: [{name: data, size: 1Gi}]";

async fn app(service_token: Option<&str>) -> TestApp {
    let config = DirectusConfig {
        url: llp_api().url.clone(),
        service_token: service_token.map(Token::new),
        ..DirectusConfig::default()
    };
    app_with_cluster()
        .await
        .with_records(Arc::new(DirectusSource::new(config).unwrap()))
}

/// Deploys record `id` as the holder of `token`, expecting `answer` (201 made, 200 changed);
/// the status once its pod runs on a bound claim.
async fn deploy(app: &TestApp, token: &str, id: &str, answer: StatusCode) -> Value {
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), token, None)
        .await;
    assert_eq!(status, answer, "{body}");
    app.status_until(id, token, |s| {
        s["pods"][0]["phase"] == "Running" && s["volumes"][0]["phase"] == "Bound"
    })
    .await
}

/// The uid of the deployment's first claim, as the cluster has it.
async fn claim_uid(app: &TestApp, id: &str) -> String {
    let claims: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = app.cluster().api();
    let claim = claims.get(&format!("data-sd-{id}-0")).await.unwrap();
    claim.metadata.uid.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_deleted_in_the_llp_loses_its_deployment_to_the_reconciler() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let bob = api.add_user("bob", Role::Student).await;
    let service = api.add_user("llp-k8s", Role::Service).await;
    let app = app(Some(&service)).await;
    let gone = api
        .create_record(&alice, json!({"title": "gone", "data": WITH_VOLUME}))
        .await;
    let kept = api
        .create_record(&bob, json!({"title": "kept", "data": WITH_VOLUME}))
        .await;
    deploy(&app, &alice, &gone, StatusCode::CREATED).await;
    deploy(&app, &bob, &kept, StatusCode::CREATED).await;
    api.delete_record(&alice, &gone).await;

    let reconciler = app.orphan_reconciler(
        "directus-orphans",
        OrphanSettings {
            grace_seconds: 0,
            ..OrphanSettings::default()
        },
    );
    let round = reconciler.round().await.unwrap().expect("it holds the lease");
    assert_eq!(round.removed, std::slice::from_ref(&gone), "{:?}", round.survey);
    let sets: kube::Api<StatefulSet> = app.cluster().api();
    assert!(sets.get_opt(&format!("sd-{gone}")).await.unwrap().is_none());
    let status = app
        .status_until(&kept, &bob, |s| s["pods"][0]["phase"] == "Running")
        .await;
    assert_eq!(
        status["volumes"][0]["phase"], "Bound",
        "bob's deployment is untouched: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_service_token_only_an_admins_listing_can_look() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let app = app(None).await;
    let reconciler = app.orphan_reconciler("no-token", OrphanSettings::default());
    let error = reconciler.round().await.unwrap_err().to_string();
    assert!(
        error.contains("records.directus.service_token (LLP_SERVICE_TOKEN)"),
        "{error}"
    );
    let (status, body) = app.call("GET", "/kubernetes/orphans", &alice, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_made_later_with_the_same_id_starts_with_fresh_volumes() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let app = app(None).await;
    let id = uuid::Uuid::new_v4().to_string();
    let record = json!({"id": id, "title": "first", "data": WITH_VOLUME});
    assert_eq!(api.create_record(&alice, record.clone()).await, id);
    deploy(&app, &alice, &id, StatusCode::CREATED).await;
    let first_claim = claim_uid(&app, &id).await;
    let sets: kube::Api<StatefulSet> = app.cluster().api();
    let stamp = |set: StatefulSet| {
        set.metadata
            .annotations
            .unwrap_or_default()
            .get(RECORD_CREATED_ANNOTATION)
            .cloned()
    };
    let first_stamp = stamp(sets.get(&format!("sd-{id}")).await.unwrap()).expect("stamped with date_created");

    // Deleted in the LLP, then made again with the same id (a restore, an id set by hand).
    api.delete_record(&alice, &id).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // a later date_created
    assert_eq!(api.create_record(&alice, record).await, id);
    deploy(&app, &alice, &id, StatusCode::CREATED).await;
    assert_ne!(
        claim_uid(&app, &id).await,
        first_claim,
        "a fresh claim, not the earlier record's"
    );
    let second_stamp = stamp(sets.get(&format!("sd-{id}")).await.unwrap()).unwrap();
    assert_ne!(second_stamp, first_stamp);

    // A deploy of the same record again keeps its volume.
    let second_claim = claim_uid(&app, &id).await;
    deploy(&app, &alice, &id, StatusCode::OK).await;
    assert_eq!(claim_uid(&app, &id).await, second_claim);
}
