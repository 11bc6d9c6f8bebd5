//! Long-running deployments on the real node: the seed's nginx serving through its Service,
//! and logs that are the container's own output.

use crate::node::{
    delete, deploy, enforce_pod_security, first_container, first_pod, logs_until, service, status_until, take_turn,
};
use axum::http::StatusCode;
use futures::StreamExt;
use serde_json::json;
use std::time::Duration;

/// The seed's example (nginx, as root, port 80) starts under the security context the
/// service renders, in a namespace that enforces Pod Security "baseline", is ready, and
/// answers another pod through its Service, by the Service's name (cluster DNS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_nginx_runs_and_answers_through_its_service() {
    let (_turn, app) = take_turn().await;
    enforce_pod_security(&app, "baseline").await;
    let web = deploy(
        &app,
        "containers: [{name: nginx, image: nginx, cpu: 1, memory: 0.25, ports: [{name: http, port: 80}]}]",
    )
    .await;
    // Ready, and still so a few seconds later (a crashing nginx is ready for a moment).
    status_until(&app, &web, 90, |s| first_container(s)["ready"] == true).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = status_until(&app, &web, 5, |_| true).await;
    assert_eq!(first_container(&status)["ready"], true, "{status:#}");
    assert_eq!(first_container(&status)["restartCount"], 0, "{status:#}");

    let (name, _) = service(&app, &web, "nginx").await;
    let client = deploy(
        &app,
        &format!(
            "containers: [{{name: client, image: busybox, cpu: 1, memory: 0.1, command: [sh, -c, 'until wget -qO- http://{name}/; do sleep 1; done; sleep 3600']}}]"
        ),
    )
    .await;
    let status = status_until(&app, &client, 90, |s| s["pods"][0]["phase"] == "Running").await;
    logs_until(&app, &client, &first_pod(&status), "", "Welcome to nginx!", 60).await;
    // nginx logged the request on its own stdout.
    let nginx = first_pod(&status_until(&app, &web, 5, |_| true).await);
    logs_until(&app, &web, &nginx, "", "\"GET / HTTP/1.1\" 200", 30).await;
    delete(&app, &client).await;
    delete(&app, &web).await;
}

/// A value set with the secret route reaches the container through `fromSecret`; `user` and
/// `group` are the ids it runs as; `timestamps`, `sinceSeconds` and `follow` act on its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_the_containers_own_output() {
    let (_turn, app) = take_turn().await;
    let yaml = "containers: [{name: app, image: busybox, cpu: 1, memory: 0.1, user: 1000, group: 1000, \
        environment: [{name: GREETING, fromSecret: GREETING}], \
        command: [sh, -c, 'echo \"greeting: $GREETING\"; id; while true; do echo tick; sleep 1; done']}]";
    let id = app
        .create_record_with(&app.alice, json!({"title": "logs", "data": yaml}))
        .await;
    let secret = format!("/kubernetes/deployments/{id}/secret");
    let (status, body) = app
        .call(
            "PUT",
            &secret,
            &app.alice,
            Some(json!({"GREETING": "hello from a secret"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let status = status_until(&app, &id, 90, |s| first_container(s)["ready"] == true).await;
    let pod = first_pod(&status);

    let logs = logs_until(&app, &id, &pod, "", "tick", 30).await;
    assert!(logs.contains("greeting: hello from a secret"), "{logs}");
    assert!(logs.contains("uid=1000 gid=1000"), "{logs}");

    let stamped = logs_until(&app, &id, &pod, "timestamps=true", "tick", 10).await;
    for line in stamped.lines() {
        let stamp = line.split(' ').next().unwrap();
        assert!(
            stamp.parse::<jiff::Timestamp>().is_ok(),
            "a line without a timestamp: {line}"
        );
    }

    // The greeting was printed once, at the start: a window of the last 2 s has ticks only.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let recent = logs_until(&app, &id, &pod, "sinceSeconds=2", "tick", 10).await;
    assert!(!recent.contains("greeting"), "{recent}");
    assert!(recent.matches("tick").count() <= 4, "{recent}");

    // follow=true keeps the stream open and brings new lines as they are written.
    let response = app
        .open(
            "GET",
            &format!("/kubernetes/deployments/{id}/logs/{pod}?follow=true&sinceSeconds=1"),
            &app.alice,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let mut seen = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), async {
        while let Some(Ok(chunk)) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.matches("tick").count() >= 4 {
                break;
            }
        }
    })
    .await;
    assert!(
        seen.matches("tick").count() >= 4,
        "the followed stream brought: {seen:?}"
    );
    delete(&app, &id).await;
}

/// With `run_as_non_root` (opt-in), the pods pass Pod Security "restricted": a server that
/// runs as its own user starts in a namespace that enforces it and answers another pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_pod_security_restricted_a_non_root_server_starts_and_answers() {
    let (_turn, mut app) = take_turn().await;
    enforce_pod_security(&app, "restricted").await;
    app.state.render = std::sync::Arc::new(llp_spec::RenderConfig {
        run_as_non_root: true,
        ..(*app.state.render).clone()
    });
    let server = deploy(
        &app,
        "containers: [{name: files, image: python, cpu: 1, memory: 0.25, user: 1000, group: 1000, \
         ports: [{name: http, port: 8000}], command: [python3, -m, http.server, '8000', --directory, /etc]}]",
    )
    .await;
    status_until(&app, &server, 90, |s| first_container(s)["ready"] == true).await;
    let (_, ip) = service(&app, &server, "files").await;
    let client = deploy(
        &app,
        &format!(
            "containers: [{{name: client, image: busybox, cpu: 1, memory: 0.1, user: 1000, \
             command: [sh, -c, 'until wget -qO- http://{ip}:8000/; do sleep 1; done; sleep 3600']}}]"
        ),
    )
    .await;
    let status = status_until(&app, &client, 90, |s| s["pods"][0]["phase"] == "Running").await;
    logs_until(&app, &client, &first_pod(&status), "", "Directory listing for /", 60).await;
    delete(&app, &client).await;
    delete(&app, &server).await;
}
