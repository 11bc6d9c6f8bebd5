//! `/kubernetes/deployments/{id}/pods/{pod}/exec`: a terminal into one's own container, a
//! WebSocket bridged message for message to the Kubernetes exec API (so browser terminals
//! written for Kubernetes work unchanged). Each session is logged (who, where, what command,
//! how long, how it ended), never what was typed or shown.

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, StreamKind};
use super::openapi::PodPath;
use crate::operations::terminal::{self, Command, Connection, STATUS_CHANNEL};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use llp_spec::ErrorBody;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as UpstreamMessage;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The subprotocols a client may ask for; all are bridged as `v5.channel.k8s.io` (v4 is the
/// same framing without the close of a stream, which such a client never sends).
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(exec))
}

/// `?container=&command=…&tty=`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only its documentation is used.
struct ExecQuery {
    /// The container (the pod's only one when not given).
    container: Option<String>,
    /// The program, then its arguments: one `command=` each, in order. Default: a shell
    /// (bash where the image has it, else sh).
    command: Option<Vec<String>>,
    /// `true` for a terminal (stderr merged into stdout; resize on channel 4).
    tty: Option<bool>,
}

/// A terminal into a container of one's own pod: upgrades to a WebSocket bridged to the
/// Kubernetes exec API, in its `v5.channel.k8s.io` framing (the first byte of each binary
/// message: 0 stdin, 1 stdout, 2 stderr, 3 the final status, 4 resize `{"Width","Height"}`).
/// The token may be `?access_token=` (a browser's WebSocket cannot set headers). Closed after
/// `terminal_idle_seconds` without input or output, saying so on stdout.
#[utoipa::path(
    get,
    path = "/kubernetes/deployments/{id}/pods/{pod}/exec",
    tag = "actions",
    params(PodPath, ExecQuery),
    responses(
        (status = 101, description = "The WebSocket, bridged to the exec API"),
        (status = 400, description = "Not a WebSocket request; an unknown container; a command the container cannot run; a cluster that runs no containers", body = ErrorBody),
        (status = 429, description = "The caller has as many terminals open as one user may (`terminals_per_user`)", body = ErrorBody),
        super::openapi::CommonErrors
    )
)]
async fn exec(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, pod)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|rejection| ApiError::BadRequest {
        field: None,
        message: format!("open a terminal with a WebSocket request (Upgrade: websocket): {rejection}"),
    })?;
    let command = command(&query)?;
    // Held as long as the terminal is open.
    let slot = state
        .terminals
        .open(&caller.identity.id)
        .ok_or(ApiError::TooManyStreams {
            kind: StreamKind::Terminals,
            max: state.terminals.max(),
        })?;
    let opened = terminal::open(
        &state.operations(),
        &caller,
        (&id, &pod),
        &command,
        state.terminals.max(),
    )
    .await?;
    let session = Session {
        user: caller.identity.id.clone(),
        deployment: id,
        pod,
        container: command.container.unwrap_or_default(),
        argv: opened.argv,
    };
    let (idle, shutdown) = (state.terminal_idle, state.shutdown.clone());
    Ok(upgrade.protocols(PROTOCOLS).on_upgrade(move |client| async move {
        // Both caps' holds, this replica's and every replica's, last as long as the terminal.
        let _open = (slot, opened.session);
        let started = Instant::now();
        let ending = bridge(client, opened.connection, idle, shutdown).await;
        tracing::info!(
            user = %session.user,
            deployment = %session.deployment,
            pod = %session.pod,
            container = %session.container,
            command = ?session.argv,
            seconds = started.elapsed().as_secs_f64(),
            exit_code = ?ending.exit_code,
            ended = ending.reason,
            "terminal session"
        );
    }))
}

