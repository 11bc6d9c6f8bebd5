//! The status of a deployment, in the seed's shape, as a pure function of the cluster's
//! objects (served from watch caches, so a status request costs the cluster nothing).
//!
//! Beyond the seed's fields it says what a student needs to act: why a container waits or
//! died, in plain words, and why a pod is not scheduled.

pub mod cached_pod;
mod cached_stateful_set;
pub mod events;
mod job;
mod wire;

pub use cached_pod::{CachedContainer, CachedContainerStatus, CachedPod, CachedPodStatus, Terminated};
pub use cached_stateful_set::CachedStatefulSet;
pub use job::{RunStatus, from_job};

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde::Serialize;
use std::borrow::Borrow;

/// `GET /kubernetes/deployments/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    /// Wanted replicas.
    pub replicas: i32,
    /// Pods at the current revision.
    pub current_replicas: i32,
    /// Pods that are ready.
    pub ready_replicas: i32,
    /// The pods, by ordinal.
    pub pods: Vec<PodStatus>,
    /// The persistent volumes' claims.
    pub volumes: Vec<VolumeStatus>,
    /// Where the deployment is reachable, when it has a hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Why pods are missing, when the cluster refuses to create them (a quota, a policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// While GPU pods run: when the GPU reservations covering them end (RFC 3339); they are
    /// stopped then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_ends: Option<String>,
    /// Why the deployment was stopped, when its GPU reservation ended: `stopped: reservation
    /// ended at …`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// For a run to completion (a Job): how far it got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunStatus>,
    /// When the service cannot follow the cluster: since when, so this status may be out of
    /// date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<Stale>,
}

/// The status may be out of date: the cluster has not been followed since `since`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stale {
    /// Since when (RFC 3339).
    pub since: String,
    /// What that means, in plain words.
    pub message: String,
}

impl Stale {
    /// Not followed since `since`.
    pub fn since(since: jiff::Timestamp) -> Self {
        let at = crate::reservations::readable(since);
        Self {
            since: since.to_string(),
            message: format!(
                "the cluster has not answered since {at}: this status may be out of date, and changes fail until it answers again."
            ),
        }
    }
}

impl DeploymentStatus {
    /// Adds why pods are missing: the StatefulSet controller's latest `FailedCreate` message,
    /// while fewer pods exist than wanted (the only trace of a pod admission refused).
    pub fn with_refused_pods(mut self, failed_create: Option<&str>) -> Self {
        if let Some(message) = failed_create.filter(|_| (self.pods.len() as i32) < self.replicas) {
            let reason = message.split(" failed error: ").nth(1).unwrap_or(message);
            self.problem = Some(format!(
                "the cluster refuses to create this deployment's pods: {reason}. Ask an administrator, or lower replicas or resources."
            ));
        }
        self
    }
}

