//! The end of a booking (SPEC section 10): one reconciler, elected through a Lease when several
//! replicas of the service run, reviews the running GPU deployments every few seconds against
//! the bookings (read with the service's own token) and scales the ones no booking covers any
//! more to 0, volumes kept, with an Event saying why. It keeps the time their bookings end in
//! an annotation, so that status polls can show it without a read.

use super::ReservationPolicy;
use crate::cluster::Cluster;
use crate::cluster::lease::LeaseLock;
use crate::cluster::workload::Deployed;
use crate::records::RecordSource;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use llp_spec::names::{
    DEPLOYMENT_LABEL, OWNER_LABEL, RESERVATION_ENDS_ANNOTATION, STOPPED_ANNOTATION, STOPPED_OVER_BUDGET,
};
use llp_spec::reservations::{Running, Verdict, readable, review, times};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The name of the Lease that elects the reconciler, in the managed namespace.
pub const LEASE_NAME: &str = "llp-k8s-reservations";

/// The field manager of the reconciler's writes.
const MANAGER: &str = "llp-k8s-reservations";

/// Every cluster call of a pass gets this long.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// Why a pass did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The bookings could not be read.
    #[error("cannot read the GPU reservations: {0}")]
    Records(#[from] crate::records::RecordError),
    /// A cluster call failed.
    #[error("the cluster failed while {doing}: {source}")]
    Cluster { doing: String, source: kube::Error },
    /// A cluster call took too long.
    #[error("the cluster did not answer in time while {0}")]
    Timeout(String),
}

/// What one pass did.
#[derive(Debug, Default, PartialEq)]
pub struct Pass {
    /// StatefulSets scaled to 0.
    pub stopped: Vec<String>,
    /// StatefulSets whose `reservation-ends` annotation changed.
    pub annotated: Vec<String>,
}

/// The reconciler of one service instance.
pub struct Reconciler {
    records: Arc<dyn RecordSource>,
    cluster: Cluster,
    policy: Arc<ReservationPolicy>,
    lease: LeaseLock,
}

