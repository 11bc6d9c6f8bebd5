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
    // A value of the wrong type names its field, not the value.
    for (body, field) in [
        (json!({"title": 5}), "title"),
        (
            json!({"title": "x", "exposed_hostname": ["a", "b"]}),
            "exposed_hostname",
        ),
    ] {
        let (status, answer) = app.call("POST", "/items/deployments", &app.alice, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["errors"][0]["extensions"]["field"], field, "{answer}");
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deployed_record_deletes_its_deployment_and_frees_its_hostname() {
    let app = crate::helpers::app_with_cluster().await;
    let exposed = |hostname: &str| {
        serde_json::json!({"data": "containers: [{name: web, image: nginx, ports: [{port: 80}]}]",
            "exposed_service": "web", "exposed_port": 80, "exposed_hostname": hostname})
    };
    let id = app.create_record_with(&app.alice, exposed("kept")).await;
    let deployment = format!("/kubernetes/deployments/{id}");
    assert_eq!(
        app.call("PUT", &deployment, &app.alice, None).await.0,
        StatusCode::CREATED
    );
    // Bob cannot delete Alice's record, nor so her deployment.
    let (status, _) = app
        .call("DELETE", &format!("/items/deployments/{id}"), &app.bob, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let sets: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(app.admin_client(), &app.cluster().namespace);
    assert!(sets.get_opt(&format!("sd-{id}")).await.unwrap().is_some());

    let (status, _) = app
        .call("DELETE", &format!("/items/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let left = sets.get_opt(&format!("sd-{id}")).await.unwrap();
    assert!(
        left.is_none_or(|s| s.metadata.deletion_timestamp.is_some()),
        "the StatefulSet goes too"
    );
    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(app.admin_client(), &app.cluster().namespace);
    let selector = kube::api::ListParams::default().labels(&format!("llp.kitegg.de/deployment={id}"));
    assert!(services.list(&selector).await.unwrap().items.is_empty());
    // Its hostname is free again.
    let bobs = app.create_record_with(&app.bob, exposed("kept")).await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{bobs}"), &app.bob, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
