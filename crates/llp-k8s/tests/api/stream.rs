//! `/kubernetes/deployments/{id}/stream`: status and pod events as server-sent events, from the
//! watch caches; owner-checked, capped per user, resumable, ended by the deletion.

use crate::helpers::*;
use crate::on_both_backends;
use axum::http::StatusCode;
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

/// One server-sent event.
#[derive(Debug, Clone)]
struct Frame {
    event: String,
    id: String,
    data: Value,
}

/// An open stream, read frame by frame.
struct Sse {
    body: axum::body::BodyDataStream,
    buffer: String,
    /// Comment lines (heartbeats) seen.
    comments: usize,
}

impl Sse {
    async fn open(app: &TestApp, id: &str, token: &str, last_event_id: Option<&str>) -> Self {
        let response = open_stream(app, id, token, last_event_id).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Sse {
            body: response.into_body().into_data_stream(),
            buffer: String::new(),
            comments: 0,
        }
    }

    /// The next frame within `within`; `None` when the stream ended.
    async fn next_within(&mut self, within: Duration) -> Option<Frame> {
        tokio::time::timeout(within, self.next())
            .await
            .unwrap_or_else(|_| panic!("no frame within {within:?}; buffered: {:?}", self.buffer))
    }

    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if event.is_empty() {
                    continue;
                }
                return Some(Frame {
                    event,
                    id,
                    data: serde_json::from_str(&data).unwrap(),
                });
            }
            let chunk = self.body.next().await?.unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Frames until one satisfies `done` (within 20 s); all of them, that one last.
    async fn until(&mut self, done: impl Fn(&Frame) -> bool) -> Vec<Frame> {
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = tokio::time::timeout(left, self.next())
                .await
                .unwrap_or_else(|_| panic!("no such frame within 20 s; frames: {frames:#?}"))
                .unwrap_or_else(|| panic!("the stream ended before; frames: {frames:#?}"));
            let found = done(&frame);
            frames.push(frame);
            if found {
                return frames;
            }
        }
    }
}

async fn open_stream(app: &TestApp, id: &str, token: &str, last_event_id: Option<&str>) -> axum::response::Response {
    let mut request = axum::http::Request::builder()
        .uri(format!("/kubernetes/deployments/{id}/stream"))
        .header("authorization", format!("Bearer {token}"));
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last);
    }
    let request = request.body(axum::body::Body::empty()).unwrap();
    tower::ServiceExt::oneshot(llp_k8s::http::router(app.state.clone()), request)
        .await
        .unwrap()
}

fn web() -> Value {
    json!({"title": "web", "data": "containers: [{name: web, image: nginx}]"})
}

on_both_backends! {
    async fn a_stream_tells_each_status_change_the_pods_events_and_the_deletion(backend) {
        let app = app_on(backend).await;
        let (id, pod) = app.running(web()).await;
        // Settled: the status no longer changes between the poll and the stream.
        let polled = app.status_until(&id, &app.alice, |s| s["readyReplicas"] == 1).await;
        let mut stream = Sse::open(&app, &id, &app.alice, None).await;

        let first = stream.next_within(Duration::from_secs(5)).await.unwrap();
        assert_eq!(first.event, "status");
        assert_eq!(first.data, polled, "the first frame is what GET answers");
        // The running pod's events, as the events route gives them, with the pod's name.
        let frames = stream.until(|f| f.event == "event" && f.data["reason"] == "Started").await;
        let (_, route) = app.call("GET", &format!("/kubernetes/deployments/{id}/events/{pod}"), &app.alice, None).await;
        let told: Vec<&Frame> = frames.iter().filter(|f| f.event == "event").collect();
        assert!(told.iter().all(|f| f.data["pod"] == pod.as_str()), "{told:#?}");
        for frame in &told {
            let mut entry = frame.data.clone();
            entry.as_object_mut().unwrap().remove("pod");
            assert!(route.as_array().unwrap().contains(&entry), "{entry} is among {route}");
        }
        let ids: Vec<u64> = frames.iter().map(|f| f.id.parse().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] <= w[1]), "ids only grow: {ids:?}");

        // A scale shows as new statuses, then the new pod's events.
        let (status, _) = app.call("PATCH", &format!("/kubernetes/deployments/{id}?scale=2"), &app.alice, None).await;
        assert_eq!(status, StatusCode::OK);
        // In either order: a pod's event may reach the service before the pod itself.
        let second = format!("{}-1", pod.trim_end_matches("-0"));
        let two_pods = |f: &Frame| f.event == "status" && f.data["pods"].as_array().is_some_and(|p| p.len() == 2);
        let scheduled = |f: &Frame| f.event == "event" && f.data["pod"] == second.as_str() && f.data["reason"] == "Scheduled";
        let seen = std::sync::Mutex::new((false, false));
        stream
            .until(|f| {
                let mut seen = seen.lock().unwrap();
                seen.0 |= two_pods(f);
                seen.1 |= scheduled(f);
                seen.0 && seen.1
            })
            .await;

        // The deletion is the last frame; the stream ends.
        let (status, _) = app.call("DELETE", &format!("/kubernetes/deployments/{id}"), &app.alice, None).await;
        assert_eq!(status, StatusCode::OK);
        let frames = stream.until(|f| f.event == "deleted").await;
        assert!(frames.iter().all(|f| f.event != "deleted" || std::ptr::eq(f, frames.last().unwrap())));
        assert!(stream.next_within(Duration::from_secs(5)).await.is_none(), "the stream ends");
    }
}

