//! GPU reservations from a real Directus (the LLP API) with `gpu_reservations` and its
//! junction as the LLP has them: admission reads them with the caller's token, the
//! reconciler and the capacity with the service's.

use crate::helpers::{TestApp, app_with_cluster, code};
use crate::llp_api::{Role, llp_api};
use axum::http::StatusCode;
use k8s_openapi::api::apps::v1::StatefulSet;
use llp_k8s::records::Token;
use llp_k8s::records::directus::{DirectusConfig, DirectusSource};
use llp_k8s::reservations::Clock;
use llp_k8s::reservations::reconciler::Reconciler;
use serde_json::{Value, json};
use std::sync::Arc;

const SMALL_GPU: &str = "containers: [{name: train, image: trainer, gpu: nvidia.com/mig-1g.10gb}]";

fn at(time: &str) -> jiff::Timestamp {
    time.parse().unwrap()
}

/// An app on a simulator reading the shared Directus, with `service_token`, judging bookings
/// at `now`.
async fn app_at(now: &str, service_token: Option<&str>) -> (TestApp, Clock) {
    let config = DirectusConfig {
        url: llp_api().url.clone(),
        service_token: service_token.map(Token::new),
        ..DirectusConfig::default()
    };
    let mut app = app_with_cluster()
        .await
        .with_records(Arc::new(DirectusSource::new(config).unwrap()));
    let clock = app.set_clock(now);
    (app, clock)
}

async fn deploy(app: &TestApp, token: &str, id: &str) -> (StatusCode, Value) {
    app.call("PUT", &format!("/kubernetes/deployments/{id}"), token, None)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_reads_the_llps_bookings_with_the_callers_token() {
    let api = llp_api();
    let (alice, bob, carol) = (
        api.add_user("alice", Role::Student).await,
        api.add_user("bob", Role::Student).await,
        api.add_user("carol", Role::Student).await,
    );
    // A window of this test's own (the Directus is shared by the test process).
    let (start, end) = ("2098-03-01T10:00:00Z", "2098-03-01T18:00:00Z");
    let (app, _) = app_at("2098-03-01T12:00:00Z", None).await;
    api.book(json!(["gpu-xs"]), start, end, None, &[api.user_id(&alice).await])
        .await;
    let alices = api
        .create_record(&alice, json!({"title": "t", "data": SMALL_GPU}))
        .await;
    let (status, body) = deploy(&app, &alice, &alices).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Alice's booking is not bob's; one naming his deployment (booked for nobody) is.
    let bobs = api.create_record(&bob, json!({"title": "t", "data": SMALL_GPU})).await;
    let (status, body) = deploy(&app, &bob, &bobs).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "NOT_ENOUGH_RESOURCES"),
        "{body}"
    );
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("cover 0"),
        "{body}"
    );
    api.book(json!(["gpu-xs"]), start, end, Some(&bobs), &[]).await;
    let (status, body) = deploy(&app, &bob, &bobs).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // A booking the service cannot read (an unknown profile) is left out, not an error.
    api.book(json!(["gpu-xl"]), start, end, None, &[api.user_id(&carol).await])
        .await;
    let carols = api
        .create_record(&carol, json!({"title": "t", "data": SMALL_GPU}))
        .await;
    let (status, body) = deploy(&app, &carol, &carols).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "NOT_ENOUGH_RESOURCES"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_reads_every_booking_with_the_service_token_and_stops_at_the_end() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let bob = api.add_user("bob", Role::Student).await;
    let service = api.add_user("llp-k8s", Role::Service).await;
    let (start, end) = ("2099-05-01T10:00:00Z", "2099-05-01T18:00:00Z");
    let (app, clock) = app_at("2099-05-01T12:00:00Z", Some(&service)).await;
    api.book(
        json!(["gpu-xs", "gpu-xs"]),
        start,
        end,
        None,
        &[api.user_id(&alice).await],
    )
    .await;
    let id = api
        .create_record(&alice, json!({"title": "t", "data": SMALL_GPU}))
        .await;
    assert_eq!(deploy(&app, &alice, &id).await.0, StatusCode::CREATED);

    // Bob may not read alice's booking, but the capacity counts it (the service's token).
    // `requested` counts the pod, which the cluster makes just after the deploy returns.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (status, profiles) = loop {
        let (status, profiles) = app.call("GET", "/kubernetes/capacity/profiles", &bob, None).await;
        if profiles["gpu-xs"]["requested"].as_i64() == Some(1) || std::time::Instant::now() > deadline {
            break (status, profiles);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status, StatusCode::OK, "{profiles}");
    assert_eq!(
        (
            profiles["gpu-xs"]["reserved"].as_i64(),
            profiles["gpu-xs"]["requested"].as_i64()
        ),
        (Some(2), Some(1))
    );

    let reconciler = Reconciler::new(
        app.state.records.clone(),
        app.cluster().clone(),
        app.state.reservations.clone(),
        "directus-test",
    );
    let pass = reconciler.round().await.unwrap().unwrap();
    assert_eq!(pass.annotated, [format!("sd-{id}")]);
    clock.set(at(end));
    let pass = reconciler.round().await.unwrap().unwrap();
    assert_eq!(pass.stopped, [format!("sd-{id}")]);
    let sts = app
        .cluster()
        .api::<StatefulSet>()
        .get(&format!("sd-{id}"))
        .await
        .unwrap();
    assert_eq!(sts.spec.unwrap().replicas, Some(0));
    let status = app.status_until(&id, &alice, |s| s["stopped"].is_string()).await;
    assert!(
        status["stopped"]
            .as_str()
            .unwrap()
            .contains("reservation ended at 1 May 18:00 UTC"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_service_token_the_reconciler_says_which_setting_it_needs() {
    let (app, _) = app_at("2099-06-01T12:00:00Z", None).await;
    let reconciler = Reconciler::new(
        app.state.records.clone(),
        app.cluster().clone(),
        app.state.reservations.clone(),
        "no-token",
    );
    let error = reconciler.round().await.unwrap_err().to_string();
    assert!(
        error.contains("records.directus.service_token (LLP_SERVICE_TOKEN)"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_course_booking_is_for_the_courses_collaborators_and_members() {
    let api = llp_api();
    let (teacher, student, outsider) = (
        api.add_user("course-teacher", Role::Student).await,
        api.add_user("course-student", Role::Student).await,
        api.add_user("course-outsider", Role::Student).await,
    );
    let course = api
        .add_course(
            &format!("course {}", std::process::id()),
            &[api.user_id(&teacher).await],
            &[api.user_id(&student).await],
        )
        .await;
    // A window of this test's own (the Directus is shared by the test process).
    let (start, end) = ("2098-04-01T10:00:00Z", "2098-04-01T18:00:00Z");
    api.book_for_course(json!(["gpu-xs", "gpu-xs"]), (start, end), course)
        .await;
    let (app, _) = app_at("2098-04-01T12:00:00Z", None).await;
    for (token, expected) in [
        (&teacher, StatusCode::CREATED),
        (&student, StatusCode::CREATED),
        (&outsider, StatusCode::BAD_REQUEST),
    ] {
        let id = api.create_record(token, json!({"title": "t", "data": SMALL_GPU})).await;
        let (status, body) = deploy(&app, token, &id).await;
        assert_eq!(status, expected, "{body}");
    }
}
