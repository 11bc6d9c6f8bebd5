//! `GET …/pods/{name}/log`: a container's output as text, with `container`, `previous`,
//! `timestamps`, `sinceSeconds`, `sinceTime`, `tailLines`, `limitBytes` and `follow`, like the
//! kubelet serves it. The options are validated first, as kube-apiserver does (422 before it
//! looks for the pod).

use super::objects::{Request, not_found};
use super::status::ApiError;
use crate::logs::{LogKey, LogLine};
use crate::store::ObjectKey;
use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The options of a log request.
struct Options {
    since: Option<jiff::Timestamp>,
    tail: Option<i64>,
    limit: Option<usize>,
}

/// The options of `request`, checked as kube-apiserver checks `PodLogOptions`: a value that is
/// not a number is 400, one out of range (or both `sinceSeconds` and `sinceTime`) 422.
fn options(request: &Request<'_>, pod: &str) -> Result<Options, ApiError> {
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        request
            .params
            .get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("{name} must be an integer")))
            })
            .transpose()
    };
    let (seconds, tail, limit) = (number("sinceSeconds")?, number("tailLines")?, number("limitBytes")?);
    let since_time = request
        .params
        .get("sinceTime")
        .map(|t| {
            t.parse::<jiff::Timestamp>()
                .map_err(|_| ApiError::bad_request(format!("sinceTime: `{t}` is not an RFC 3339 time")))
        })
        .transpose()?;
    let mut problems = Vec::new();
    if seconds.is_some_and(|s| s < 1) {
        problems.push("sinceSeconds: Invalid value: must be greater than 0");
    }
    if tail.is_some_and(|t| t < 0) {
        problems.push("tailLines: Invalid value: must be greater than or equal to 0");
    }
    if limit.is_some_and(|l| l < 1) {
        problems.push("limitBytes: Invalid value: must be greater than 0");
    }
    if seconds.is_some() && since_time.is_some() {
        problems.push("sinceSeconds: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified");
    }
    if !problems.is_empty() {
        return Err(ApiError::unprocessable(format!(
            "PodLogOptions \"{pod}\" is invalid: {}",
            problems.join(", ")
        )));
    }
    let since = since_time.or_else(|| seconds.map(|s| jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s)));
    Ok(Options {
        since,
        tail,
        limit: limit.and_then(|l| usize::try_from(l).ok()),
    })
}

/// Serves the log of one container of a pod.
pub async fn serve(request: &Request<'_>, key: &ObjectKey) -> Result<Response, ApiError> {
    let options = options(request, &key.name)?;
    let pod = request
        .state
        .store
        .lock()
        .expect("store lock")
        .get(key)
        .ok_or_else(|| not_found(key))?;
    let (containers, init) = (
        container_names(&pod, "containers"),
        container_names(&pod, "initContainers"),
    );
    let container = match request.params.get("container") {
        Some(c) if containers.contains(c) || init.contains(c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {}",
                key.name
            )));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {}, choose one of: [{}]",
                key.name,
                containers.join(" ")
            )));
        }
    };
    let flag = |name: &str| request.params.get(name).is_some_and(|v| v == "true");
    let (previous, timestamps, follow) = (flag("previous"), flag("timestamps"), flag("follow"));
    let log_key = LogKey {
        namespace: key.namespace.clone(),
        pod: key.name.clone(),
        container: container.clone(),
    };
    let live = follow.then(|| request.state.logs.subscribe());
    let Some(mut lines) = request.state.logs.read(&log_key, previous) else {
        let message = if previous {
            format!(
                "previous terminated container \"{container}\" in pod \"{}\" not found",
                key.name
            )
        } else {
            format!(
                "container \"{container}\" in pod \"{}\" is waiting to start: ContainerCreating",
                key.name
            )
        };
        return Err(ApiError::bad_request(message));
    };
    if let Some(since) = options.since {
        lines.retain(|l| l.time >= since);
    }
    if let Some(tail) = options.tail {
        let keep = usize::try_from(tail.max(0)).unwrap_or(0);
        lines.drain(..lines.len().saturating_sub(keep));
    }
    let mut text: String = lines.iter().map(|l| format_line(l, timestamps)).collect();
    // At most `limitBytes` in all, cut mid-line as the kubelet cuts (never mid-character here).
    let mut left = options.limit.unwrap_or(usize::MAX);
    let cut = |text: &mut String, left: &mut usize| {
        if text.len() > *left {
            let mut end = *left;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        *left -= text.len();
    };
    cut(&mut text, &mut left);
    let Some(mut live) = live.filter(|_| !previous && left > 0) else {
        return Ok(([(CONTENT_TYPE, "text/plain")], text).into_response());
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let store = request.state.store.clone();
    let pod_key = key.clone();
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(text))).await.is_err() {
            return;
        }
        let mut check = tokio::time::interval(std::time::Duration::from_millis(500));
        loop {
            tokio::select! {
                () = tx.closed() => return,
                _ = check.tick() => {
                    // The stream ends when the pod is gone, as a real log stream does.
                    if store.lock().expect("store lock").get(&pod_key).is_none() {
                        return;
                    }
                }
                received = live.recv() => match received {
                    Ok((k, line)) if k == log_key => {
                        let mut text = format_line(&line, timestamps);
                        cut(&mut text, &mut left);
                        if tx.send(Ok(Bytes::from(text))).await.is_err() || left == 0 {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
            }
        }
    });
    Ok((
        [(CONTENT_TYPE, "text/plain")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

/// The names of a pod's containers of one list (`containers`, `initContainers`).
fn container_names(pod: &serde_json::Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

fn format_line(line: &LogLine, timestamps: bool) -> String {
    if timestamps {
        format!("{} {}\n", line.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), line.text)
    } else {
        format!("{}\n", line.text)
    }
}
