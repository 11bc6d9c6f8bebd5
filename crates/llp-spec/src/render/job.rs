//! The Job of a run to completion (`restartPolicy` `OnFailure` or `Never`: a training run):
//! the same pod template as a StatefulSet's, `parallelism` and `completions` both the replicas,
//! and one claim per `ReadWriteOnce` volume, shared by its pods (a Job has no claim templates).

use super::Context;
use super::statefulset::{render_claim, render_pod_template};
use crate::spec::{AccessMode, Spec, VolumeKind};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

/// Renders the Job named after the deployment's base name. Its selector is the API server's
/// to generate (from the Job's uid).
pub(super) fn render_job(spec: &Spec, ctx: &Context<'_>) -> Job {
    let replicas = i32::try_from(spec.replicas).unwrap_or(i32::MAX);
    Job {
        metadata: ctx.metadata(ctx.names.base()),
        spec: Some(JobSpec {
            parallelism: Some(replicas),
            completions: Some(replicas),
            backoff_limit: Some(ctx.config.job_backoff_limit),
            template: render_pod_template(spec, ctx),
            ..Default::default()
        }),
        status: None,
    }
}

/// The claims of the Job's `ReadWriteOnce` volumes, `<volume>-<base>`, labelled as the
/// deployment's (its DELETE removes them).
pub(super) fn render_claims(spec: &Spec, ctx: &Context<'_>) -> Vec<PersistentVolumeClaim> {
    spec.volumes
        .iter()
        .filter_map(|v| match &v.kind {
            VolumeKind::Persistent {
                size,
                access: AccessMode::ReadWriteOnce,
            } => {
                let mut claim = render_claim(&v.name, size, AccessMode::ReadWriteOnce, ctx.labels.clone(), ctx);
                claim.metadata.name = Some(ctx.names.job_claim(&v.name));
                claim.metadata.namespace = Some(ctx.config.namespace.clone());
                Some(claim)
            }
            _ => None,
        })
        .collect()
}

/// Labels the API server adds to a Job's pod template (from the Job's uid and name).
const GENERATED_LABELS: [&str; 4] = [
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
];

/// A Job to create anew from `job` as it is deployed, to run it again: same name, labels, pod
/// template and sizes, without what the API server and the reservation reconciler added (the
/// generated selector and template labels, `suspend`, annotations, status).
pub fn fresh_job(job: &Job) -> Job {
    let mut spec = job.spec.clone().unwrap_or_default();
    spec.selector = None;
    spec.manual_selector = None;
    spec.suspend = None;
    if let Some(labels) = spec.template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.retain(|key, _| !GENERATED_LABELS.contains(&key.as_str()));
    }
    Job {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: job.metadata.name.clone(),
            namespace: job.metadata.namespace.clone(),
            labels: job.metadata.labels.clone(),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_job_drops_what_the_cluster_added() {
        let deployed: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "sd-1", "uid": "u", "resourceVersion": "7", "labels": {"app": "sd-1"},
                "annotations": {"llp.kitegg.de/stopped-reservation-ended": "2026-11-26T10:00:00Z"}},
            "spec": {"parallelism": 3, "completions": 2, "suspend": true,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                "template": {"metadata": {"labels": {"app": "sd-1", "job-name": "sd-1", "controller-uid": "u",
                    "batch.kubernetes.io/job-name": "sd-1", "batch.kubernetes.io/controller-uid": "u"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "i"}]}}},
            "status": {"succeeded": 2},
        }))
        .unwrap();
        let fresh = fresh_job(&deployed);
        assert_eq!(fresh.metadata.uid, None);
        assert_eq!(fresh.metadata.annotations, None);
        assert!(fresh.status.is_none());
        let spec = fresh.spec.unwrap();
        assert_eq!(
            (spec.parallelism, spec.completions, spec.suspend),
            (Some(3), Some(2), None)
        );
        assert!(spec.selector.is_none());
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["app"]);
    }
}
