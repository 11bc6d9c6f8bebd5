//! What runs a deployed deployment's pods, as the caches hold it: a StatefulSet (pods that
//! keep running) or a Job (a run to completion). The routes and the reservation reconciler
//! read both through this one view.

use k8s_openapi::api::batch::v1::Job;
use kube::api::ObjectMeta;
use llp_spec::footprint::PodFootprint;
use llp_spec::status::CachedStatefulSet;
use std::borrow::Cow;
use std::sync::Arc;

/// A deployed StatefulSet or Job.
#[derive(Debug, Clone)]
pub enum Deployed {
    /// Pods that keep running.
    StatefulSet(Arc<CachedStatefulSet>),
    /// A run to completion.
    Job(Arc<Job>),
}

impl Deployed {
    /// Its metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Deployed::StatefulSet(s) => &s.metadata,
            Deployed::Job(j) => &j.metadata,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// `StatefulSet` or `Job`.
    pub fn kind(&self) -> &'static str {
        match self {
            Deployed::StatefulSet(_) => "StatefulSet",
            Deployed::Job(_) => "Job",
        }
    }

    /// `apps/v1` or `batch/v1`.
    pub fn api_version(&self) -> &'static str {
        match self {
            Deployed::StatefulSet(_) => "apps/v1",
            Deployed::Job(_) => "batch/v1",
        }
    }

    /// What each of its pods holds and mounts (a Job's is read from its template: runs are
    /// few, and their cache keeps the Job).
    pub fn footprint(&self) -> Cow<'_, PodFootprint> {
        match self {
            Deployed::StatefulSet(s) => Cow::Borrowed(&s.footprint),
            Deployed::Job(j) => Cow::Owned(PodFootprint::of(j.spec.as_ref().map(|s| &s.template))),
        }
    }

    /// How many pods it wants running now: a StatefulSet's replicas; a Job's parallelism
    /// while it runs, 0 once it finished or while suspended.
    pub fn replicas(&self) -> u32 {
        let wanted = match self {
            Deployed::StatefulSet(s) => s.replicas,
            Deployed::Job(j) if job_finished(j).is_some() || suspended(j) => 0,
            Deployed::Job(j) => j.spec.as_ref().and_then(|s| s.parallelism).unwrap_or(1),
        };
        u32::try_from(wanted).unwrap_or(0)
    }

    /// The annotation `name`.
    pub fn annotation(&self, name: &str) -> Option<&String> {
        self.meta().annotations.as_ref()?.get(name)
    }

    /// The merge patch that stops its pods and keeps its volumes: a StatefulSet scaled to 0, a
    /// Job suspended (its running pods are deleted; finished ones stay).
    pub fn stop_patch(&self) -> serde_json::Value {
        match self {
            Deployed::StatefulSet(_) => serde_json::json!({"spec": {"replicas": 0}}),
            Deployed::Job(_) => serde_json::json!({"spec": {"suspend": true}}),
        }
    }
}

/// `Complete` or `Failed`, once a Job is finished.
pub fn job_finished(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    ["Complete", "Failed"]
        .into_iter()
        .find(|kind| conditions.iter().any(|c| c.type_ == *kind && c.status == "True"))
}

fn suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}