/// The command of `?container=&command=…&tty=`.
fn command(query: &[(String, String)]) -> Result<Command, ApiError> {
    let mut command = Command {
        container: None,
        argv: Vec::new(),
        tty: false,
    };
    for (key, value) in query {
        match key.as_str() {
            "container" => command.container = Some(value.clone()).filter(|c| !c.is_empty()),
            "command" => command.argv.push(value.clone()),
            "tty" => {
                command.tty = match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(ApiError::bad_field(
                            "tty",
                            format!("`{other}` is not `true` or `false`"),
                        ));
                    }
                }
            }
            // The token (read by the extractor), and what a Kubernetes client adds by habit.
            "access_token" | "stdin" | "stdout" | "stderr" => {}
            other => {
                return Err(ApiError::bad_field(
                    other,
                    "not a parameter of a terminal: give `container`, `command` (once per argument) and `tty`",
                ));
            }
        }
    }
    Ok(command)
}

/// Who opened which terminal, for the session log.
struct Session {
    user: String,
    deployment: String,
    pod: String,
    container: String,
    argv: Vec<String>,
}

/// How a bridged session ended.
struct Ending {
    /// The command's exit code, when the exec API told it.
    exit_code: Option<i32>,
    /// Who ended it.
    reason: &'static str,
}

/// Passes messages both ways until one side closes, the session is idle for `idle`, or the
/// service stops.
async fn bridge(
    client: WebSocket,
    upstream: Connection,
    idle: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Ending {
    let (mut to_client, mut from_client) = client.split();
    let (mut to_upstream, mut from_upstream) = upstream.split();
    let mut exit_code = None;
    let mut deadline = tokio::time::Instant::now() + idle;
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopping);
    let reason = loop {
        tokio::select! {
            message = from_client.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    deadline = tokio::time::Instant::now() + idle;
                    if to_upstream.send(UpstreamMessage::Binary(data)).await.is_err() {
                        break "the cluster closed the connection";
                    }
                }
                // A client sending text means the same bytes.
                Some(Ok(Message::Text(text))) => {
                    deadline = tokio::time::Instant::now() + idle;
                    let data = axum::body::Bytes::copy_from_slice(text.as_str().as_bytes());
                    if to_upstream.send(UpstreamMessage::Binary(data)).await.is_err() {
                        break "the cluster closed the connection";
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    let _ = to_upstream.send(UpstreamMessage::Close(None)).await;
                    break "the user closed it";
                }
            },
            message = from_upstream.next() => match message {
                Some(Ok(UpstreamMessage::Binary(data))) => {
                    deadline = tokio::time::Instant::now() + idle;
                    if data.first() == Some(&STATUS_CHANNEL) {
                        exit_code = terminal::exit_code(&data[1..]);
                    }
                    if to_client.send(Message::Binary(data)).await.is_err() {
                        let _ = to_upstream.send(UpstreamMessage::Close(None)).await;
                        break "the user closed it";
                    }
                }
                Some(Ok(UpstreamMessage::Text(text))) => {
                    if to_client.send(Message::Text(text.as_str().into())).await.is_err() {
                        let _ = to_upstream.send(UpstreamMessage::Close(None)).await;
                        break "the user closed it";
                    }
                }
                Some(Ok(UpstreamMessage::Close(_))) | None => {
                    close(&mut to_client, "the command ended").await;
                    break "the command ended";
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::warn!(%error, "the exec connection to the cluster failed");
                    close(&mut to_client, "the connection to the cluster failed").await;
                    break "the connection to the cluster failed";
                }
            },
            () = tokio::time::sleep_until(deadline) => {
                let notice = format!(
                    "\r\nllp-k8s: closed after {} s without input or output\r\n",
                    idle.as_secs()
                );
                let mut data = vec![1];
                data.extend_from_slice(notice.as_bytes());
                let _ = to_client.send(Message::Binary(data.into())).await;
                close(&mut to_client, "idle").await;
                let _ = to_upstream.send(UpstreamMessage::Close(None)).await;
                break "idle";
            }
            () = &mut stopping => {
                close(&mut to_client, "the service is stopping").await;
                let _ = to_upstream.send(UpstreamMessage::Close(None)).await;
                break "the service stopped";
            }
        }
    };
    Ending { exit_code, reason }
}

/// Closes the client's side normally, with `reason`.
async fn close(to_client: &mut futures::stream::SplitSink<WebSocket, Message>, reason: &str) {
    let frame = CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: reason.into(),
    };
    let _ = to_client.send(Message::Close(Some(frame))).await;
}