/// One pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// Pod name (for the logs, events and pod routes).
    pub name: String,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`, or `Terminating`.
    pub phase: String,
    /// The app containers.
    pub containers: Vec<ContainerStatus>,
    /// The init containers (an empty list when the pod has none, as the extension answered).
    pub init_containers: Vec<ContainerStatus>,
    /// Why the pod is not placed on a node yet, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<String>,
}

/// One container.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// Container name.
    pub name: String,
    /// Passes its readiness.
    pub ready: bool,
    /// Has started.
    pub started: bool,
    /// Restarts so far.
    pub restart_count: i32,
    /// Why it is not running (`ContainerCreating`, `CrashLoopBackOff`, `OOMKilled`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What that means and what to do, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One volume claim.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VolumeStatus {
    /// The volume's name in the spec.
    pub name: String,
    /// The claim (one per volume and pod).
    pub claim: String,
    /// `Pending`, `Bound`, `Lost`, or `Terminating` while it is being deleted.
    pub phase: String,
    /// Size once bound, e.g. `1Gi`.
    pub capacity: Option<String>,
    /// The size the claim asks for; larger than `capacity` while the volume grows.
    pub requested: Option<String>,
    /// While the volume grows: what is happening, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resizing: Option<String>,
    /// `ReadWriteOnce` or `ReadWriteMany`.
    #[serde(rename = "type")]
    pub access: Option<String>,
    /// One claim of the owner, shared by every replica and every deployment of the owner that
    /// declares the volume `ReadWriteMany`.
    pub shared: bool,
}

/// The status of the deployment whose StatefulSet, pods and claims these are.
pub fn from_objects(
    sts: &CachedStatefulSet,
    pods: &[impl Borrow<CachedPod>],
    claims: &[impl Borrow<PersistentVolumeClaim>],
    url: Option<String>,
) -> DeploymentStatus {
    let name = sts.metadata.name.clone().unwrap_or_default();
    let mut pods: Vec<&CachedPod> = pods.iter().map(Borrow::borrow).collect();
    pods.sort_by_key(|p| ordinal(p.metadata.name.as_deref().unwrap_or_default(), &name));
    let mut claims: Vec<&PersistentVolumeClaim> = claims.iter().map(Borrow::borrow).collect();
    claims.sort_by_key(|c| c.metadata.name.clone());
    let replicas = sts.replicas;
    let annotation = |name: &str| sts.annotation(name).cloned();
    let stopped = stopped_note(annotation(crate::names::STOPPED_ANNOTATION).filter(|_| replicas == 0));
    DeploymentStatus {
        replicas,
        current_replicas: sts.current_replicas,
        ready_replicas: sts.ready_replicas,
        pods: pods.into_iter().map(pod_status).collect(),
        volumes: claims.into_iter().map(|c| volume_status(c, &name)).collect(),
        url,
        problem: None,
        reservation_ends: annotation(crate::names::RESERVATION_ENDS_ANNOTATION).filter(|_| replicas > 0),
        stopped,
        run: None,
        stale: None,
    }
}

/// `stopped: reservation ended at …` (or: over budget), from the reconciler's annotation.
fn stopped_note(ended: Option<String>) -> Option<String> {
    ended.map(|ended| {
        if ended == crate::names::STOPPED_OVER_BUDGET {
            return "stopped: your GPU reservations active now are held by your deployments started earlier; the volumes are kept. Stop one of them or book more GPUs, then scale up or deploy again.".to_owned();
        }
        let at = ended
            .parse::<jiff::Timestamp>()
            .map_or(ended, crate::reservations::readable);
        format!("stopped: reservation ended at {at}; the volumes are kept. Book GPUs, then scale up or deploy again.")
    })
}

fn ordinal(pod: &str, sts: &str) -> u32 {
    pod.strip_prefix(sts)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX)
}

pub(crate) fn pod_status(pod: &CachedPod) -> PodStatus {
    let limits = |container: &str| pod.memory_limit(container);
    let containers = |statuses: &[CachedContainerStatus]| -> Vec<ContainerStatus> {
        statuses.iter().map(|c| container_status(c, limits(&c.name))).collect()
    };
    let status = &pod.status;
    PodStatus {
        name: pod.metadata.name.clone().unwrap_or_default(),
        phase: if pod.metadata.deletion_timestamp.is_some() {
            "Terminating".into()
        } else {
            status.phase.clone().unwrap_or_else(|| "Pending".into())
        },
        containers: containers(&status.containers),
        init_containers: containers(&status.init_containers),
        scheduling: status.unschedulable.as_deref().map(scheduling_message),
    }
}

fn container_status(c: &CachedContainerStatus, memory_limit: Option<&str>) -> ContainerStatus {
    let last = c.last_state.terminated.as_ref();
    let (reason, message) = if let Some(waiting) = c.state.waiting.as_ref() {
        let reason = waiting.reason.clone().unwrap_or_else(|| "Waiting".into());
        let message = explain_waiting(&reason, waiting.message.as_deref(), c, last, memory_limit);
        (Some(reason), message)
    } else if let Some(terminated) = c.state.terminated.as_ref().filter(|t| crash_looping(c, t)) {
        // Between two restarts of a crashing container the kubelet mostly reports the run that
        // just ended (`terminated: Error`), and `CrashLoopBackOff` only at its next sync: one
        // steady answer instead of one that flips with every restart.
        let reason = "CrashLoopBackOff".to_owned();
        let message = explain_waiting(&reason, None, c, Some(terminated), memory_limit);
        (Some(reason), message)
    } else if let Some(terminated) = c.state.terminated.as_ref() {
        let reason = terminated.reason.clone().unwrap_or_else(|| "Terminated".into());
        let message = match reason.as_str() {
            "Completed" => None,
            "OOMKilled" => Some(oom_message(memory_limit)),
            _ => Some(format!("exited with code {}", terminated.exit_code)),
        };
        (Some(reason), message)
    } else {
        (None, None)
    };
    ContainerStatus {
        name: c.name.clone(),
        ready: c.ready,
        started: c.started.unwrap_or(false),
        restart_count: c.restart_count,
        reason,
        message,
    }
}

/// A container that ended in failure and has been restarted before: it is crash-looping.
fn crash_looping(c: &CachedContainerStatus, terminated: &Terminated) -> bool {
    c.restart_count > 0 && terminated.reason.as_deref() != Some("Completed") && terminated.exit_code != 0
}

fn explain_waiting(
    reason: &str,
    detail: Option<&str>,
    c: &CachedContainerStatus,
    last: Option<&Terminated>,
    memory_limit: Option<&str>,
) -> Option<String> {
    Some(match reason {
        "ContainerCreating" | "PodInitializing" => {
            "starting: the image is being pulled and the container created".into()
        }
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => {
            format!(
                "the image `{}` cannot be pulled: check its name and tag, and that the registry lets the cluster read it",
                c.image
            )
        }
        "CrashLoopBackOff" => match last {
            Some(t) if t.reason.as_deref() == Some("OOMKilled") => {
                format!(
                    "{}; it is restarted after a pause ({} restarts so far)",
                    oom_message(memory_limit),
                    c.restart_count
                )
            }
            Some(t) => format!(
                "keeps crashing: its last run exited with code {} ({} restarts so far); read that run's output with the logs route and previous=true",
                t.exit_code, c.restart_count
            ),
            None => format!("keeps crashing ({} restarts so far)", c.restart_count),
        },
        "CreateContainerConfigError" => config_error_message(detail.unwrap_or_default()),
        _ => detail?.to_owned(),
    })
}

/// A kubelet's "couldn't find key K in Secret ns/name" or "secret \"name\" not found", as a
/// student reads it: which key is missing, and the route that sets it.
fn config_error_message(detail: &str) -> String {
    let route = |kind: &str| {
        if kind.eq_ignore_ascii_case("secret") {
            ("fromSecret", "secret")
        } else {
            ("fromConfig", "config")
        }
    };
    if let Some(rest) = detail.strip_prefix("couldn't find key ") {
        let mut words = rest.split_whitespace();
        let (key, kind) = (words.next().unwrap_or_default(), words.nth(1).unwrap_or_default());
        let (variable, path) = route(kind);
        return format!(
            "cannot start: the {path} key `{key}` (used by `{variable}: {key}`) is not set; set it with PUT /kubernetes/deployments/{{id}}/{path}"
        );
    }
    for kind in ["secret", "configmap"] {
        if detail.starts_with(&format!("{kind} \"")) && detail.ends_with("not found") {
            let (variable, path) = route(kind);
            return format!(
                "cannot start: no {path} is set for this deployment yet, but its `{variable}` variables need one; set their keys with PUT /kubernetes/deployments/{{id}}/{path}"
            );
        }
    }
    format!(
        "cannot start: {detail}; a `fromSecret` or `fromConfig` key is probably missing, set it with the secret or config route"
    )
}

fn oom_message(limit: Option<&str>) -> String {
    match limit {
        Some(limit) => {
            format!("was killed for using more than its memory limit of {limit}: raise `memory` or use less")
        }
        None => "was killed for using more than its memory limit: raise `memory` or use less".into(),
    }
}

/// "0/4 nodes are available: …, 3 Insufficient nvidia.com/gpu. …" in plain words, with the
/// scheduler's own message after it.
fn scheduling_message(message: &str) -> String {
    let reasons = message.split(". preemption:").next().unwrap_or(message);
    let reasons = reasons.split_once(": ").map_or(reasons, |(_, rest)| rest);
    let short: Vec<&str> = reasons
        .split(", ")
        .filter_map(|part| {
            part.trim()
                .split_once(" Insufficient ")
                .map(|(_, resource)| resource.trim_end_matches('.'))
        })
        .collect();
    if short.is_empty() {
        return format!("waiting for a node: {message}");
    }
    format!(
        "waiting for a node with enough free {}: the cluster is busy or the request is larger than any node ({message})",
        short.join(" and ")
    )
}

pub(crate) fn volume_status(claim: &PersistentVolumeClaim, sts: &str) -> VolumeStatus {
    let claim_name = claim.metadata.name.clone().unwrap_or_default();
    let shared = claim
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(crate::names::SHARED_VOLUME_LABEL));
    // A shared claim names its volume in a label; the others are `<volume>-<statefulset>-<ordinal>`,
    // or a Job's `<volume>-<job>`.
    let volume = match shared {
        Some(volume) => volume.clone(),
        None => claim_name
            .strip_suffix(&format!("-{sts}"))
            .or_else(|| claim_name.split(&format!("-{sts}-")).next())
            .unwrap_or(&claim_name)
            .to_owned(),
    };
    let status = claim.status.clone().unwrap_or_default();
    let capacity = status
        .capacity
        .as_ref()
        .and_then(|c| c.get("storage"))
        .map(|q| q.0.clone());
    let requested = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref()?.requests.as_ref()?.get("storage"))
        .map(|q| q.0.clone());
    let access = status
        .access_modes
        .or_else(|| claim.spec.as_ref().and_then(|s| s.access_modes.clone()));
    VolumeStatus {
        name: volume,
        claim: claim_name,
        // As kubectl shows it: a claim being deleted is Terminating, whatever its phase.
        phase: if claim.metadata.deletion_timestamp.is_some() {
            "Terminating".into()
        } else {
            status.phase.unwrap_or_else(|| "Pending".into())
        },
        capacity: capacity.clone(),
        resizing: resizing(requested.as_deref(), capacity.as_deref(), status.conditions.as_deref()),
        requested,
        access: access.and_then(|modes| modes.into_iter().next()),
        shared: shared.is_some(),
    }
}

/// Why `capacity` is not yet `requested`: the storage is growing, or the file system waits
/// for the pod to start again (storage that cannot grow a mounted file system).
fn resizing(
    requested: Option<&str>,
    capacity: Option<&str>,
    conditions: Option<&[k8s_openapi::api::core::v1::PersistentVolumeClaimCondition]>,
) -> Option<String> {
    let (requested, capacity) = (requested?, capacity?);
    if !crate::resize::grows(capacity, requested) {
        return None;
    }
    let pending_restart = conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "FileSystemResizePending" && c.status == "True");
    Some(if pending_restart {
        format!(
            "grown to {requested}; the file system grows when the pod starts again: restart the deployment to use the new size."
        )
    } else {
        format!("growing from {capacity} to {requested}; the pods keep running.")
    })
}

#[cfg(test)]
mod tests;
