//! Course bookings with the embedded source: a booking naming a course is for the course's
//! collaborators and members, as one naming them would be (admission, who reads it, usage by
//! course); nobody else's.

use crate::helpers::*;
use axum::http::StatusCode;
use serde_json::json;

const SMALL_GPU: &str = "containers: [{name: train, image: trainer, cpu: 1, memory: 1, gpu: nvidia.com/mig-1g.10gb}]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_course_booking_counts_for_the_courses_people_and_nobody_else() {
    let app = app_with_cluster().await;
    let bob = app.user_id(&app.bob);
    let (status, course) = app
        .call(
            "POST",
            "/items/courses",
            &app.admin,
            Some(json!({"name": "Deep Learning", "members": [bob]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{course}");
    let course = course["data"]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .call("POST", "/items/courses", &app.alice, Some(json!({"name": "Mine"})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only admins create courses");
    let (status, body) = app
        .call(
            "POST",
            "/items/courses",
            &app.admin,
            Some(json!({"name": "Deep Learning"})),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("name"))
    );

    // Booked for the course, naming no user.
    let now = jiff::Timestamp::now();
    let day = jiff::SignedDuration::from_hours(24);
    let booking =
        json!({"gpus": ["gpu-xs"], "start": (now - day).to_string(), "end": (now + day).to_string(), "course": course});
    let (status, booked) = app
        .call("POST", "/items/gpu_reservations", &app.admin, Some(booking))
        .await;
    assert_eq!(status, StatusCode::OK, "{booked}");
    assert_eq!(booked["data"]["course"], course.as_str());
    assert_eq!(booked["data"]["users"], json!([]), "the item names the users it names");
    let (status, body) = app
        .call(
            "POST",
            "/items/gpu_reservations",
            &app.admin,
            Some(
                json!({"gpus": ["gpu-xs"], "start": now.to_string(), "end": (now + day).to_string(), "course": "999"}),
            ),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("course"))
    );

    // Bob takes the course: its booking covers his deploy; alice's is refused.
    let bobs = app
        .create_record_with(&app.bob, json!({"title": "t", "data": SMALL_GPU}))
        .await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{bobs}"), &app.bob, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let alices = app
        .create_record_with(&app.alice, json!({"title": "t", "data": SMALL_GPU}))
        .await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{alices}"), &app.alice, None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "NOT_ENOUGH_RESOURCES"),
        "{body}"
    );

    // Bob reads the booking and the course; alice neither.
    for (token, sees) in [(&app.bob, true), (&app.alice, false)] {
        let (_, bookings) = app.call("GET", "/items/gpu_reservations", token, None).await;
        assert_eq!(
            bookings["data"].as_array().unwrap().len(),
            usize::from(sees),
            "{bookings}"
        );
        let (_, courses) = app.call("GET", "/items/courses", token, None).await;
        assert_eq!(
            courses["data"].as_array().unwrap().len(),
            usize::from(sees),
            "{courses}"
        );
    }

    // Usage by course: what bob's pod held under the course's booking.
    let hold = llp_spec::usage::Hold {
        pod_uid: "u-bob".into(),
        pod: "p".into(),
        deployment: bobs.clone(),
        owner: llp_spec::names::label_value(&bob),
        gpu: llp_spec::spec::Gpu::Mig1g10gb,
        count: 1,
        start: now - jiff::SignedDuration::from_hours(1),
        end: Some(now - jiff::SignedDuration::from_mins(30)),
        seen: now,
    };
    app.state.usage.store.as_ref().unwrap().record(&[hold]).await.unwrap();
    let (status, report) = app.call("GET", "/kubernetes/usage?by=course", &app.bob, None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let row = &report["data"][0];
    assert_eq!(
        (row["key"].as_str(), row["gpuSeconds"].as_f64()),
        (Some(course.as_str()), Some(1800.0)),
        "{report}"
    );
    let (_, alices_report) = app.call("GET", "/kubernetes/usage?by=course", &app.alice, None).await;
    assert_eq!(alices_report["data"], json!([]));
}
