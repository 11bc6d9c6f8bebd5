//! A service with an embedded record store and three users: alice, bob and an admin.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use llp_k8s::http::{AppState, router};
use llp_k8s::records::embedded::EmbeddedStore;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

pub struct TestApp {
    pub state: AppState,
    pub alice: String,
    pub bob: String,
    pub admin: String,
}

pub fn app() -> TestApp {
    let dir = std::env::temp_dir().join(format!("llp-api-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = EmbeddedStore::open(&dir.join("llp.sqlite")).unwrap();
    let (_, alice) = store.add_user("alice", &[], false).unwrap();
    let (_, bob) = store.add_user("bob", &[], false).unwrap();
    let (_, admin) = store.add_user("root", &[], true).unwrap();
    TestApp {
        state: AppState {
            records: Arc::new(store),
        },
        alice,
        bob,
        admin,
    }
}

fn uuid_like() -> String {
    format!("{}-{:?}", std::process::id(), std::time::Instant::now()).replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

impl TestApp {
    /// Sends a request as the holder of `token` (none when empty); returns status and JSON.
    pub async fn call(&self, method: &str, uri: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if !token.is_empty() {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(json) => request
                .header("content-type", "application/json")
                .body(Body::from(json.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Creates a record as `token` and returns its id.
    pub async fn create_record(&self, token: &str) -> String {
        let body = serde_json::json!({"title": "web", "data": "containers: [{name: web, image: nginx}]"});
        let (status, json) = self.call("POST", "/items/deployments", token, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json["data"]["id"].as_str().unwrap().to_owned()
    }
}

/// The Directus error code of a body.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
}
