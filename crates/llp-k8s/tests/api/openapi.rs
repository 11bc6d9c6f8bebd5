//! `/openapi.json`: generated from the handlers, so it lists exactly the routes served; every
//! reference in it resolves.

use crate::helpers::app;
use axum::http::StatusCode;
use llp_k8s::records::directus::{DirectusConfig, DirectusSource};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The routes of SPEC section 5 and the operations routes, as (method, path).
const SERVICE_ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/schema/deployment.json"),
    ("get", "/kubernetes/deployments/{id}"),
    ("put", "/kubernetes/deployments/{id}"),
    ("patch", "/kubernetes/deployments/{id}"),
    ("delete", "/kubernetes/deployments/{id}"),
    ("get", "/kubernetes/deployments/{id}/stream"),
    ("get", "/kubernetes/deployments/{id}/pods/{pod}/exec"),
    ("get", "/kubernetes/deployments/{id}/hooks/restart"),
    ("post", "/kubernetes/deployments/{id}/hooks/restart"),
    ("get", "/kubernetes/deployments/{id}/logs/{pod}"),
    ("get", "/kubernetes/deployments/{id}/events/{pod}"),
    ("delete", "/kubernetes/deployments/{id}/pods/{pod}"),
    ("get", "/kubernetes/deployments/{id}/secret"),
    ("put", "/kubernetes/deployments/{id}/secret"),
    ("get", "/kubernetes/deployments/{id}/config"),
    ("put", "/kubernetes/deployments/{id}/config"),
    ("get", "/kubernetes/capacity"),
    ("get", "/kubernetes/capacity/profiles"),
    ("get", "/kubernetes/orphans"),
    ("get", "/kubernetes/usage"),
];

const ITEM_ROUTES: &[(&str, &str)] = &[
    ("get", "/items/deployments"),
    ("post", "/items/deployments"),
    ("get", "/items/deployments/{id}"),
    ("patch", "/items/deployments/{id}"),
    ("delete", "/items/deployments/{id}"),
    ("get", "/items/gpu_reservations"),
    ("post", "/items/gpu_reservations"),
    ("get", "/items/gpu_reservations/{id}"),
    ("patch", "/items/gpu_reservations/{id}"),
    ("delete", "/items/gpu_reservations/{id}"),
    ("get", "/items/courses"),
    ("post", "/items/courses"),
];

fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                found.insert((method.clone(), path.clone()));
            }
        }
    }
    found
}

fn expected(routes: &[&[(&str, &str)]]) -> BTreeSet<(String, String)> {
    routes
        .iter()
        .flat_map(|r| r.iter())
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => found.push(target),
                    _ => refs(inner, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_lists_every_route_and_only_routes_that_are_served() {
    let app = app();
    let (status, document) = app.call("GET", "/openapi.json", "", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(operations(&document), expected(&[SERVICE_ROUTES, ITEM_ROUTES]));

    for (method, path) in operations(&document) {
        let uri = path.replace("{id}", "1").replace("{pod}", "p");
        let (status, body) = app.call(&method.to_uppercase(), &uri, "", None).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !body.to_string().contains("no such route"),
            "{method} {path} is documented but not served"
        );
    }
    // And an undocumented path is not served.
    let (status, _) = app.call("GET", "/kubernetes/nothing", "", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_the_llp_api_as_record_source_the_items_routes_are_not_listed() {
    let source = DirectusSource::new(DirectusConfig {
        url: "http://127.0.0.1:9".into(),
        ..DirectusConfig::default()
    })
    .unwrap();
    let app = app().with_records(Arc::new(source));
    let (_, document) = app.call("GET", "/openapi.json", "", None).await;
    assert_eq!(operations(&document), expected(&[SERVICE_ROUTES]));
}

#[tokio::test]
async fn every_reference_resolves_and_the_deployment_schema_is_the_editors_one() {
    let (_, document) = app().call("GET", "/openapi.json", "", None).await;
    let mut found = Vec::new();
    refs(&document, &mut found);
    assert!(found.len() > 10, "{found:?}");
    for target in found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external ref {target}"));
        assert!(document.pointer(pointer).is_some(), "{target} does not resolve");
    }
    let deploy = &document["paths"]["/kubernetes/deployments/{id}"]["put"]["responses"]["201"];
    assert_eq!(
        deploy["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/DeploymentSpec"
    );
    let containers = &document["components"]["schemas"]["DeploymentSpec"]["properties"]["containers"];
    assert!(containers.is_object(), "{containers}");
    assert!(document["components"]["securitySchemes"]["token"].is_object());
}

#[tokio::test]
async fn the_document_passes_an_openapi_validator() {
    let app = app();
    let (status, text) = app.raw("GET", "/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    let document: Value = serde_json::from_str(&text).unwrap();
    // Each path parameter once per operation: a validator refuses duplicates.
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let names: Vec<(&str, &str)> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
                .collect();
            let unique: BTreeSet<_> = names.iter().collect();
            assert_eq!(unique.len(), names.len(), "{method} {path}: {names:?}");
        }
    }
    // The machine's openapi-spec-validator (Python), the reference implementation's checks.
    let file = std::env::temp_dir().join(format!("llp-openapi-{}.json", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
