//! The Job controller: pods `<job>-<random>` up to `parallelism` (never more than the
//! completions still missing), replaced when they fail until the failures pass `backoffLimit`
//! (a pod that failed counts one; with `OnFailure`, each container restart counts one), then
//! the Job fails and its running pods are deleted. It is complete once `completions` pods
//! succeeded (without `completions`, once one did and none runs). A suspended Job has no
//! running pods. Finished pods stay, so their logs and events can be read.

use super::events::{Recorder, Severity};
use crate::resources::ids;
use crate::store::{ObjectKey, Store, now};
use serde_json::{Value, json};
use std::sync::Arc;

/// Brings one Job's pods one step closer to its spec and writes its status. `pods` are the
/// pods it owns, as the pass found them.
pub fn reconcile(store: &mut Store, job: &Value, pods: &[Arc<Value>], recorder: &mut Recorder) {
    let meta = &job["metadata"];
    let (Some(namespace), Some(name)) = (meta["namespace"].as_str(), meta["name"].as_str()) else {
        return;
    };
    if meta["deletionTimestamp"].is_string() || finished(job).is_some() {
        return;
    }
    let spec = &job["spec"];
    let phase = |p: &Value| p["status"]["phase"].as_str().unwrap_or_default().to_owned();
    let deleting = |p: &Value| p["metadata"]["deletionTimestamp"].is_string();
    let active: Vec<&Arc<Value>> = pods
        .iter()
        .filter(|p| !deleting(p) && !matches!(phase(p).as_str(), "Succeeded" | "Failed"))
        .collect();
    let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count();
    let failed_pods = pods.iter().filter(|p| phase(p) == "Failed").count();
    let restarts: u64 = active
        .iter()
        .flat_map(|p| p["status"]["containerStatuses"].as_array().into_iter().flatten())
        .filter_map(|c| c["restartCount"].as_u64())
        .sum();
    let failures = failed_pods as u64 + restarts;
    let parallelism = spec["parallelism"].as_u64().unwrap_or(1) as usize;
    let completions = spec["completions"].as_u64().map(|c| c as usize);
    let backoff_limit = spec["backoffLimit"].as_u64().unwrap_or(6);
    let suspended = spec["suspend"] == true;

    let mut status = job["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let mut conditions: Vec<Value> = Vec::new();
    let outcome = if failures > backoff_limit {
        Some((
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if completions.map_or(succeeded > 0 && active.is_empty(), |c| succeeded >= c) {
        Some((
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        ))
    } else {
        None
    };
    let wanted = match outcome {
        Some(_) => 0,
        None if suspended => 0,
        None => match completions {
            Some(c) => parallelism.min(c.saturating_sub(succeeded)),
            // Without completions: no new pod once one succeeded.
            None if succeeded > 0 => 0,
            None => parallelism,
        },
    };
    // Too many running (parallelism lowered, suspended, finished): the newest go.
    for pod in active.iter().skip(wanted).rev() {
        delete_pod(store, job, pod, recorder);
    }
    for _ in active.len()..wanted {
        create_pod(store, job, namespace, name, recorder);
    }
    if status["startTime"].is_null() && !suspended {
        status["startTime"] = json!(now());
    }
    if suspended && outcome.is_none() {
        conditions.push(condition("Suspended", "JobSuspended", "Job suspended"));
    }
    if let Some((kind, reason, message)) = outcome {
        let (target, severity) = match kind {
            "Failed" => ("FailureTarget", Severity::Warning),
            _ => ("SuccessCriteriaMet", Severity::Normal),
        };
        conditions.push(condition(target, reason, message));
        conditions.push(condition(kind, reason, message));
        let event = if kind == "Failed" { reason } else { "Completed" };
        recorder.record(store, job, severity, event, message, "job-controller");
        if kind == "Complete" {
            status["completionTime"] = json!(now());
        }
    }
    // `active`, `succeeded` and `failed` are left out at 0 (Go's omitempty); `ready` and
    // `terminating` are pointers, written as 0.
    for (field, count) in [
        ("active", wanted.min(active.len())),
        ("succeeded", succeeded),
        ("failed", failed_pods),
    ] {
        match (count, status.as_object_mut()) {
            (0, Some(fields)) => drop(fields.remove(field)),
            _ => status[field] = json!(count),
        }
    }
    status["ready"] = json!(active.iter().filter(|p| super::statefulset::is_ready(p)).count());
    status["terminating"] = json!(pods.iter().filter(|p| deleting(p)).count());
    status["uncountedTerminatedPods"] = json!({});
    status["conditions"] = json!(conditions);
    if status != job["status"] {
        let _ = store.replace_status(&ObjectKey::new(ids::jobs(), namespace, name), status);
    }
}

/// `Complete` or `Failed`, once the Job is finished.
pub fn finished(job: &Value) -> Option<&'static str> {
    let conditions = job["status"]["conditions"].as_array()?;
    ["Complete", "Failed"]
        .into_iter()
        .find(|kind| conditions.iter().any(|c| c["type"] == *kind && c["status"] == "True"))
}

fn condition(kind: &str, reason: &str, message: &str) -> Value {
    let at = now();
    json!({"type": kind, "status": "True", "reason": reason, "message": message,
        "lastProbeTime": at, "lastTransitionTime": at})
}

fn owner_reference(job: &Value) -> Value {
    super::controller_reference(job, "batch/v1", "Job")
}

fn create_pod(store: &mut Store, job: &Value, namespace: &str, name: &str, recorder: &mut Recorder) {
    let template = &job["spec"]["template"];
    let mut metadata = json!({"generateName": format!("{name}-"), "labels": template["metadata"]["labels"],
        "ownerReferences": [owner_reference(job)]});
    if let Some(annotations) = template["metadata"]["annotations"].as_object() {
        metadata["annotations"] = json!(annotations);
    }
    let pod = json!({"metadata": metadata, "spec": template["spec"], "status": {"phase": "Pending"}});
    match store.create(ids::pods(), namespace, pod) {
        Ok(created) => {
            let message = format!(
                "Created pod: {}",
                created["metadata"]["name"].as_str().unwrap_or_default()
            );
            recorder.record(
                store,
                job,
                Severity::Normal,
                "SuccessfulCreate",
                &message,
                "job-controller",
            );
        }
        Err(error) => {
            let message = format!("Error creating: {error}");
            recorder.record(
                store,
                job,
                Severity::Warning,
                "FailedCreate",
                &message,
                "job-controller",
            );
        }
    }
}

fn delete_pod(store: &mut Store, job: &Value, pod: &Value, recorder: &mut Recorder) {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    if super::delete_owned_pod(store, pod) {
        let message = format!("Deleted pod: {pod_name}");
        recorder.record(
            store,
            job,
            Severity::Normal,
            "SuccessfulDelete",
            &message,
            "job-controller",
        );
    }
}
