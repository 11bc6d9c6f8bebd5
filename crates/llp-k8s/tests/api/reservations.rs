//! GPU reservations (SPEC section 10): admission of deploys, scale, restart and pod delete
//! against the bookings active now, judged by a clock the tests set; the embedded bookings
//! under `/items/gpu_reservations`, always with two users.

use crate::helpers::{TestApp, app, app_with_cluster, code};
use axum::http::StatusCode;
use k8s_openapi::api::apps::v1::StatefulSet;
use llp_k8s::reservations::reconciler::Pass;
use llp_k8s::reservations::{Clock, ReservationPolicy, ReservationSettings};
use serde_json::{Value, json};
use std::sync::Arc;

/// One gpu-xs per pod.
const SMALL_GPU: &str = "containers: [{name: train, image: trainer, cpu: 1, memory: 1, gpu: nvidia.com/mig-1g.10gb}]";

fn at(time: &str) -> jiff::Timestamp {
    time.parse().unwrap()
}

/// The app on a simulator, its reservations judged at 27 Nov 12:00 UTC until the test moves
/// the clock; returns the clock.
async fn app_at_noon() -> (TestApp, Clock) {
    let mut app = app_with_cluster().await;
    let clock = app.set_clock("2026-11-27T12:00:00Z");
    (app, clock)
}

async fn deploy(app: &TestApp, token: &str, id: &str) -> (StatusCode, Value) {
    app.call("PUT", &format!("/kubernetes/deployments/{id}"), token, None)
        .await
}

async fn scale(app: &TestApp, path: &str, n: u32) -> (StatusCode, Value) {
    app.call("PATCH", &format!("{path}?scale={n}"), &app.alice, None).await
}

