//! GPU usage kept in the LLP API's `gpu_usage` collection, written and read with the service
//! token: what the accountant writes twice is one item; an ended hold keeps its end; users
//! read their own usage through the route, the admin everyone's.

use crate::helpers::app_with_cluster;
use crate::llp_api::{Role, llp_api};
use axum::http::StatusCode;
use jiff::Timestamp;
use llp_k8s::records::directus::{DirectusConfig, DirectusSource};
use llp_k8s::records::{Token, UsageStore};
use llp_spec::usage::Hold;
use std::sync::Arc;

fn hold(uid: &str, owner: &str, (start, end): (&str, Option<&str>), seen: &str) -> Hold {
    Hold {
        pod_uid: uid.into(),
        pod: "sd-1-0".into(),
        deployment: "1".into(),
        owner: llp_spec::names::label_value(owner),
        gpu: llp_spec::spec::Gpu::Mig1g10gb,
        count: 1,
        start: start.parse().unwrap(),
        end: end.map(|e| e.parse().unwrap()),
        seen: seen.parse().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_kept_in_the_llps_collection_once_and_read_back_for_its_owner() {
    let api = llp_api();
    let (alice, bob, service) = (
        api.add_user("usage-alice", Role::Student).await,
        api.add_user("usage-bob", Role::Student).await,
        api.add_user("usage-service", Role::Service).await,
    );
    let (alice_id, bob_id) = (api.user_id(&alice).await, api.user_id(&bob).await);
    let source = Arc::new(
        DirectusSource::new(DirectusConfig {
            url: api.url.clone(),
            service_token: Some(Token::new(service)),
            ..DirectusConfig::default()
        })
        .unwrap(),
    );
    // A window of this test's own (the Directus is shared by the test process), in the past:
    // nothing is counted beyond now.
    let (start, seen, end) = ("2001-05-01T10:00:00Z", "2001-05-01T10:20:00Z", "2001-05-01T10:30:00Z");
    let uid = format!("pod-{}", uuid_like());
    let running = hold(&uid, &alice_id, (start, None), seen);
    source.record(std::slice::from_ref(&running)).await.unwrap();
    source.record(std::slice::from_ref(&running)).await.unwrap();
    let open: Vec<Hold> = source
        .open_holds()
        .await
        .unwrap()
        .into_iter()
        .filter(|h| h.pod_uid == uid)
        .collect();
    assert_eq!(open, std::slice::from_ref(&running), "written twice, one item");
    // It ends; a later write of it open (a replica a step behind) does not reopen it.
    let ended = hold(&uid, &alice_id, (start, Some(end)), end);
    source.record(std::slice::from_ref(&ended)).await.unwrap();
    source.record(&[running]).await.unwrap();
    let window: (Timestamp, Timestamp) = (
        "2001-05-01T00:00:00Z".parse().unwrap(),
        "2001-05-02T00:00:00Z".parse().unwrap(),
    );
    let bobs = hold(&format!("{uid}-b"), &bob_id, (start, Some("2001-05-01T11:00:00Z")), end);
    source.record(&[bobs]).await.unwrap();
    let stored = source.holds_between(window.0, window.1).await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.contains(&ended), "{stored:?}");

    let app = app_with_cluster().await.with_records(source.clone());
    let mut app = app;
    app.state.usage.store = Some(source);
    let query = "/kubernetes/usage?from=2001-05-01&to=2001-05-02&by=user";
    let (status, mine) = app.call("GET", query, &alice, None).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(
        mine["data"],
        serde_json::json!([{"key": alice_id, "gpuSeconds": 1800.0}])
    );
    let (_, admins) = app.call("GET", query, &api.admin_token, None).await;
    let keys: Vec<&str> = admins["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&alice_id.as_str()) && keys.contains(&bob_id.as_str()),
        "{admins}"
    );
}

fn uuid_like() -> String {
    format!("{}-{:?}", std::process::id(), std::time::Instant::now()).replace(|c: char| !c.is_ascii_alphanumeric(), "")
}
