//! The `directus` record source against a real Directus (the LLP API), and against LLP APIs
//! that are down, failing or slow.

use crate::helpers::{TestApp, app, app_with_cluster, code};
use crate::llp_api::{Role, llp_api};
use axum::http::StatusCode;
use llp_k8s::records::directus::{DirectusConfig, DirectusSource};
use llp_k8s::records::{RecordSource, Token};
use serde_json::{Value, json};
use std::sync::Arc;

fn source(url: &str, tweak: impl FnOnce(&mut DirectusConfig)) -> Arc<dyn RecordSource> {
    let mut config = DirectusConfig {
        url: url.to_owned(),
        ..DirectusConfig::default()
    };
    tweak(&mut config);
    Arc::new(DirectusSource::new(config).unwrap())
}

const WEB: &str = "containers: [{name: web, image: nginx}]";

/// `app` with the directus source at `url`, configured by `tweak`, its LLP API requests
/// counted in the app's `/metrics`.
fn counted(app: TestApp, url: &str, tweak: impl FnOnce(&mut DirectusConfig)) -> TestApp {
    let mut config = DirectusConfig {
        url: url.to_owned(),
        ..DirectusConfig::default()
    };
    tweak(&mut config);
    let source = DirectusSource::new(config)
        .unwrap()
        .counting(app.state.metrics.llp_api());
    app.with_records(Arc::new(source))
}

async fn deployed_app() -> TestApp {
    app_with_cluster().await.with_records(source(&llp_api().url, |_| {}))
}

#[tokio::test]
async fn the_owner_deploys_and_another_user_gets_the_answer_for_an_unknown_id() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let bob = api.add_user("bob", Role::Student).await;
    let id = api.create_record(&alice, json!({"title": "web", "data": WEB})).await;
    let app = deployed_app().await;

    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &alice, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .call("GET", &format!("/kubernetes/deployments/{id}"), &alice, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["replicas"], 1);

    let unknown = uuid::Uuid::new_v4().to_string();
    for (method, route) in [
        ("GET", ""),
        ("PUT", ""),
        ("DELETE", ""),
        ("PATCH", "?scale=0"),
        ("POST", "/hooks/restart"),
        ("GET", "/logs/pod-0"),
        ("GET", "/events/pod-0"),
        ("DELETE", "/pods/pod-0"),
        ("GET", "/secret"),
        ("GET", "/config"),
    ] {
        let (status, theirs) = app
            .call(method, &format!("/kubernetes/deployments/{id}{route}"), &bob, None)
            .await;
        let (unknown_status, nobodys) = app
            .call(method, &format!("/kubernetes/deployments/{unknown}{route}"), &bob, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {route}: {theirs}");
        assert_eq!(
            (status, code(&theirs)),
            (unknown_status, code(&nobodys)),
            "{method} {route}"
        );
        assert_eq!(
            theirs.to_string().replace(&id, "ID"),
            nobodys.to_string().replace(&unknown, "ID"),
            "{method} {route}: the same words for both"
        );
    }
    // Bob's DELETE and scale did nothing.
    let (status, body) = app
        .call("GET", &format!("/kubernetes/deployments/{id}"), &alice, None)
        .await;
    assert_eq!((status, &body["replicas"]), (StatusCode::OK, &json!(1)), "{body}");

    // The LLP's admin may read every record, so may act on it.
    let (status, _) = app
        .call("GET", &format!("/kubernetes/deployments/{id}"), &api.admin_token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_bad_or_missing_token_is_401() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let id = api.create_record(&alice, json!({"title": "web", "data": WEB})).await;
    let app = deployed_app().await;
    for token in ["not-a-token", ""] {
        let (status, body) = app
            .call("GET", &format!("/kubernetes/deployments/{id}"), token, None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}: {body}");
        assert_eq!(code(&body), "INVALID_CREDENTIALS");
    }
}

#[tokio::test]
async fn an_edit_in_the_llp_is_what_the_next_deploy_applies() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let id = api.create_record(&alice, json!({"title": "web", "data": WEB})).await;
    let app = deployed_app().await;
    let (status, _) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &alice, None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    api.update_record(&alice, &id, json!({"data": format!("replicas: 2\n{WEB}")}))
        .await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &alice, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["replicas"], 2, "{body}");
}

