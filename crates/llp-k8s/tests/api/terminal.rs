//! `/exec` where no container runs (the simulator): the checks before the WebSocket opens.
//! What a terminal does in a container is tested on the real node (tests/containers/terminal.rs).

use crate::helpers::*;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_is_refused_before_it_opens_with_the_reason() {
    let mut app = app_with_cluster().await;
    app.state.terminals = std::sync::Arc::new(llp_k8s::http::server::Terminals::new(1));
    let (id, pod) = app
        .running(json!({"title": "web", "data": "containers: [{name: web, image: nginx}]"}))
        .await;
    let addr = serve_with(&app, Default::default()).await;

    // Another user's pod, under his id or hers: 404, as on every pod route.
    let bobs = app.create_record(&app.bob).await;
    for id in [&id, &bobs] {
        let (status, _) = open_terminal(addr, (id, &pod), "", &app.bob).await.unwrap_err();
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, body) = open_terminal(addr, (&id, &pod), "container=db", &app.alice)
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["extensions"]["field"], "container", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("web"), "{body}");
    let (status, body) = open_terminal(addr, (&id, &pod), "tty=yes", &app.alice)
        .await
        .unwrap_err();
    assert_eq!(
        (status, &body["errors"][0]["extensions"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("tty"))
    );
    // The simulator's node runs no containers: said so, not a 404 or a 503.
    let (status, body) = open_terminal(addr, (&id, &pod), "command=sh", &app.alice)
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("run no containers"), "{message}");
    // A plain GET is not a terminal.
    let (status, body) = app
        .call(
            "GET",
            &format!("/kubernetes/deployments/{id}/pods/{pod}/exec"),
            &app.alice,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("WebSocket"), "{body}");
}