#[tokio::test]
async fn a_stream_is_its_owners_alone_and_the_token_may_be_a_query_parameter() {
    let app = app_with_cluster().await;
    let (id, _) = app.running(web()).await;
    let undeployed = app.create_record(&app.alice).await;
    for (token, id, expected) in [
        (&app.bob, &id, StatusCode::NOT_FOUND),
        (&app.alice, &"no-such-record".to_owned(), StatusCode::NOT_FOUND),
        (&app.alice, &undeployed, StatusCode::NOT_FOUND),
        (&String::new(), &id, StatusCode::UNAUTHORIZED),
    ] {
        let (status, body) = app
            .call("GET", &format!("/kubernetes/deployments/{id}/stream"), token, None)
            .await;
        assert_eq!(status, expected, "{body}");
    }
    // `EventSource` cannot set headers.
    let request = axum::http::Request::builder()
        .uri(format!(
            "/kubernetes/deployments/{id}/stream?access_token={}",
            app.alice
        ))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(llp_k8s::http::router(app.state.clone()), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    let request = axum::http::Request::builder()
        .uri(format!("/kubernetes/deployments/{id}/stream?access_token={}", app.bob))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(llp_k8s::http::router(app.state.clone()), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_per_user_are_capped_when_opened_at_once() {
    let mut app = app_with_cluster().await;
    app.state.status_streams = std::sync::Arc::new(llp_k8s::http::server::StatusStreams::new(3));
    let (id, _) = app.running(web()).await;
    let opened = futures::future::join_all((0..8).map(|_| open_stream(&app, &id, &app.alice, None))).await;
    let (open, refused): (Vec<_>, Vec<_>) = opened.into_iter().partition(|r| r.status() == StatusCode::OK);
    assert_eq!((open.len(), refused.len()), (3, 5));
    for response in refused {
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("3 status streams"), "{message}");
    }
    // Another user has slots of their own; a closed stream frees one.
    let (bobs, _) = {
        let body = json!({"title": "web", "data": "containers: [{name: web, image: nginx}]"});
        let id = app.create_record_with(&app.bob, body).await;
        let (status, _) = app
            .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.bob, None)
            .await;
        assert_eq!(status, StatusCode::CREATED);
        (id, ())
    };
    assert_eq!(open_stream(&app, &bobs, &app.bob, None).await.status(), StatusCode::OK);
    drop(open);
    assert_eq!(open_stream(&app, &id, &app.alice, None).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_comes_back_with_its_last_event_id_is_told_only_newer_events() {
    let app = app_with_cluster().await;
    let (id, _) = app.running(web()).await;
    let mut first = Sse::open(&app, &id, &app.alice, None).await;
    let frames = first
        .until(|f| f.event == "event" && f.data["reason"] == "Started")
        .await;
    let events: Vec<&Frame> = frames.iter().filter(|f| f.event == "event").collect();
    assert!(events.len() >= 2, "{events:#?}");
    let resume_at = &events[0].id;

    let mut again = Sse::open(&app, &id, &app.alice, Some(resume_at)).await;
    let status = again.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(status.event, "status", "the status comes at once, as to any client");
    let mut resumed = Vec::new();
    while resumed.len() < events.len() - 1 {
        let frame = again.next_within(Duration::from_secs(5)).await.unwrap();
        if frame.event == "event" {
            resumed.push(frame.data);
        }
    }
    let expected: Vec<&Value> = events[1..].iter().map(|f| &f.data).collect();
    assert_eq!(
        resumed.iter().collect::<Vec<_>>(),
        expected,
        "the events after the id, and only those"
    );

    let response = open_stream(&app, &id, &app.alice, Some("yesterday")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errors"][0]["extensions"]["field"], "Last-Event-ID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_cost_the_cluster_no_request() {
    let mut app = app_with_cluster().await;
    app.state.status_streams = std::sync::Arc::new(llp_k8s::http::server::StatusStreams::new(100));
    let (id, _) = app.running(web()).await;
    let before = app.kube_api_requests().await;
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut stream = Sse::open(&app, &id, &app.alice, None).await;
        assert_eq!(
            stream.next_within(Duration::from_secs(5)).await.unwrap().event,
            "status"
        );
        streams.push(stream);
    }
    // The pods change (a restart): every stream is told, none asks the cluster.
    let (status, _) = app
        .call(
            "POST",
            &format!("/kubernetes/deployments/{id}/hooks/restart"),
            &app.alice,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let during = app.kube_api_requests().await;
    for stream in &mut streams {
        stream
            .until(|f| f.event == "event" && f.data["reason"] == "Killing")
            .await;
    }
    assert_eq!(app.kube_api_requests().await, during, "50 streams, 0 requests");
    assert!(
        during - before <= 2,
        "the restart's own requests only: {}",
        during - before
    );
}