#[tokio::test]
async fn a_record_taken_away_stops_changes_at_once_and_status_after_the_cache_ttl() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let id = api.create_record(&alice, json!({"title": "web", "data": WEB})).await;
    let app = app_with_cluster()
        .await
        .with_records(source(&api.url, |c| c.record_cache_seconds = 1));
    let route = format!("/kubernetes/deployments/{id}");
    assert_eq!(app.call("PUT", &route, &alice, None).await.0, StatusCode::CREATED);
    assert_eq!(app.call("GET", &route, &alice, None).await.0, StatusCode::OK);

    api.delete_record(&alice, &id).await;
    for (method, path) in [
        ("PUT", route.clone()),
        ("PATCH", format!("{route}?scale=0")),
        ("DELETE", route.clone()),
    ] {
        let (status, body) = app.call(method, &path, &alice, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} asks the LLP afresh: {body}");
    }
    // A status poll may be answered from the cache for up to 1.5 x its TTL (an expired answer
    // stands in while it is refreshed), not longer.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let (status, _) = app.call("GET", &route, &alice, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn polls_of_one_record_cost_the_llp_api_one_read_per_cache_ttl() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let id = api.create_record(&alice, json!({"title": "web", "data": WEB})).await;
    let app = counted(app_with_cluster().await, &api.url, |c| {
        c.record_cache_seconds = 1;
    });
    let route = format!("/kubernetes/deployments/{id}");
    assert_eq!(app.call("PUT", &route, &alice, None).await.0, StatusCode::CREATED);
    let poll_twenty_at_once = || async {
        let polls = (0..20).map(|_| app.call("GET", &route, &alice, None));
        for (status, body) in futures::future::join_all(polls).await {
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    poll_twenty_at_once().await;
    let (_, metrics) = app.raw("GET", "/metrics", "").await;
    let count = |metrics: &str, labels: &str| {
        let line = format!("llp_k8s_llp_api_requests_total{{{labels}}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(count(&metrics, r#"endpoint="users/me",outcome="200""#), 1, "{metrics}");
    // The deploy reads afresh; what it read also answers the twenty concurrent polls after it.
    assert_eq!(count(&metrics, r#"endpoint="items",outcome="200""#), 1, "{metrics}");
    // Once it expired, twenty concurrent polls cost one read between them: they wait for it,
    // or (within half a TTL of the expiry) are answered by the expired record while it runs
    // in the background, so it is counted once it is done.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    poll_twenty_at_once().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let metrics = loop {
        let (_, metrics) = app.raw("GET", "/metrics", "").await;
        if count(&metrics, r#"endpoint="items",outcome="200""#) >= 2 || std::time::Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(count(&metrics, r#"endpoint="items",outcome="200""#), 2, "{metrics}");
}

#[tokio::test]
async fn a_record_polled_late_in_its_cache_life_is_refreshed_ahead() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let id = api.create_record(&alice, json!({"title": "web", "data": WEB})).await;
    let app = counted(app(), &api.url, |c| {
        c.record_cache_seconds = 8;
    });
    // Polls read the record (here answered 503: no cluster; the read is what counts).
    let route = format!("/kubernetes/deployments/{id}");
    let poll = || app.call("GET", &route, &alice, None);
    // Reads of the record Directus answered, and the metrics that say so.
    let reads = || async {
        let (_, metrics) = app.raw("GET", "/metrics", "").await;
        let line = r#"llp_k8s_llp_api_requests_total{endpoint="items",outcome="200"} "#;
        let sent = metrics
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .map_or(0, |n| n.parse::<u64>().unwrap());
        (sent, metrics)
    };
    let before = std::time::Instant::now();
    poll().await;
    let after = before.elapsed();
    assert_eq!(reads().await.0, 1);
    // The entry lives 6.4 to 8 s and ages after three quarters of that (4.8 to 6 s): at 6.0 s
    // after the read it is aging, whatever its life.
    let at =
        |seconds: f64| tokio::time::sleep(std::time::Duration::from_secs_f64(seconds).saturating_sub(before.elapsed()));
    at(6.0 + after.as_secs_f64()).await;
    assert!(
        before.elapsed().as_secs_f64() < 6.4,
        "the machine is too slow for this test's timing"
    );
    poll().await;
    // The read runs in the background; a busy Directus (other tests) may take a while.
    let (mut sent, mut metrics) = reads().await;
    while sent < 2 && before.elapsed().as_secs_f64() < 8.0 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        (sent, metrics) = reads().await;
    }
    assert_eq!(sent, 2, "the aging poll started one read in the background: {metrics}");
    // Past the first entry's life, polls are answered from the refreshed one.
    at(8.1).await;
    poll().await;
    let (sent, metrics) = reads().await;
    assert_eq!(sent, 2, "{metrics}");
}

#[tokio::test]
async fn limits_follow_the_llp_role_through_the_group_mapping() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let carol = api.add_user("carol", Role::Management).await;
    let big = json!({"title": "big", "data": "containers: [{name: train, image: pytorch, cpu: 64}]"});
    let alices = api.create_record(&alice, big.clone()).await;
    let carols = api.create_record(&carol, big).await;
    let app = deployed_app().await;

    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{alices}"), &alice, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "containers[0].cpu");
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{carols}"), &carol, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "management may ask for 64 cores: {body}");
}

#[tokio::test]
async fn who_may_not_read_their_role_gets_groups_through_the_identity_token() {
    let api = llp_api();
    let dave = Token::new(api.add_user("dave", Role::Staff).await);
    let staff_is_management = |c: &mut DirectusConfig| {
        c.groups.insert("Staff".into(), "management".into());
    };
    let own_eyes = source(&api.url, staff_is_management);
    let identity = own_eyes.authenticate(&dave).await.unwrap();
    assert_eq!(identity.groups, Vec::<String>::new(), "Staff may not read their role");
    let lookup = source(&api.url, |c| {
        staff_is_management(c);
        c.identity_token = Some(Token::new(api.admin_token.clone()));
    });
    let identity = lookup.authenticate(&dave).await.unwrap();
    assert_eq!(identity.groups, ["management"]);
    assert!(!identity.admin);
}

#[tokio::test]
async fn the_items_routes_are_the_llps_own() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let app = app().with_records(source(&api.url, |_| {}));
    let (status, _) = app.call("GET", "/items/deployments", &alice, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The answer to a deployment route and to `/readyz` when the LLP API is at `url`.
async fn answers(url: &str) -> [(StatusCode, Value); 2] {
    let app = app().with_records(source(url, |c| c.timeout_seconds = 1));
    [
        app.call("GET", "/kubernetes/deployments/42", "some-token", None).await,
        app.call("GET", "/readyz", "", None).await,
    ]
}

fn assert_names_the_llp_api(body: &Value) {
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("the LLP API"), "{body}");
}

#[tokio::test]
async fn an_unreachable_llp_api_is_502_naming_it() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for (status, body) in answers(&format!("http://{closed}")).await {
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert_names_the_llp_api(&body);
    }
}

#[tokio::test]
async fn a_failing_llp_api_is_502_naming_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let failing = axum::Router::new().fallback(|| async {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"errors": [{"message": "database locked"}]})),
        )
    });
    tokio::spawn(async move { axum::serve(listener, failing).await });
    for (status, body) in answers(&url).await {
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert_names_the_llp_api(&body);
        assert!(!body.to_string().contains("database locked"), "details stay in the log");
    }
}

