//! The secret and config routes.

use crate::helpers::app_on;
use axum::http::StatusCode;
use serde_json::json;

crate::on_both_backends! {
async fn the_owner_sets_and_reads_secret_and_config_and_nobody_else_can(backend) {
    let app = app_on(backend).await;
    let id = app.create_record(&app.alice).await;
    for route in ["secret", "config"] {
        let uri = format!("/kubernetes/deployments/{id}/{route}");
        let (status, keys) = app
            .call(
                "PUT",
                &uri,
                &app.alice,
                Some(json!({"API_KEY": "s3cret", "PORT": 8080})),
            )
            .await;
        assert_eq!((status, keys), (StatusCode::OK, json!(["API_KEY", "PORT"])), "{route}");
        let (status, data) = app.call("GET", &uri, &app.alice, None).await;
        assert_eq!(
            (status, data),
            (StatusCode::OK, json!({"data": {"API_KEY": "s3cret", "PORT": "8080"}})),
            "{route}"
        );
        let yaml = app
            .call("PUT", &uri, &app.alice, Some(json!("API_KEY: rotated\n")))
            .await;
        assert_eq!(yaml.0, StatusCode::OK);
        let (_, data) = app.call("GET", &uri, &app.alice, None).await;
        assert_eq!(
            data,
            json!({"data": {"API_KEY": "rotated"}}),
            "{route}: a PUT replaces the whole data"
        );

        assert_eq!(
            app.call("GET", &uri, &app.bob, None).await.0,
            StatusCode::NOT_FOUND,
            "{route}"
        );
        assert_eq!(
            app.call("PUT", &uri, &app.bob, Some(json!({"X": "y"}))).await.0,
            StatusCode::NOT_FOUND,
            "{route}"
        );
        // The extension's envelope, object or YAML: the same pairs (docs/compatibility.md).
        for body in [json!({"data": {"API_KEY": "wrapped"}}), json!({"data": "API_KEY: wrapped\n"})] {
            assert_eq!(app.call("PUT", &uri, &app.alice, Some(body)).await.0, StatusCode::OK);
            let (_, data) = app.call("GET", &uri, &app.alice, None).await;
            assert_eq!(data, json!({"data": {"API_KEY": "wrapped"}}), "{route}");
        }
        // The field is the body; the message names the key.
        let (status, body) = app.call("PUT", &uri, &app.alice, Some(json!({"a/b": "x"}))).await;
        assert_eq!(
            (status, body["errors"][0]["extensions"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("body"))
        );
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("`a/b`"), "{body}");
        // Keys Kubernetes refuses never reach it: a 400, not the cluster's 422 as a 503.
        for key in [".", ".."] {
            let (status, body) = app.call("PUT", &uri, &app.alice, Some(json!({ key: "x" }))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{key}: {body}");
        }
    }
}
}

/// The kubelet's CreateContainerConfigError for a key not set yet, as the status explains it.
/// Simulator only: kwok, the real control plane's kubelet here, starts containers without
/// resolving their environment (README, "What it cannot do").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_from_secret_key_not_set_yet_says_which_key_and_route_until_it_is_set() {
    let app = crate::helpers::app_with_cluster().await;
    let data = "containers: [{name: web, image: nginx, environment: [{name: TOKEN, fromSecret: token}]}]";
    let id = app.create_record_with(&app.alice, json!({"data": data})).await;
    let deployment = format!("/kubernetes/deployments/{id}");
    assert_eq!(
        app.call("PUT", &deployment, &app.alice, None).await.0,
        StatusCode::CREATED
    );
    let waiting =
        |status: &serde_json::Value| status["pods"][0]["containers"][0]["reason"] == "CreateContainerConfigError";
    let status = app.status_until(&id, &app.alice, waiting).await;
    let message = status["pods"][0]["containers"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("cannot start: no secret is set for this deployment yet"),
        "{message}"
    );

    app.call(
        "PUT",
        &format!("{deployment}/secret"),
        &app.alice,
        Some(json!({"other": "x"})),
    )
    .await;
    let status = app
        .status_until(&id, &app.alice, |s| {
            s["pods"][0]["containers"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("`token`"))
        })
        .await;
    assert_eq!(
        status["pods"][0]["containers"][0]["message"],
        "cannot start: the secret key `token` (used by `fromSecret: token`) is not set; set it with PUT /kubernetes/deployments/{id}/secret"
    );

    app.call(
        "PUT",
        &format!("{deployment}/secret"),
        &app.alice,
        Some(json!({"token": "t0k3n"})),
    )
    .await;
    app.status_until(&id, &app.alice, |s| s["pods"][0]["containers"][0]["ready"] == true)
        .await;
}