async fn call<T>(
    doing: impl Into<String>,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, ReconcileError> {
    let doing = doing.into();
    match tokio::time::timeout(CALL_DEADLINE, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(ReconcileError::Cluster { doing, source }),
        Err(_) => Err(ReconcileError::Timeout(doing)),
    }
}

impl Reconciler {
    /// A reconciler that elects itself as `holder` (unique per instance).
    pub fn new(records: Arc<dyn RecordSource>, cluster: Cluster, policy: Arc<ReservationPolicy>, holder: &str) -> Self {
        let every = Duration::from_secs(policy.settings.check_seconds.max(1));
        let lease = LeaseLock::new(cluster.api(), LEASE_NAME, holder, every * 3);
        Self {
            records,
            cluster,
            policy,
            lease,
        }
    }

    /// Reviews every `check_seconds` while this instance holds the lease, until `shutdown`
    /// turns true; then gives the lease up.
    pub async fn run(self, shutdown: tokio::sync::watch::Receiver<bool>) {
        if !self.policy.settings.enforce {
            return;
        }
        let every = Duration::from_secs(self.policy.settings.check_seconds.max(1));
        crate::cluster::lease::run_rounds("GPU reservation reconciler", &self.lease, every, shutdown, || async {
            self.round().await.err().map(|e| e.to_string())
        })
        .await;
    }

    /// One round: takes or renews the lease (on the wall clock), and reviews when this
    /// instance holds it; `None` when another instance does.
    pub async fn round(&self) -> Result<Option<Pass>, ReconcileError> {
        if !call("renewing the lease", self.lease.try_hold(Timestamp::now())).await? {
            return Ok(None);
        }
        self.reconcile().await.map(Some)
    }

    /// One review at the policy's clock: stops what no booking covers, keeps the
    /// `reservation-ends` annotations current.
    pub async fn reconcile(&self) -> Result<Pass, ReconcileError> {
        let mut pass = Pass::default();
        if !self.policy.settings.enforce {
            return Ok(pass);
        }
        let now = self.policy.clock.now();
        let bookings = self.records.open_reservations(None, now).await?;
        let mut sets: Vec<Deployed> = super::deployed(&self.cluster.caches)
            .into_iter()
            .filter(|d| d.replicas() > 0 && !d.footprint().gpus.is_empty())
            .collect();
        // Oldest first: they keep a shrinking shared budget.
        sets.sort_by_key(|d| (d.meta().creation_timestamp.clone().map(|t| t.0), d.meta().name.clone()));
        let running: Vec<Running> = sets
            .iter()
            .map(|s| {
                let label = |name: &str| {
                    s.meta()
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(name))
                        .cloned()
                        .unwrap_or_default()
                };
                Running {
                    deployment: label(DEPLOYMENT_LABEL),
                    owner: label(OWNER_LABEL),
                    per_pod: s.footprint().gpus.clone(),
                    replicas: s.replicas(),
                }
            })
            .collect();
        for ((sts, verdict), running) in sets.iter().zip(review(&running, &bookings, now)).zip(&running) {
            let name = sts.name().to_owned();
            let noted = sts.annotation(RESERVATION_ENDS_ANNOTATION).cloned();
            let overbooked = matches!(verdict, Verdict::Overbooked(_));
            match verdict {
                Verdict::Covered(until) => {
                    let until = until.map(|t| t.to_string());
                    if noted != until {
                        let patch = json!({"metadata": {"annotations": {RESERVATION_ENDS_ANNOTATION: until}}});
                        self.patch(sts, &patch).await?;
                        pass.annotated.push(name);
                    }
                }
                Verdict::Uncovered(shortfall) | Verdict::Overbooked(shortfall) => {
                    // The end the reconciler noted while it ran, else now.
                    let noted_end = noted.and_then(|t| t.parse::<Timestamp>().ok()).filter(|t| *t <= now);
                    let ended = noted_end.unwrap_or(now);
                    // Booked enough, and no booking it ran on ended: it was admitted beside
                    // deployments that hold the booking (or the booking was made smaller).
                    let over_budget = overbooked && noted_end.is_none();
                    let note = if over_budget {
                        STOPPED_OVER_BUDGET.to_owned()
                    } else {
                        ended.to_string()
                    };
                    let mut patch = sts.stop_patch();
                    patch["metadata"] =
                        json!({"annotations": {STOPPED_ANNOTATION: note, RESERVATION_ENDS_ANNOTATION: null}});
                    self.patch(sts, &patch).await?;
                    let gpus = times(&running.per_pod, running.replicas);
                    let held: Vec<String> = gpus.iter().map(|(g, n)| format!("{n} × {}", g.slug())).collect();
                    let why = if over_budget {
                        "over budget: the GPU reservations active now are held by the owner's deployments started earlier".to_owned()
                    } else {
                        format!("the GPU reservation ended at {}", readable(ended))
                    };
                    let message = format!(
                        "Stopped ({}, volumes kept): {why}; {} no longer covered ({shortfall})",
                        match sts {
                            Deployed::StatefulSet(_) => "scaled to 0",
                            Deployed::Job(_) => "run suspended",
                        },
                        held.join(", ")
                    );
                    self.record_event(sts, &message).await?;
                    tracing::info!(kind = sts.kind(), %name, %message, "stopped a GPU deployment");
                    pass.stopped.push(name);
                }
            }
        }
        Ok(pass)
    }

    async fn patch(&self, target: &Deployed, patch: &serde_json::Value) -> Result<(), ReconcileError> {
        let name = target.name();
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        let what = format!("patching {} {name}", target.kind());
        match target {
            Deployed::StatefulSet(_) => {
                let sets: Api<StatefulSet> = self.cluster.api();
                call(what, sets.patch(name, &params, &Patch::Merge(patch))).await?;
            }
            Deployed::Job(_) => {
                let jobs: Api<k8s_openapi::api::batch::v1::Job> = self.cluster.api();
                call(what, jobs.patch(name, &params, &Patch::Merge(patch))).await?;
            }
        }
        Ok(())
    }

    /// A Normal event on the StatefulSet or Job, which `kubectl describe` shows.
    async fn record_event(&self, target: &Deployed, message: &str) -> Result<(), ReconcileError> {
        // When it happened on the wall clock (the policy's may be a test's).
        let now = Timestamp::now();
        let name = target.name().to_owned();
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}.")),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(target.api_version().into()),
                kind: Some(target.kind().into()),
                name: Some(name.clone()),
                namespace: target.meta().namespace.clone(),
                uid: target.meta().uid.clone(),
                ..ObjectReference::default()
            },
            reason: Some("ReservationEnded".into()),
            message: Some(message.to_owned()),
            type_: Some("Normal".into()),
            source: Some(EventSource {
                component: Some("llp-k8s".into()),
                host: None,
            }),
            reporting_component: Some("llp-k8s".into()),
            reporting_instance: Some(self.lease.holder().to_owned()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            ..Event::default()
        };
        let events: Api<Event> = self.cluster.api();
        call(
            format!("recording an event on {name}"),
            events.create(&PostParams::default(), &event),
        )
        .await?;
        Ok(())
    }
}