#[tokio::test]
async fn a_slow_llp_api_is_504_naming_it() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    for (status, body) in answers(&url).await {
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
        assert_names_the_llp_api(&body);
    }
}

#[tokio::test]
async fn a_connection_dropped_before_answering_is_retried_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An LLP API whose first connection is closed unanswered (as a kept-alive connection the
    // server shuts just when it is reused), and which answers every later one.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0_u8; 4096];
            let _ = socket.read(&mut request).await;
            if std::mem::take(&mut first) {
                continue; // dropped: closed without an answer
            }
            let body = r#"{"data":{"id":"u1","first_name":"Ann"}}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    let metrics = llp_k8s::records::directus::LlpApiMetrics::default();
    let source = DirectusSource::new(DirectusConfig {
        url,
        ..DirectusConfig::default()
    })
    .unwrap()
    .counting(metrics.clone());
    let calls = metrics.requests;
    let identity = source.authenticate(&Token::new("t")).await.unwrap();
    assert_eq!(identity.name, "Ann");
    let count = |outcome: &str| {
        calls
            .get_or_create(&llp_k8s::records::directus::LlpApiLabels {
                endpoint: "users/me".into(),
                outcome: outcome.into(),
            })
            .get()
    };
    assert_eq!((count("unreachable"), count("200")), (1, 1));
}

