//! `/items/deployments` of the embedded record source.

use crate::helpers::{app, code};
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_user_creates_reads_updates_and_deletes_a_record() {
    let app = app();
    let id = app.create_record(&app.alice).await;
    let (status, body) = app
        .call("GET", &format!("/items/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["title"], "web");

    let patch = json!({"exposed_service": "web", "exposed_port": 80, "exposed_hostname": "my-app"});
    let (status, body) = app
        .call("PATCH", &format!("/items/deployments/{id}"), &app.alice, Some(patch))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["exposed_port"], 80);

    let (status, _) = app
        .call("DELETE", &format!("/items/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .call("GET", &format!("/items/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "NOT_FOUND"));
}

#[tokio::test]
async fn another_user_cannot_read_change_or_delete_a_record_and_cannot_tell_it_exists() {
    let app = app();
    let id = app.create_record(&app.alice).await;
    let unknown = "00000000-0000-4000-8000-000000000000";
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"title": "mine"}))),
        ("DELETE", None),
    ] {
        let theirs = app
            .call(method, &format!("/items/deployments/{id}"), &app.bob, body.clone())
            .await;
        let missing = app
            .call(method, &format!("/items/deployments/{unknown}"), &app.bob, body)
            .await;
        assert_eq!(theirs.0, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(
            theirs, missing,
            "{method}: alice's record and a missing one answer alike"
        );
    }
    let (_, list) = app.call("GET", "/items/deployments", &app.bob, None).await;
    assert_eq!(list["data"], json!([]));
    let (_, mine) = app
        .call("GET", &format!("/items/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(mine["data"]["title"], "web", "bob changed nothing");
}

#[tokio::test]
async fn an_admin_sees_every_record() {
    let app = app();
    app.create_record(&app.alice).await;
    app.create_record(&app.bob).await;
    let (_, list) = app.call("GET", "/items/deployments", &app.admin, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn no_or_a_wrong_token_is_401_and_access_token_works_too() {
    let app = app();
    for token in ["", "llp_not-a-token"] {
        let (status, body) = app.call("GET", "/items/deployments", token, None).await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS"));
    }
    let (status, _) = app
        .call(
            "GET",
            &format!("/items/deployments?access_token={}", app.alice),
            "",
            None,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_malformed_body_is_400_naming_the_field() {
    let app = app();
    let (status, body) = app
        .call("POST", "/items/deployments", &app.alice, Some(json!({"titel": "x"})))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "INVALID_PAYLOAD"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "titel");
    let (status, _) = app
        .call("POST", "/items/deployments", &app.alice, Some(json!([1, 2])))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // serde reads structs from arrays too; a list of nulls must not create (or blank) a record.
    let (status, body) = app
        .call("POST", "/items/deployments", &app.alice, Some(json!([null, null])))
        .await;
    assert_eq!(
        (status, &body["errors"][0]["extensions"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("body"))
    );
    let id = app.create_record(&app.alice).await;
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/items/deployments/{id}"),
            &app.alice,
            Some(json!([null, null])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, record) = app
        .call("GET", &format!("/items/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(record["data"]["title"], "web", "unchanged");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_in_the_directus_shape() {
    let app = app();
    let huge = json!({"title": "x", "data": "#".repeat(3 * 1024 * 1024)});
    let (status, body) = app.call("POST", "/items/deployments", &app.alice, Some(huge)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
    );
}
