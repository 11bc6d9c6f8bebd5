//! Hostile and careless clients (issue 14): what they send never costs the service more than it
//! should.

use crate::helpers::{app, app_behind_relay, code, serve_with};
use axum::http::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = app();
    for i in 0..50 {
        app.raw(&format!("BREW{i}"), "/healthz", "").await;
    }
    let (_, text) = app.raw("GET", "/metrics", "").await;
    let methods: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("llp_k8s_http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(methods, ["other"].into(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_cluster_is_a_504_naming_it_on_every_route_and_recovery_is_automatic() {
    let (app, relay) = app_behind_relay(Duration::from_secs(1)).await;
    let (id, pod) = app
        .running(json!({"data": "containers: [{name: web, image: nginx, cpu: 1, memory: 1}]"}))
        .await;
    let deployment = format!("/kubernetes/deployments/{id}");

    relay.freeze();
    // Status still answers from the caches, saying since when they are stale; once that has
    // lasted longer than allowed, /readyz fails.
    let stale = app
        .status_until(&id, &app.alice, |s| s["stale"]["since"].is_string())
        .await;
    assert!(
        stale["stale"]["message"].as_str().unwrap().contains("out of date"),
        "{stale}"
    );
    assert_eq!(stale["pods"][0]["name"], pod.as_str(), "the last known state: {stale}");
    let started = Instant::now();
    loop {
        let (status, body) = app.raw("GET", "/readyz", "").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(body.contains("has not answered since"), "{body}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "/readyz kept answering {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let routes = [
        ("PATCH", format!("{deployment}?scale=2")),
        ("POST", format!("{deployment}/hooks/restart")),
        ("GET", format!("{deployment}/logs/{pod}")),
        ("GET", format!("{deployment}/logs/{pod}?follow=true")),
        ("GET", format!("{deployment}/events/{pod}")),
        ("DELETE", format!("{deployment}/pods/{pod}")),
        ("GET", format!("{deployment}/secret")),
        ("PUT", format!("{deployment}/secret")),
        ("GET", format!("{deployment}/config")),
        ("GET", "/kubernetes/capacity".to_owned()),
        ("PUT", deployment.clone()),
        ("DELETE", deployment.clone()),
    ];
    for (method, path) in routes {
        let body = (method == "PUT" && path.ends_with("/secret")).then(|| json!({"KEY": "v"}));
        let started = Instant::now();
        let (status, answer) = app.call(method, &path, &app.alice, body).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::GATEWAY_TIMEOUT, "GATEWAY_TIMEOUT"),
            "{method} {path}: {answer}"
        );
        assert!(
            answer["errors"][0]["message"].as_str().unwrap().contains("the cluster"),
            "{answer}"
        );
        // A bound, not a benchmark: the route answers after the one call that timed out
        // (1 s), not after a deadline for each call it would have made (about 1.02 s here).
        assert!(
            started.elapsed() < Duration::from_millis(1900),
            "{method} {path} took {:?}",
            started.elapsed()
        );
    }

    relay.thaw();
    let thawed = Instant::now();
    app.status_until(&id, &app.alice, |s| s["stale"].is_null()).await;
    assert_eq!(app.raw("GET", "/readyz", "").await.0, StatusCode::OK);
    // Recovery takes a probe interval (200 ms here, 5 s by default) plus what the held
    // requests need to drain.
    eprintln!("recovered {:?} after the cluster answered again", thawed.elapsed());
    let (status, answer) = app
        .call("PATCH", &format!("{deployment}?scale=2"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn errors_no_handler_wrote_have_the_directus_shape_too() {
    let app = app();
    let long = format!("/kubernetes/deployments/{}", "x".repeat(10_000));
    let cases = [
        (
            "DELETE",
            "/kubernetes/capacity".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
        ("GET", long, StatusCode::URI_TOO_LONG, "URI_TOO_LONG"),
        ("GET", "/nowhere".to_owned(), StatusCode::NOT_FOUND, "NOT_FOUND"),
    ];
    for (method, path, status, code_) in cases {
        let (got, body) = app.call(method, &path, &app.alice, None).await;
        assert_eq!(
            (got, code(&body)),
            (status, code_),
            "{method} {}: {body}",
            &path[..40.min(path.len())]
        );
        assert!(
            body["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    let (got, body) = app
        .call(
            "PUT",
            "/kubernetes/deployments/1/secret",
            &app.alice,
            Some(json!({"A": "x".repeat(3 << 20)})),
        )
        .await;
    assert_eq!(
        (got, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
        "{body}"
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_and_connections_are_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let app = app();
    let limits = llp_k8s::http::server::ServerLimits {
        header_read_seconds: 2,
        max_connections: 2,
        ..Default::default()
    };
    let addr = serve_with(&app, limits).await;

    // Two connections that never send their headers take both slots: a third is not served.
    let mut silent = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: llp\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 256];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.read(&mut answer))
            .await
            .is_err(),
        "served beyond the cap"
    );
    // The silent ones are closed after the header timeout, which frees their slots.
    for connection in &mut silent {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), connection.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a silent connection was left open");
    }
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    // After its answer, an idle kept-alive connection is closed too.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "an idle kept-alive connection was left open");
}

crate::on_both_backends! {
async fn the_claims_of_a_renamed_volume_count_until_the_deployment_goes(backend) {
    let mut app = crate::helpers::app_on(backend).await;
    let mut table = llp_spec::LimitsTable::default();
    table.default.quota.storage = 100;
    app.state.limits = std::sync::Arc::new(table);
    let with_volume = |volume: &str| {
        json!({"data": format!(
            "containers: [{{name: web, image: nginx, volumeMounts: [{{name: {volume}, mountPath: /d}}]}}]\nvolumes: [{{name: {volume}, size: 40Gi}}]"
        )})
    };
    let id = app.create_record_with(&app.alice, with_volume("a")).await;
    let uri = format!("/kubernetes/deployments/{id}");
    let record = format!("/items/deployments/{id}");
    for (volume, expected) in [("a", StatusCode::CREATED), ("b", StatusCode::OK)] {
        app.call("PATCH", &record, &app.alice, Some(with_volume(volume))).await;
        let (status, body) = app.call("PUT", &uri, &app.alice, None).await;
        assert_eq!(status, expected, "{volume}: {body}");
        // Its claim is made with its pod.
        app.status_until(&id, &app.alice, |s| {
            s["volumes"].as_array().is_some_and(|v| v.iter().any(|v| v["name"] == volume && v["phase"] == "Bound"))
        })
        .await;
    }
    // a's and b's claims stay (Kubernetes keeps a StatefulSet's claims): a third 40 GiB
    // volume would hold 120 GiB against 100.
    app.call("PATCH", &record, &app.alice, Some(with_volume("c"))).await;
    assert_over_quota(
        app.call("PUT", &uri, &app.alice, None).await,
        "storage: this asks for 120 GiB",
    );
}
}

/// A connection that has sent the head of a PUT of a secret with `token`, and one byte of
/// its 100-byte body.
async fn slow_put(addr: std::net::SocketAddr, token: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut connection = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /kubernetes/deployments/x/secret HTTP/1.1\r\nHost: llp\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    connection.write_all(head.as_bytes()).await.unwrap();
    connection
}

/// The status line and body of the answer on `connection`, within `within`.
async fn answer_on(connection: &mut tokio::net::TcpStream, within: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(within, connection.read(&mut answer))
        .await
        .expect("no answer in time")
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_at_its_deadline() {
    use tokio::io::AsyncWriteExt;
    let app = app();
    let limits = llp_k8s::http::server::ServerLimits {
        body_read_seconds: 1,
        ..Default::default()
    };
    let addr = serve_with(&app, limits).await;
    let mut connection = slow_put(addr, &app.alice).await;
    let started = Instant::now();
    // A byte every 200 ms: the connection is never silent, the body never complete.
    let trickle = async {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if connection.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(1500), trickle).await;
    let answer = answer_on(&mut connection, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("REQUEST_TIMEOUT") && answer.contains("within 1 s"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
}

#[tokio::test]
async fn one_address_and_one_token_get_only_their_share_of_the_service() {
    use tokio::io::AsyncWriteExt;
    let app = app();
    let limits = llp_k8s::http::server::ServerLimits {
        max_connections: 16,
        connections_per_address: 3,
        requests_per_token: 2,
        body_read_seconds: 30,
        ..Default::default()
    };
    let addr = serve_with(&app, limits).await;
    // Two slow requests with Alice's token: a third with it is a 429 at once, Bob's is served.
    let _held = [slow_put(addr, &app.alice).await, slow_put(addr, &app.alice).await];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let healthz = |token: &str| {
        format!("GET /kubernetes/capacity HTTP/1.1\r\nHost: llp\r\nAuthorization: Bearer {token}\r\n\r\n")
    };
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    third.write_all(healthz(&app.alice).as_bytes()).await.unwrap();
    let answer = answer_on(&mut third, Duration::from_secs(2)).await;
    assert!(
        answer.starts_with("HTTP/1.1 429") && answer.contains("REQUESTS_EXCEEDED"),
        "{answer}"
    );
    // That was the address's third connection: a fourth from 127.0.0.1 is closed unserved.
    let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = fourth.write_all(healthz(&app.bob).as_bytes()).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::io::AsyncReadExt::read_to_end(&mut fourth, &mut rest),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed at once, unanswered: {:?}",
        String::from_utf8_lossy(&rest)
    );
    // Another address (127.0.0.2 is loopback too) is served.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(addr).await.unwrap();
    other.write_all(healthz(&app.bob).as_bytes()).await.unwrap();
    let answer = answer_on(&mut other, Duration::from_secs(2)).await;
    assert!(!answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_may_follow_only_so_many_logs_at_once() {
    let mut app = crate::helpers::app_with_cluster().await;
    app.state.follows = std::sync::Arc::new(llp_k8s::http::server::Follows::new(2));
    let (id, pod) = app
        .running(json!({"data": "containers: [{name: web, image: nginx}]"}))
        .await;
    let follow = format!("/kubernetes/deployments/{id}/logs/{pod}?follow=true");
    let first = app.open("GET", &follow, &app.alice).await;
    let second = app.open("GET", &follow, &app.alice).await;
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
    let (status, body) = app.call("GET", &follow, &app.alice, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "REQUESTS_EXCEEDED"),
        "{body}"
    );
    // Closing one frees its slot.
    drop(first);
    let again = app.open("GET", &follow, &app.alice).await;
    assert_eq!(again.status(), StatusCode::OK);
}

crate::on_both_backends! {
    async fn the_cap_on_log_streams_holds_across_replicas_for_requests_sent_at_once(backend) {
        let mut app = crate::helpers::app_on(backend).await;
    app.state.follows = std::sync::Arc::new(llp_k8s::http::server::Follows::new(2));
    let (id, pod) = app
        .running(json!({"data": "containers: [{name: web, image: nginx}]"}))
        .await;
    let other = app.replica().await;
    let follow = format!("/kubernetes/deployments/{id}/logs/{pod}?follow=true");
    // Six at once, three to each replica: each replica alone would let two through.
    let opened = futures::future::join_all((0..6).map(|n| {
        let state = if n % 2 == 0 { app.state.clone() } else { other.clone() };
        let (follow, alice) = (follow.clone(), app.alice.clone());
        async move { crate::helpers::TestApp::open_on(&state, "GET", &follow, &alice).await }
    }))
    .await;
    let statuses: Vec<StatusCode> = opened.iter().map(|r| r.status()).collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 2, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Bob's streams are his own.
    let bobs = app
        .running_as(&app.bob, json!({"data": "containers: [{name: web, image: nginx}]"}))
        .await;
    let bob_follow = format!("/kubernetes/deployments/{}/logs/{}?follow=true", bobs.0, bobs.1);
    let bob = crate::helpers::TestApp::open_on(&other, "GET", &bob_follow, &app.bob).await;
    assert_eq!(bob.status(), StatusCode::OK);
    // Closing alice's streams frees them in both replicas.
    drop(opened);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = crate::helpers::TestApp::open_on(&other, "GET", &follow, &app.alice).await;
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still refused: {}",
            again.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
}

fn exposed(hostname: &str) -> serde_json::Value {
    json!({"data": "containers: [{name: web, image: nginx, ports: [{port: 80}]}]",
        "exposed_service": "web", "exposed_port": 80, "exposed_hostname": hostname})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_of_the_service_never_both_win_a_hostname() {
    let app = crate::helpers::app_with_cluster().await;
    let replica = app.replica().await;
    for round in 0..5 {
        let hostname = format!("race-{round}");
        let alices = app.create_record_with(&app.alice, exposed(&hostname)).await;
        let bobs = app.create_record_with(&app.bob, exposed(&hostname)).await;
        let (a, b) = (
            format!("/kubernetes/deployments/{alices}"),
            format!("/kubernetes/deployments/{bobs}"),
        );
        let (first, second) = tokio::join!(
            crate::helpers::TestApp::call_on(&app.state, "PUT", &a, &app.alice),
            crate::helpers::TestApp::call_on(&replica, "PUT", &b, &app.bob),
        );
        let mut statuses = [first.0, second.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "round {round}: {first:?} {second:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostname_is_free_again_once_given_up_and_never_one_another_ingress_serves() {
    let app = crate::helpers::app_with_cluster().await;
    let alices = app.create_record_with(&app.alice, exposed("first")).await;
    let put = |id: String, token: String| {
        let app = &app;
        async move {
            app.call("PUT", &format!("/kubernetes/deployments/{id}"), &token, None)
                .await
        }
    };
    assert_eq!(put(alices.clone(), app.alice.clone()).await.0, StatusCode::CREATED);
    let bobs = app.create_record_with(&app.bob, exposed("first")).await;
    assert_eq!(put(bobs.clone(), app.bob.clone()).await.0, StatusCode::CONFLICT);
    // Alice moves to another name: hers is free for Bob.
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/items/deployments/{alices}"),
            &app.alice,
            Some(json!({"exposed_hostname": "second"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(put(alices.clone(), app.alice.clone()).await.0, StatusCode::OK);
    assert_eq!(put(bobs, app.bob.clone()).await.0, StatusCode::CREATED);

    // A host another tool's Ingress serves in the namespace cannot be claimed.
    let foreign: k8s_openapi::api::networking::v1::Ingress = serde_json::from_value(json!({
        "metadata": {"name": "not-ours"},
        "spec": {"rules": [{"host": "theirs.llp.example.org"}]},
    }))
    .unwrap();
    kube::Api::<k8s_openapi::api::networking::v1::Ingress>::namespaced(app.admin_client(), "services")
        .create(&Default::default(), &foreign)
        .await
        .unwrap();
    let carols = app.create_record_with(&app.alice, exposed("theirs")).await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{carols}"), &app.alice, None)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "CONFLICT"), "{body}");
    // Nor one an Ingress of another namespace serves, even one labelled as if it were ours.
    let docs = app.create_record_with(&app.alice, exposed("docs")).await;
    let elsewhere: k8s_openapi::api::networking::v1::Ingress = serde_json::from_value(json!({
        "metadata": {"name": "docs", "labels": {"app.kubernetes.io/managed-by": "llp-k8s", "llp.kitegg.de/deployment": docs}},
        "spec": {"rules": [{"host": "docs.llp.example.org"}]},
    }))
    .unwrap();
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "elsewhere"}})).unwrap();
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(app.admin_client())
        .create(&Default::default(), &namespace)
        .await
        .unwrap();
    kube::Api::<k8s_openapi::api::networking::v1::Ingress>::namespaced(app.admin_client(), "elsewhere")
        .create(&Default::default(), &elsewhere)
        .await
        .unwrap();
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{docs}"), &app.alice, None)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "CONFLICT"), "{body}");

    // Reserved names and punycode look-alikes are refused before anything is claimed.
    for hostname in ["www", "localhost", "xn--80ak6aa92e"] {
        let id = app.create_record_with(&app.alice, exposed(hostname)).await;
        let (status, body) = app
            .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
            "{hostname}: {body}"
        );
        assert_eq!(body["errors"][0]["extensions"]["field"], "exposed_hostname");
        // Refused before the first write: no admission was recorded for it.
        let ledgers = kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(app.admin_client(), "services")
            .list(&kube::api::ListParams::default().labels("llp.kitegg.de/ledger=admission"))
            .await
            .unwrap();
        assert!(!ledgers.items.is_empty(), "alice's earlier deploys are in her ledger");
        for ledger in ledgers.items {
            assert!(
                !ledger.data.unwrap_or_default().contains_key(&id.to_string()),
                "{hostname}: refused, yet admitted in the ledger"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_with_the_cluster_are_the_4xx_they_are_never_a_503() {
    let app = crate::helpers::app_with_cluster().await;
    let (id, pod) = app
        .running(json!({"data": "containers: [{name: web, image: nginx}]"}))
        .await;
    let deployment = format!("/kubernetes/deployments/{id}");
    // One pod deleted three times at once: the first wins, the others find it going or gone.
    let path = format!("{deployment}/pods/{pod}");
    let (a, b, c) = tokio::join!(
        app.call("DELETE", &path, &app.alice, None),
        app.call("DELETE", &path, &app.alice, None),
        app.call("DELETE", &path, &app.alice, None),
    );
    for (status, body) in [a, b, c] {
        assert!(
            status == StatusCode::OK || status == StatusCode::NOT_FOUND,
            "{status}: {body}"
        );
    }
    // A scale racing the deployment's DELETE: done, or not found; never "unavailable".
    let scale = format!("{deployment}?scale=2");
    let (scaled, deleted) = tokio::join!(
        app.call("PATCH", &scale, &app.alice, None),
        app.call("DELETE", &deployment, &app.alice, None),
    );
    assert_eq!(deleted.0, StatusCode::OK, "{deleted:?}");
    assert!(
        scaled.0 == StatusCode::OK || scaled.0 == StatusCode::NOT_FOUND,
        "{scaled:?}"
    );
    let (status, _) = app.call("PATCH", &scale, &app.alice, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "scaling what is gone");
}

/// Asserts a `QUOTA_EXCEEDED` answer whose message says `over`.
#[track_caller]
fn assert_over_quota((status, body): (StatusCode, serde_json::Value), over: &str) {
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "QUOTA_EXCEEDED"),
        "{body}"
    );
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(over), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_deployments_stay_within_their_groups_quota_on_deploy_and_scale() {
    let mut app = crate::helpers::app_with_cluster().await;
    let mut table = llp_spec::LimitsTable::default();
    table.default.quota = llp_spec::quota::Quota {
        deployments: 2,
        cpu: 8,
        memory: 64.0,
        gpus: 2,
        storage: 100,
    };
    app.state.limits = std::sync::Arc::new(table);
    let small = json!({"data": "containers: [{name: web, image: nginx, cpu: 4, memory: 1}]"});
    let put = |id: &str, token: &str| {
        let (app, uri, token) = (&app, format!("/kubernetes/deployments/{id}"), token.to_owned());
        async move { app.call("PUT", &uri, &token, None).await }
    };
    let first = app.create_record_with(&app.alice, small.clone()).await;
    let second = app.create_record_with(&app.alice, small.clone()).await;
    assert_eq!(put(&first, &app.alice).await.0, StatusCode::CREATED);
    assert_eq!(put(&second, &app.alice).await.0, StatusCode::CREATED);
    assert_eq!(
        put(&second, &app.alice).await.0,
        StatusCode::OK,
        "a deployment again is not counted twice"
    );

    // A third deployment is one too many; Bob's own quota is untouched by Alice's.
    let third = app.create_record_with(&app.alice, small.clone()).await;
    assert_over_quota(
        put(&third, &app.alice).await,
        "deployments: this asks for 1 and your other deployments hold 2, 1 over your group's 2",
    );
    let bobs = app.create_record_with(&app.bob, small).await;
    assert_eq!(put(&bobs, &app.bob).await.0, StatusCode::CREATED);

    // Scaling up past the CPU total says by how much.
    let scale = format!("/kubernetes/deployments/{first}?scale=3");
    assert_over_quota(
        app.call("PATCH", &scale, &app.alice, None).await,
        "CPU: this asks for 12 cores and your other deployments hold 4 cores, 8 cores over your group's 8 cores",
    );
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/kubernetes/deployments/{first}?scale=0"),
            &app.alice,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "scaling down is always allowed");

    // Storage counts a claim per replica: 16 × 10Gi is over 100 GiB.
    let (status, _) = app
        .call("DELETE", &format!("/kubernetes/deployments/{second}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let big = json!({"data": "containers: [{name: web, image: nginx, cpu: 1, memory: 1, volumeMounts: [{name: d, mountPath: /d}]}]\nvolumes: [{name: d, size: 10Gi}]\nreplicas: 16"});
    let big = app.create_record_with(&app.alice, big).await;
    assert_over_quota(put(&big, &app.alice).await, "storage: this asks for 160 GiB");

    // An init container reserves its CPU as the scheduler counts it: a 6-core one before a
    // 1-core app is 6 cores a pod, 12 for two, over the group's 8.
    let init = json!({"data": "initContainers: [{name: fetch, image: busybox, cpu: 6, memory: 1}]\ncontainers: [{name: web, image: nginx, cpu: 1, memory: 1}]\nreplicas: 2"});
    let init = app.create_record_with(&app.alice, init).await;
    assert_over_quota(put(&init, &app.alice).await, "CPU: this asks for 12 cores");
}