fn assert_short(answer: &(StatusCode, Value), says: &str) {
    let (status, body) = answer;
    assert_eq!(
        (*status, code(body)),
        (StatusCode::BAD_REQUEST, "NOT_ENOUGH_RESOURCES"),
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["reason"],
        "api_errors.not_enough_resources"
    );
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(says), "`{message}` should say `{says}`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_deploy_needs_a_booking_of_its_owner_and_the_refusal_names_the_shortfall() {
    let (app, _) = app_at_noon().await;
    let alices = app.create_record_with(&app.alice, json!({"data": SMALL_GPU})).await;
    assert_short(
        &deploy(&app, &app.alice, &alices).await,
        "needs 1 × nvidia.com/mig-1g.10gb (gpu-xs) for 1 replica; your reservations active now cover 0",
    );
    let sets = app.cluster().api::<StatefulSet>();
    assert!(
        sets.get_opt(&format!("sd-{alices}")).await.unwrap().is_none(),
        "nothing was created"
    );

    app.book(
        &app.alice,
        &["gpu-xs"],
        None,
        "2026-11-27T10:00:00Z",
        "2026-11-27T18:00:00Z",
    )
    .await;
    assert_eq!(deploy(&app, &app.alice, &alices).await.0, StatusCode::CREATED);
    // Bob has no booking: alice's does not cover his deployment.
    let bobs = app.create_record_with(&app.bob, json!({"data": SMALL_GPU})).await;
    assert_short(&deploy(&app, &app.bob, &bobs).await, "cover 0");
    // Without a GPU, nobody needs one.
    let web = app.create_record(&app.bob).await;
    assert_eq!(deploy(&app, &app.bob, &web).await.0, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_up_restart_and_pod_delete_need_the_booking_while_scale_down_and_delete_never_do() {
    let (app, clock) = app_at_noon().await;
    app.book(
        &app.alice,
        &["gpu-xs", "gpu-xs"],
        None,
        "2026-11-27T10:00:00Z",
        "2026-11-27T18:00:00Z",
    )
    .await;
    let id = app.create_record_with(&app.alice, json!({"data": SMALL_GPU})).await;
    let path = format!("/kubernetes/deployments/{id}");
    assert_eq!(deploy(&app, &app.alice, &id).await.0, StatusCode::CREATED);
    assert_eq!(scale(&app, &path, 2).await.0, StatusCode::OK, "2 × 1 of 2 booked");
    assert_short(
        &scale(&app, &path, 3).await,
        "needs 3 × nvidia.com/mig-1g.10gb (gpu-xs) for 3 replicas; your reservations active now cover 2 (until 27 Nov 18:00 UTC)",
    );
    assert_eq!(scale(&app, &path, 1).await.0, StatusCode::OK, "down");
    let status = app
        .status_until(&id, &app.alice, |s| s["pods"][0]["phase"] == "Running")
        .await;
    let pod = status["pods"][0]["name"].as_str().unwrap().to_owned();

    clock.set(at("2026-11-27T18:00:00Z")); // the booking has ended
    assert_short(
        &app.call("POST", &format!("{path}/hooks/restart"), &app.alice, None)
            .await,
        "cover 0",
    );
    assert_short(
        &app.call("DELETE", &format!("{path}/pods/{pod}"), &app.alice, None)
            .await,
        "cover 0",
    );
    assert_short(&deploy(&app, &app.alice, &id).await, "cover 0");
    assert_eq!(
        scale(&app, &path, 0).await.0,
        StatusCode::OK,
        "stopping never needs a booking"
    );
    assert_short(&scale(&app, &path, 1).await, "cover 0");
    assert_eq!(app.call("DELETE", &path, &app.alice, None).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_naming_the_deployment_counts_and_one_naming_another_does_not() {
    let (app, _) = app_at_noon().await;
    let first = app.create_record_with(&app.alice, json!({"data": SMALL_GPU})).await;
    let second = app.create_record_with(&app.alice, json!({"data": SMALL_GPU})).await;
    app.book(
        &app.alice,
        &["gpu-xs"],
        Some(&first),
        "2026-11-27T11:00:00Z",
        "2026-11-27T13:00:00Z",
    )
    .await;
    assert_short(&deploy(&app, &app.alice, &second).await, "cover 0");
    assert_eq!(deploy(&app, &app.alice, &first).await.0, StatusCode::CREATED);
    // Two bookings add up; gpuCount and replicas multiply.
    let big = format!(
        "{}\nreplicas: 2",
        SMALL_GPU.replace(
            "gpu: nvidia.com/mig-1g.10gb",
            "gpu: nvidia.com/mig-1g.10gb, gpuCount: 2"
        )
    );
    app.call(
        "PATCH",
        &format!("/items/deployments/{second}"),
        &app.alice,
        Some(json!({"data": big})),
    )
    .await;
    app.book(
        &app.alice,
        &["gpu-xs"; 3],
        Some(&second),
        "2026-11-27T11:00:00Z",
        "2026-11-27T13:00:00Z",
    )
    .await;
    assert_short(
        &deploy(&app, &app.alice, &second).await,
        "needs 4 × nvidia.com/mig-1g.10gb (gpu-xs) for 2 replicas; your reservations active now cover 3",
    );
    app.book(
        &app.alice,
        &["gpu-xs"],
        Some(&second),
        "2026-11-27T12:00:00Z",
        "2026-11-27T12:30:00Z",
    )
    .await;
    assert_eq!(deploy(&app, &app.alice, &second).await.0, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_bookings_without_a_deployment_are_one_budget_for_all_their_deployments() {
    let (app, _) = app_at_noon().await;
    app.book(
        &app.alice,
        &["gpu-xs"],
        None,
        "2026-11-27T10:00:00Z",
        "2026-11-27T18:00:00Z",
    )
    .await;
    let first = app.create_record_with(&app.alice, json!({"data": SMALL_GPU})).await;
    let second = app.create_record_with(&app.alice, json!({"data": SMALL_GPU})).await;
    assert_eq!(deploy(&app, &app.alice, &first).await.0, StatusCode::CREATED);
    assert_short(
        &deploy(&app, &app.alice, &second).await,
        "cover 0 (1 booked, 1 held by your other deployments)",
    );
    // Re-deploying the first one does not count its own GPUs twice.
    assert_eq!(deploy(&app, &app.alice, &first).await.0, StatusCode::OK);
    // Once the first one stops, the second may use the booking.
    let scaled = app
        .call(
            "PATCH",
            &format!("/kubernetes/deployments/{first}?scale=0"),
            &app.alice,
            None,
        )
        .await;
    assert_eq!(scaled.0, StatusCode::OK);
    let sets = app.cluster().api::<StatefulSet>();
    let name = format!("sd-{first}");
    for _ in 0..100 {
        let cached = app.cluster().caches.stateful_set(&name);
        if cached.map(|s| s.replicas) == Some(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(sets.get(&name).await.unwrap().spec.unwrap().replicas, Some(0));
    assert_eq!(deploy(&app, &app.alice, &second).await.0, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_enforcement_off_a_gpu_deploy_needs_no_booking() {
    let (mut app, _) = app_at_noon().await;
    app.state.reservations = Arc::new(ReservationPolicy {
        settings: ReservationSettings {
            enforce: false,
            ..ReservationSettings::default()
        },
        clock: Clock::default(),
    });
    let id = app.create_record_with(&app.alice, json!({"data": SMALL_GPU})).await;
    assert_eq!(deploy(&app, &app.alice, &id).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn admins_book_gpus_and_each_user_reads_only_their_own_bookings() {
    let app = app();
    let booked = app
        .book(
            &app.alice,
            &["gpu-xs", "gpu-l"],
            None,
            "2026-11-27T10:00:00Z",
            "2026-11-27T18:00:00Z",
        )
        .await;
    let (status, mine) = app.call("GET", "/items/gpu_reservations", &app.alice, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["data"][0]["gpus"], json!(["gpu-xs", "gpu-l"]));
    assert_eq!(mine["data"][0]["users"], json!([app.user_id(&app.alice)]));
    assert_eq!(mine["data"][0]["end"], "2026-11-27T18:00:00Z");
    let (_, bobs) = app.call("GET", "/items/gpu_reservations", &app.bob, None).await;
    assert_eq!(bobs["data"], json!([]));
    let one = format!("/items/gpu_reservations/{booked}");
    let (status, body) = app.call("GET", &one, &app.bob, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["errors"][0]["message"], "reservation not found",
        "about the booking, not a deployment"
    );
    let (_, body) = app
        .call("GET", "/items/gpu_reservations/no-such-booking", &app.alice, None)
        .await;
    assert_eq!(body["errors"][0]["message"], "reservation not found");
    assert_eq!(app.call("GET", &one, &app.alice, None).await.0, StatusCode::OK);
    // Users do not book, change or cancel.
    let body = json!({"gpus": ["gpu-l"], "start": "2026-11-27T10:00:00Z", "end": "2026-11-28T10:00:00Z", "users": [app.user_id(&app.alice)]});
    let (status, refused) = app
        .call("POST", "/items/gpu_reservations", &app.alice, Some(body))
        .await;
    assert_eq!((status, code(&refused)), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    assert_eq!(
        app.call("PATCH", &one, &app.alice, Some(json!({"end": "2027-01-01T00:00:00Z"})))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.call("DELETE", &one, &app.bob, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        app.call("DELETE", &one, &app.admin, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.call("GET", &one, &app.alice, None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_bad_booking_is_a_400_naming_its_field() {
    let app = app();
    let alice = app.user_id(&app.alice);
    let good =
        json!({"gpus": ["gpu-xs"], "start": "2026-11-27T10:00:00Z", "end": "2026-11-27T18:00:00Z", "users": [alice]});
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    for (body, field, says) in [
        (with("end", json!("2026-11-27T09:00:00Z")), "end", "before it starts"),
        (
            with("gpus", json!(["gpu-xl"])),
            "gpus[0]",
            "use gpu-l, gpu-m, gpu-s or gpu-xs",
        ),
        (with("start", json!("noon")), "start", "RFC 3339"),
        (with("users", json!(["nobody"])), "users[0]", "no user"),
        (
            with("deployment", json!("no-such-record")),
            "deployment",
            "no deployment record",
        ),
        (with("rooms", json!(1)), "rooms", "unknown field"),
    ] {
        let (status, error) = app
            .call("POST", "/items/gpu_reservations", &app.admin, Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert_eq!(error["errors"][0]["extensions"]["field"], field, "{error}");
        let message = error["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    let (_, all) = app.call("GET", "/items/gpu_reservations", &app.admin, None).await;
    assert_eq!(all["data"], json!([]), "nothing was booked");
    // An edit that would end the booking before it starts is refused too.
    let (_, booked) = app
        .call("POST", "/items/gpu_reservations", &app.admin, Some(good))
        .await;
    let one = format!("/items/gpu_reservations/{}", booked["data"]["id"].as_str().unwrap());
    let (status, error) = app
        .call(
            "PATCH",
            &one,
            &app.admin,
            Some(json!({"start": "2026-11-28T00:00:00Z"})),
        )
        .await;
    assert_eq!(
        (status, error["errors"][0]["extensions"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("end"))
    );
}

/// Waits until the service's cache shows StatefulSet `name` with `replicas`.
async fn cached_replicas(app: &TestApp, name: &str, replicas: i32) {
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while app.cluster().caches.stateful_set(name).map(|s| s.replicas) != Some(replicas) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the cache catches up");
}

crate::on_both_backends! {
async fn at_the_end_of_its_booking_a_gpu_deployment_stops_keeping_its_volumes(backend) {
    let mut app = crate::helpers::app_on(backend).await;
    let clock = app.set_clock("2026-11-27T12:00:00Z");
    app.book(&app.alice, &["gpu-xs"], None, "2026-11-27T10:00:00Z", "2026-11-27T18:00:00Z").await;
    let training = format!("{SMALL_GPU}\nvolumes: [{{name: data, size: 1Gi}}]").replace("memory: 1}", "memory: 1, volumeMounts: [{name: data, mountPath: /data}]}");
    let id = app.create_record_with(&app.alice, json!({"data": training})).await;
    let web = app.create_record(&app.alice).await;
    assert_eq!(deploy(&app, &app.alice, &id).await.0, StatusCode::CREATED);
    assert_eq!(deploy(&app, &app.alice, &web).await.0, StatusCode::CREATED);
    let name = format!("sd-{id}");
    let reconciler = app.reconciler("instance-a");

    // While the booking lasts: kept, and the status says until when.
    let pass = reconciler.round().await.unwrap().expect("the only instance leads");
    assert_eq!((pass.stopped.len(), pass.annotated.clone()), (0, vec![name.clone()]));
    let status = app.status_until(&id, &app.alice, |s| s["reservationEnds"].is_string()).await;
    assert_eq!(status["reservationEnds"], "2026-11-27T18:00:00Z");
    assert_eq!(reconciler.round().await.unwrap(), Some(Pass::default()), "nothing to change");

    // At the end instant: scaled to 0, an Event says why, the claim stays, the web app runs on.
    clock.set(at("2026-11-27T18:00:00Z"));
    let pass = reconciler.round().await.unwrap().unwrap();
    assert_eq!(pass.stopped, vec![name.clone()]);
    let sets = app.cluster().api::<StatefulSet>();
    assert_eq!(sets.get(&name).await.unwrap().spec.unwrap().replicas, Some(0));
    assert_eq!(sets.get(&format!("sd-{web}")).await.unwrap().spec.unwrap().replicas, Some(1), "no GPU, not touched");
    let status = app.status_until(&id, &app.alice, |s| s["stopped"].is_string()).await;
    assert_eq!(
        status["stopped"],
        "stopped: reservation ended at 27 Nov 18:00 UTC; the volumes are kept. Book GPUs, then scale up or deploy again."
    );
    assert!(status.get("reservationEnds").is_none());
    assert_eq!(status["volumes"].as_array().unwrap().len(), 1, "the claim is kept: {status}");
    let events = app
        .cluster()
        .api::<k8s_openapi::api::core::v1::Event>()
        .list(&kube::api::ListParams::default().fields(&format!("involvedObject.name={name},reason=ReservationEnded")))
        .await
        .unwrap();
    let message = events.items[0].message.clone().unwrap();
    assert!(message.starts_with("Stopped (scaled to 0, volumes kept): the GPU reservation ended at 27 Nov 18:00 UTC; 1 × gpu-xs no longer covered"), "{message}");
    cached_replicas(&app, &name, 0).await;
    assert_eq!(reconciler.round().await.unwrap(), Some(Pass::default()), "stopped once");

    // A new booking, and the owner scales up again: the note goes.
    app.book(&app.alice, &["gpu-xs"], None, "2026-11-27T18:00:00Z", "2026-11-27T20:00:00Z").await;
    let (status, body) = app.call("PATCH", &format!("/kubernetes/deployments/{id}?scale=1"), &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let status = app.status_until(&id, &app.alice, |s| s["replicas"] == 1 && s.get("stopped").is_none()).await;
    assert!(status.get("stopped").is_none(), "{status}");
}

async fn one_instance_at_a_time_holds_the_reconcilers_lease(backend) {
    let app = crate::helpers::app_on(backend).await;
    let lock = |holder: &str| {
        llp_k8s::cluster::lease::LeaseLock::new(app.cluster().api(), "llp-k8s-reservations", holder, std::time::Duration::from_secs(30))
    };
    let (a, b) = (lock("instance-a"), lock("instance-b"));
    let now = jiff::Timestamp::now();
    let later = |seconds: i64| now + jiff::SignedDuration::from_secs(seconds);
    assert!(a.try_hold(now).await.unwrap(), "the first takes it");
    assert!(!b.try_hold(now).await.unwrap(), "the second waits");
    assert!(a.try_hold(later(20)).await.unwrap(), "the holder renews");
    assert!(!b.try_hold(later(49)).await.unwrap(), "renewed 20 s in, it lasts until 50 s");
    assert!(b.try_hold(later(50)).await.unwrap(), "expired: the second takes over");
    assert!(!a.try_hold(later(51)).await.unwrap(), "the first lost it");
    b.release().await.unwrap();
    assert!(a.try_hold(later(52)).await.unwrap(), "released: taken at once");
    // Two reconcilers of two instances: only the lease holder reviews.
    let first = app.reconciler("instance-a");
    let second = app.reconciler("instance-b");
    assert!(first.round().await.unwrap().is_some() ^ second.round().await.unwrap().is_some(), "exactly one reviewed");
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_beyond_a_booking_made_smaller_is_stopped_as_over_budget_not_as_ended() {
    let mut app = crate::helpers::app_with_cluster().await;
    app.set_clock("2026-11-27T12:00:00Z");
    let booking = app
        .book(
            &app.alice,
            &["gpu-xs", "gpu-xs"],
            None,
            "2026-11-27T10:00:00Z",
            "2026-11-27T18:00:00Z",
        )
        .await;
    let first = app.create_record_with(&app.alice, json!({"data": SMALL_GPU})).await;
    assert_eq!(deploy(&app, &app.alice, &first).await.0, StatusCode::CREATED);
    cached_replicas(&app, &format!("sd-{first}"), 1).await;
    let second = app.create_record_with(&app.alice, json!({"data": SMALL_GPU})).await;
    assert_eq!(deploy(&app, &app.alice, &second).await.0, StatusCode::CREATED);
    // The booking shrinks to one GPU: the deployment started later no longer fits it.
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/items/gpu_reservations/{booking}"),
            &app.admin,
            Some(json!({"gpus": ["gpu-xs"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    cached_replicas(&app, &format!("sd-{second}"), 1).await;
    let pass = app.reconciler("instance-a").round().await.unwrap().unwrap();
    // The one started later (by the second: both may have started in the same one).
    assert_eq!(pass.stopped.len(), 1, "{pass:?}");
    let name = pass.stopped[0].clone();
    let stopped = name.strip_prefix("sd-").unwrap();
    let events = app
        .cluster()
        .api::<k8s_openapi::api::core::v1::Event>()
        .list(&kube::api::ListParams::default().fields(&format!("involvedObject.name={name},reason=ReservationEnded")))
        .await
        .unwrap();
    let message = events.items[0].message.clone().unwrap();
    assert!(
        message.starts_with("Stopped (scaled to 0, volumes kept): over budget: the GPU reservations active now are held by the owner's deployments started earlier; 1 × gpu-xs no longer covered"),
        "{message}"
    );
    let status = app
        .status_until(stopped, &app.alice, |s| s["stopped"].is_string())
        .await;
    assert!(
        status["stopped"]
            .as_str()
            .unwrap()
            .contains("held by your deployments started earlier"),
        "{status}"
    );
}
