//! Errors carry the LLP frontend's translation keys as the extension sent them, beside the
//! Directus code and a readable message (docs/compatibility.md), for both parsers.

use crate::helpers::{app, app_with_cluster};
use axum::http::StatusCode;
use serde_json::{Value, json};

fn reasons(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["extensions"]["reason"].as_str().unwrap_or("(none)"))
        .collect()
}

#[tokio::test]
async fn not_found_unauthorized_and_bad_request_carry_the_extensions_keys() {
    let app = app();
    let alices = app.create_record(&app.alice).await;
    let (status, body) = app
        .call("GET", &format!("/kubernetes/deployments/{alices}"), "", None)
        .await;
    assert_eq!(
        (status, reasons(&body)),
        (StatusCode::UNAUTHORIZED, vec!["api_errors.unauthorized"])
    );
    let (status, body) = app
        .call("GET", &format!("/items/deployments/{alices}"), &app.bob, None)
        .await;
    assert_eq!(
        (status, reasons(&body)),
        (StatusCode::NOT_FOUND, vec!["api_errors.not_found"])
    );
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "the Directus code stays"
    );
    let (status, body) = app
        .call("POST", "/items/deployments", &app.bob, Some(json!({"colour": 1})))
        .await;
    assert_eq!(
        (status, reasons(&body)),
        (StatusCode::BAD_REQUEST, vec!["api_errors.bad_request"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_problem_of_an_invalid_spec_carries_the_bad_request_key() {
    let app = app_with_cluster().await;
    let id = app
        .create_record_with(
            &app.alice,
            json!({"data": "containers: [{name: ../x, image: nginx, cpu: \"8\"}]"}),
        )
        .await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let problems = reasons(&body);
    assert!(problems.len() >= 2, "{body}");
    assert!(problems.iter().all(|r| *r == "api_errors.bad_request"), "{body}");
    assert!(
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["extensions"]["code"] == "VALIDATION_FAILED")
    );
}
