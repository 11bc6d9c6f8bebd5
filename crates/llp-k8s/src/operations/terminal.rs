//! A terminal into one's own container: a command run by the Kubernetes exec API, on a pod
//! of the caller's deployment (checked as every pod route checks it), its WebSocket handed to
//! whoever bridges it. The framing is Kubernetes' `v5.channel.k8s.io`: the first byte of each
//! binary message names the stream (0 stdin, 1 stdout, 2 stderr, 3 the final status, 4 a
//! terminal resize, 255 the close of a stream).

use super::{Error, Operations};
use crate::records::{Purpose, Session};
use hyper_util::rt::TokioIo;
use kube::api::AttachParams;

/// What to run, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The container; the pod's only one when `None`.
    pub container: Option<String>,
    /// The program and its arguments; [`DEFAULT_SHELL`] when empty.
    pub argv: Vec<String>,
    /// A terminal: input is a keyboard, output goes through a TTY (stderr merged into stdout).
    pub tty: bool,
}

/// What runs when no command is given: bash where the image has it, else sh.
pub const DEFAULT_SHELL: [&str; 3] = ["/bin/sh", "-c", "command -v bash >/dev/null && exec bash || exec sh"];

/// The exec stream channel of the final status (JSON `metav1.Status`).
pub const STATUS_CHANNEL: u8 = 3;

/// The connection to the exec API.
pub type Connection = tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// An open exec: the connection and the deployment's base name (for the session log).
pub struct Opened {
    /// The WebSocket to the exec API.
    pub connection: Connection,
    /// The caller's session, counted against their cap in every replica while held.
    pub session: crate::cluster::sessions::Held,
    /// The command that runs.
    pub argv: Vec<String>,
}

/// Starts `command` in `pod` of the deployment `id`, for `caller`: not found unless the pod
/// is one of the caller's deployment's, invalid when the container is not one of the pod's.
pub async fn open(
    ops: &Operations<'_>,
    caller: &Session,
    (id, pod): (&str, &str),
    command: &Command,
    max: usize,
) -> Result<Opened, Error> {
    let target = ops.resolve(caller, id, Purpose::Act).await?.deployed()?;
    target.own_pod(pod)?;
    let (pods, _) = target.cluster.caches.members(target.names.base());
    let containers: Vec<String> = pods
        .iter()
        .filter(|p| p.metadata.name.as_deref() == Some(pod))
        .flat_map(|p| p.containers.iter().map(|c| c.name.clone()))
        .collect();
    if let Some(container) = &command.container
        && !containers.contains(container)
    {
        return Err(Error::Invalid {
            field: Some("container".into()),
            message: format!(
                "pod `{pod}` has no container `{container}`: name one of {}",
                containers.join(", ")
            ),
        });
    }
    use crate::cluster::sessions::{self, SessionKind};
    let session = sessions::open(target.cluster, &caller.identity.id, SessionKind::Terminal, max)
        .await
        .map_err(|error| Error::session(SessionKind::Terminal, error))?;
    let argv: Vec<String> = if command.argv.is_empty() {
        DEFAULT_SHELL.iter().map(|s| (*s).to_owned()).collect()
    } else {
        command.argv.clone()
    };
    let params = AttachParams {
        container: command.container.clone(),
        stdin: true,
        stdout: true,
        // With a TTY there is one output stream; the API server refuses both.
        stderr: !command.tty,
        tty: command.tty,
        ..AttachParams::default()
    };
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", target.cluster.namespace))
        .exec(pod, argv.clone(), &params)
        .map_err(|error| Error::Invalid {
            field: Some("command".into()),
            message: format!("cannot be sent to Kubernetes: {error}"),
        })?;
    let connection = target.cluster.client.connect(request).await.map_err(exec_failed)?;
    Ok(Opened {
        connection: connection.into_stream(),
        session,
        argv,
    })
}

/// A refused exec: what the API server says of the request is the user's (a container not
/// running yet: 400); a cluster whose nodes run no containers cannot open one at all.
fn exec_failed(error: kube::Error) -> Error {
    match &error {
        kube::Error::Api(status) if status.code == 400 => Error::Invalid {
            field: None,
            message: format!("the cluster cannot run it: {}", status.message),
        },
        kube::Error::Api(status) if status.code == 404 || status.code == 405 => Error::Invalid {
            field: None,
            message: format!(
                "this cluster cannot open a terminal into the pod ({}): its node runs no containers (a simulated cluster)",
                status.message
            ),
        },
        _ => Error::cluster(error),
    }
}

/// How a command ended, from the status the exec API sends last: `Some(0)` on success, its
/// exit code when it failed with one, `None` when it says neither (it could not start).
pub fn exit_code(status: &[u8]) -> Option<i32> {
    let status: serde_json::Value = serde_json::from_slice(status).ok()?;
    if status["status"] == "Success" {
        return Some(0);
    }
    status["details"]["causes"]
        .as_array()?
        .iter()
        .find(|c| c["reason"] == "ExitCode")?["message"]
        .as_str()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_read_from_the_final_status() {
        assert_eq!(exit_code(br#"{"metadata":{},"status":"Success"}"#), Some(0));
        let failed = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exit_code(failed), Some(3));
        let not_started = br#"{"metadata":{},"status":"Failure","message":"exec: \"nope\": executable file not found in $PATH","reason":"InternalError"}"#;
        assert_eq!(exit_code(not_started), None);
        assert_eq!(exit_code(b"not json"), None);
    }
}