#[tokio::test]
async fn an_expired_identity_costs_one_read_however_many_polls_ask_at_once() {
    let api = llp_api();
    let alice = api.add_user("alice", Role::Student).await;
    let id = api.create_record(&alice, json!({"title": "web", "data": WEB})).await;
    let app = counted(app(), &api.url, |c| {
        c.identity_cache_seconds = 1;
        c.record_cache_seconds = 60;
    });
    // Polls (answered 503 here: no cluster; who the caller is, is what counts).
    let route = format!("/kubernetes/deployments/{id}");
    let poll_twenty_at_once = || futures::future::join_all((0..20).map(|_| app.call("GET", &route, &alice, None)));
    let identity_reads = || {
        metric(
            &app,
            r#"llp_k8s_llp_api_requests_total{endpoint="users/me",outcome="200"} "#,
        )
    };
    poll_twenty_at_once().await;
    assert_eq!(identity_reads().await, 1);
    // Past the identity's life (0.8 to 1 s), twenty polls at once are answered by the expired
    // identity while one read refreshes it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    poll_twenty_at_once().await;
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while identity_reads().await < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the identity is refreshed");
    assert_eq!(
        identity_reads().await,
        2,
        "single flight: one /users/me for twenty polls"
    );
    // Past the stale allowance too (1.5 s), twenty polls at once wait for one read.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    poll_twenty_at_once().await;
    assert_eq!(identity_reads().await, 3, "one more read, not twenty");
    // `/metrics` says how each of the sixty polls was answered: the first twenty and the last
    // waited for the LLP API, the second were answered by the expired identity (those that
    // came before the end of its stale allowance: the test cannot time them closer).
    let answered = |answer: &'static str| {
        let app = &app;
        async move {
            let line = format!(r#"llp_k8s_llp_cache_lookups_total{{cache="identities",answer="{answer}"}} "#);
            metric(app, &line).await
        }
    };
    let (waited, stale) = (answered("waited").await, answered("stale").await);
    assert_eq!(waited + stale + answered("fresh").await + answered("aging").await, 60);
    assert!(waited >= 40 && stale >= 1, "{waited} waited, {stale} stale");
}

/// The value of the metric whose line starts with `line` (0 when it has none yet).
async fn metric(app: &TestApp, line: &str) -> u64 {
    let (_, metrics) = app.raw("GET", "/metrics", "").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .map_or(0, |n| n.parse::<u64>().unwrap())
}
