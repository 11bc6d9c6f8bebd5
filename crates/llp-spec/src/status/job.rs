//! The status of a run to completion (a Job): the pods, finished ones included (their logs
//! and events stay readable until the next deploy), and how far the run got.

use super::CachedPod;
use super::{DeploymentStatus, pod_status, stopped_note, volume_status};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde::Serialize;
use std::borrow::Borrow;

/// How far a run to completion got.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// `Running`, `Complete`, `Failed` or `Suspended`.
    pub state: String,
    /// Pods running now.
    pub active: i32,
    /// Pods that finished successfully.
    pub succeeded: i32,
    /// Pods that failed.
    pub failed: i32,
    /// Successful pods the run needs.
    pub completions: i32,
    /// When it started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When it completed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Why it failed, and what to do, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The status of the deployment whose Job, pods and claims these are.
pub fn from_job(
    job: &Job,
    pods: &[impl Borrow<CachedPod>],
    claims: &[impl Borrow<PersistentVolumeClaim>],
    url: Option<String>,
) -> DeploymentStatus {
    let name = job.metadata.name.clone().unwrap_or_default();
    let spec = job.spec.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    let condition = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    let suspended = spec.suspend == Some(true);
    let (state, message) = if condition("Complete").is_some() {
        ("Complete", None)
    } else if let Some(failed) = condition("Failed") {
        let why = failed.message.clone().unwrap_or_default();
        let message = format!(
            "the run failed: {why}. Its pods' logs say why (the `previous` log of a restarted container); fix it and deploy again."
        );
        ("Failed", Some(message))
    } else if suspended {
        ("Suspended", None)
    } else {
        ("Running", None)
    };
    let mut pods: Vec<&CachedPod> = pods.iter().map(Borrow::borrow).collect();
    pods.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.clone().map(|t| t.0),
            p.metadata.name.clone(),
        )
    });
    let mut claims: Vec<&PersistentVolumeClaim> = claims.iter().map(Borrow::borrow).collect();
    claims.sort_by_key(|c| c.metadata.name.clone());
    let running = state == "Running";
    // As Kubernetes runs it: no more pods than completions are still to come (without
    // `completions`, a work queue, as many as `parallelism`).
    let to_come = spec.completions.map(|c| (c - status.succeeded.unwrap_or(0)).max(0));
    let parallelism = if running {
        let parallelism = spec.parallelism.unwrap_or(1);
        to_come.map_or(parallelism, |to_come| parallelism.min(to_come))
    } else {
        0
    };
    let annotation = |key: &str| job.metadata.annotations.as_ref()?.get(key).cloned();
    let time = |t: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| t.map(|t| t.0.to_string());
    DeploymentStatus {
        replicas: parallelism,
        current_replicas: status.active.unwrap_or(0),
        ready_replicas: status.ready.unwrap_or(0),
        pods: pods.into_iter().map(pod_status).collect(),
        volumes: claims.into_iter().map(|c| volume_status(c, &name)).collect(),
        url,
        problem: None,
        reservation_ends: annotation(crate::names::RESERVATION_ENDS_ANNOTATION).filter(|_| running),
        stopped: stopped_note(annotation(crate::names::STOPPED_ANNOTATION).filter(|_| suspended)),
        run: Some(RunStatus {
            state: state.into(),
            active: status.active.unwrap_or(0),
            succeeded: status.succeeded.unwrap_or(0),
            failed: status.failed.unwrap_or(0),
            completions: spec.completions.unwrap_or(1),
            start_time: time(status.start_time),
            completion_time: time(status.completion_time),
            message,
        }),
        stale: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas(spec: serde_json::Value, succeeded: i32) -> i32 {
        let job: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "sd-1"},
            "spec": spec,
            "status": {"succeeded": succeeded},
        }))
        .unwrap();
        from_job(&job, &[] as &[CachedPod], &[] as &[PersistentVolumeClaim], None).replicas
    }

    #[test]
    fn a_run_reports_the_pods_kubernetes_runs_not_more_than_completions_to_come() {
        let template = serde_json::json!({"spec": {"containers": []}});
        let spec = |parallelism: i32, completions: Option<i32>| {
            let mut spec = serde_json::json!({"parallelism": parallelism, "template": template});
            if let Some(c) = completions {
                spec["completions"] = c.into();
            }
            spec
        };
        assert_eq!(replicas(spec(8, Some(1)), 0), 1, "scaled to 8 with one completion");
        assert_eq!(replicas(spec(3, Some(5)), 3), 2, "two completions to come");
        assert_eq!(replicas(spec(2, Some(2)), 0), 2);
        assert_eq!(replicas(spec(4, None), 0), 4, "a work queue runs parallelism pods");
    }
}
