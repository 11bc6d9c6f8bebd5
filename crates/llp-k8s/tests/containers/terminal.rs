//! Terminals on the real node: a command in one's own container, its input, output, error
//! output and exit code through the `v5.channel.k8s.io` framing; a TTY that takes a resize;
//! the idle timeout; the per-user cap; and nobody else's pod.

use crate::helpers::{open_terminal, serve_with};
use crate::node::{delete, deploy, first_pod, status_until, take_turn};
use axum::http::StatusCode;
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends `data` on exec channel `channel`.
async fn send(socket: &mut Socket, channel: u8, data: &[u8]) {
    let mut message = vec![channel];
    message.extend_from_slice(data);
    socket.send(Message::Binary(message.into())).await.unwrap();
}

/// What arrives until the server closes (at most `seconds`): the bytes of each channel, and
/// the close frame's reason.
async fn read_until_closed(socket: &mut Socket, seconds: u64) -> ([Vec<u8>; 4], String) {
    let mut channels: [Vec<u8>; 4] = Default::default();
    let read = async {
        while let Some(message) = socket.next().await {
            match message.unwrap() {
                Message::Binary(data) if !data.is_empty() && data[0] < 4 => {
                    channels[data[0] as usize].extend_from_slice(&data[1..]);
                }
                Message::Close(frame) => return frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                _ => {}
            }
        }
        String::new()
    };
    let reason = tokio::time::timeout(Duration::from_secs(seconds), read)
        .await
        .unwrap_or_else(|_| panic!("not closed within {seconds} s"));
    (channels, reason)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_runs_a_command_in_ones_own_container() {
    let (_turn, mut app) = take_turn().await;
    app.state.terminals = std::sync::Arc::new(llp_k8s::http::server::Terminals::new(1));
    let id = deploy(
        &app,
        "containers: [{name: box, image: busybox, cpu: 1, memory: 0.1, command: [sleep, '3600']}]",
    )
    .await;
    let pod = first_pod(&status_until(&app, &id, 90, |s| s["pods"][0]["containers"][0]["ready"] == true).await);
    let addr = serve_with(&app, Default::default()).await;

    // Bob cannot open it.
    let (status, _) = open_terminal(addr, (&id, &pod), "", &app.bob).await.unwrap_err();
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A command reads stdin, writes stdout and stderr apart, and exits with its code.
    let script = "command=sh&command=-c&command=read%20line%3B%20echo%20%22got%20%24line%22%3B%20echo%20oops%20%3E%262%3B%20exit%203";
    let mut socket = open_terminal(addr, (&id, &pod), script, &app.alice).await.unwrap();
    // One terminal per user here: a second is refused while it is open.
    let (status, body) = open_terminal(addr, (&id, &pod), "", &app.alice).await.unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.to_string().contains("1 terminals"), "{body}");
    send(&mut socket, 0, b"hello\n").await;
    let ([_, stdout, stderr, final_status], _) = read_until_closed(&mut socket, 30).await;
    assert_eq!(text(&stdout), "got hello\n");
    assert_eq!(text(&stderr), "oops\n");
    assert_eq!(
        llp_k8s::operations::terminal::exit_code(&final_status),
        Some(3),
        "{}",
        text(&final_status)
    );

    // A TTY: the default shell, sized by a resize message.
    let mut socket = open_terminal(addr, (&id, &pod), "tty=true", &app.alice).await.unwrap();
    send(&mut socket, 4, br#"{"Width":123,"Height":45}"#).await;
    send(&mut socket, 0, b"stty size; exit 0\n").await;
    let ([_, stdout, _, final_status], _) = read_until_closed(&mut socket, 30).await;
    assert!(text(&stdout).contains("45 123"), "{}", text(&stdout));
    assert_eq!(llp_k8s::operations::terminal::exit_code(&final_status), Some(0));

    // Left alone, a terminal is closed, saying why.
    app.state.terminal_idle = Duration::from_secs(2);
    let addr = serve_with(&app, Default::default()).await;
    let mut socket = open_terminal(addr, (&id, &pod), "command=sleep&command=60", &app.alice)
        .await
        .unwrap();
    let ([_, stdout, _, _], reason) = read_until_closed(&mut socket, 15).await;
    assert!(
        text(&stdout).contains("closed after 2 s without input or output"),
        "{}",
        text(&stdout)
    );
    assert_eq!(reason, "idle");
    delete(&app, &id).await;
}
