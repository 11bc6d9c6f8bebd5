//! The seed's walkthrough over real HTTP: the service on port 0 in front of the simulator.

use crate::helpers::app_on;
use serde_json::{Value, json};
use std::time::Duration;

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the service answers");
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.send(method, path, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

crate::on_both_backends! {
async fn the_seed_walkthrough_over_http(backend) {
    use reqwest::Method;
    let app = app_on(backend).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, llp_k8s::http::router(app.state.clone())).into_future());
    let alice = Client {
        http: reqwest::Client::new(),
        base,
        token: app.alice.clone(),
    };

    let record = json!({"title": "My NGINX Service", "exposed_service": "nginx", "exposed_port": 80, "exposed_hostname": "my-nginx-service",
        "data": "containers:\n  - name: nginx\n    image: nginx:latest\n    ports: [{name: default, port: 80}]\n    volumeMounts: [{name: mydata, mountPath: /mydata}]\nvolumes: [{name: mydata, size: 1Gi}]\n"});
    let (status, created) = alice.json(Method::POST, "/items/deployments", Some(record)).await;
    assert_eq!(status, 200);
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let (status, spec) = alice
        .json(Method::PUT, &format!("/kubernetes/deployments/{id}"), None)
        .await;
    assert_eq!(status, 201, "{spec}");

    let running = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (_, status) = alice
                .json(Method::GET, &format!("/kubernetes/deployments/{id}"), None)
                .await;
            if status["pods"][0]["phase"] == "Running" && status["volumes"][0]["phase"] == "Bound" {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("it comes up");
    assert_eq!(
        running["volumes"][0],
        json!({"name": "mydata", "claim": format!("mydata-sd-{id}-0"), "phase": "Bound", "capacity": "1Gi", "requested": "1Gi",
            "type": "ReadWriteOnce", "shared": false})
    );
    assert_eq!(running["url"], "https://my-nginx-service.llp.example.org");
    let pod = running["pods"][0]["name"].as_str().unwrap().to_owned();

    let (status, logs) = alice
        .send(
            Method::GET,
            &format!("/kubernetes/deployments/{id}/logs/{pod}?container=nginx&tailLines=5"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(logs.contains(&app.started_line("nginx", "nginx:latest")), "{logs}");
    let (status, events) = alice
        .json(Method::GET, &format!("/kubernetes/deployments/{id}/events/{pod}"), None)
        .await;
    assert_eq!(status, 200);
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["creationTimestamp"].is_string() && e["type"].is_string())
    );

    // follow=true streams: the first chunk arrives while the pod runs.
    let response = alice
        .http
        .get(format!(
            "{}/kubernetes/deployments/{id}/logs/{pod}?follow=true",
            alice.base
        ))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut stream = response.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut stream))
        .await
        .expect("a first chunk")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains(&app.started_line("nginx", "nginx:latest")), "{first:?}");
    drop(stream);

    assert_eq!(
        alice
            .send(Method::PATCH, &format!("/kubernetes/deployments/{id}?scale=2"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        alice
            .send(
                Method::GET,
                &format!("/kubernetes/deployments/{id}/hooks/restart"),
                None
            )
            .await
            .0,
        200
    );
    assert_eq!(
        alice
            .json(
                Method::DELETE,
                &format!("/kubernetes/deployments/{id}/pods/{pod}"),
                None
            )
            .await,
        (200, json!({"deleted": pod}))
    );
    assert_eq!(
        alice
            .json(Method::DELETE, &format!("/kubernetes/deployments/{id}"), None)
            .await,
        (200, json!({"deleted": id}))
    );
}

async fn shutdown_ends_open_log_streams_and_readiness_reports_the_parts(backend) {
    let app = app_on(backend).await;
    let (status, _) = app.call("GET", "/readyz", "", None).await;
    assert_eq!(status, 200, "caches synced, record store answers");
    let (status, schema) = app.call("GET", "/schema/deployment.json", "", None).await;
    assert_eq!(status, 200);
    assert!(schema["$defs"]["Container"].is_object());

    let id = app.create_record(&app.alice).await;
    app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    let pod = format!("sd-{id}-0");
    tokio::time::timeout(Duration::from_secs(20), async {
        while app
            .call("GET", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
            .await
            .1["pods"][0]["phase"]
            != "Running"
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    let request = axum::http::Request::get(format!("/kubernetes/deployments/{id}/logs/{pod}?follow=true"))
        .header("authorization", format!("Bearer {}", app.alice))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(llp_k8s::http::router(app.state.clone()), request)
        .await
        .unwrap();
    let reading = tokio::spawn(axum::body::to_bytes(response.into_body(), 1 << 20));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!reading.is_finished(), "the stream follows while the service runs");
    app.stop.send(true).unwrap();
    let body = tokio::time::timeout(Duration::from_secs(5), reading)
        .await
        .expect("shutdown ends the stream")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains(&app.started_line("web", "nginx")));
}

async fn metrics_count_requests_by_route_and_status_and_cache_sizes(backend) {
    let app = app_on(backend).await;
    let id = app.create_record(&app.alice).await;
    app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    app.call("GET", &format!("/kubernetes/deployments/{id}"), &app.bob, None)
        .await;
    let request = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(llp_k8s::http::router(app.state.clone()), request)
        .await
        .unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(
            r#"llp_k8s_http_requests_total{route="/kubernetes/deployments/{id}",method="PUT",status="201"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"llp_k8s_http_requests_total{route="/kubernetes/deployments/{id}",method="GET",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("llp_k8s_http_request_duration_seconds_bucket"), "{text}");
    assert!(
        text.contains(r#"llp_k8s_cache_objects{kind="statefulsets"} 1"#),
        "{text}"
    );
    // The deploy applied its StatefulSet once; the caches list and watch.
    assert!(
        text.contains(r#"llp_k8s_kube_api_requests_total{verb="patch",resource="statefulsets"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"llp_k8s_kube_api_requests_total{verb="watch",resource="pods"}"#),
        "{text}"
    );
}
}
