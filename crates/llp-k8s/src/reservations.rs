//! GPU reservations (SPEC section 10) on the service's side: whether they are enforced, the
//! clock bookings are judged by, and what an owner's deployments hold now (read from the
//! watch caches, so admission costs the cluster nothing).

use crate::cluster::cache::Caches;
use crate::cluster::workload::Deployed;
use jiff::Timestamp;
use llp_spec::admission::{Ledger, max_gpus};
use llp_spec::names::{DEPLOYMENT_LABEL, OWNER_LABEL, label_value};
use llp_spec::reservations::{GpuCounts, Holding, times};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub mod reconciler;

/// `[reservations]` of the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReservationSettings {
    /// Whether a change that starts GPU pods needs a reservation active now, and GPU pods stop
    /// when their bookings end.
    pub enforce: bool,
    /// How often the reconciler reviews running GPU deployments (a stop comes at most this
    /// long after a booking's end; its lease lasts three times as long).
    pub check_seconds: u64,
}

impl Default for ReservationSettings {
    fn default() -> Self {
        Self {
            enforce: true,
            check_seconds: 10,
        }
    }
}

/// The time bookings are judged by: the system's, or one a test sets.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<Mutex<Timestamp>>>);

impl Clock {
    /// A clock that stands at `at` until [`Clock::set`].
    pub fn manual(at: Timestamp) -> Self {
        Self(Some(Arc::new(Mutex::new(at))))
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            Some(manual) => *manual.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            None => Timestamp::now(),
        }
    }

    /// Moves a manual clock to `at` (a system clock ignores it).
    pub fn set(&self, at: Timestamp) {
        if let Some(manual) = &self.0 {
            *manual.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = at;
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(manual)"
        } else {
            "Clock(system)"
        })
    }
}

/// Whether and by which clock reservations are enforced.
#[derive(Debug, Clone, Default)]
pub struct ReservationPolicy {
    /// The configuration.
    pub settings: ReservationSettings,
    /// The clock.
    pub clock: Clock,
}

/// Every StatefulSet and Job in the caches that is not being deleted.
pub fn deployed(caches: &Caches) -> Vec<Deployed> {
    let sets = caches.stateful_sets.state().into_iter().map(Deployed::StatefulSet);
    let jobs = caches.jobs.state().into_iter().map(Deployed::Job);
    sets.chain(jobs)
        .filter(|d| d.meta().deletion_timestamp.is_none())
        .collect()
}

/// What `owner`'s deployments hold now: each one's GPUs per pod × the pods it runs (a
/// finished or suspended run holds none), or, while its entry in the owner's admission ledger
/// (`pending`) counts, the more of that and the entry's. Deployments are named by their
/// `deployment` label, which is the record id for the UUIDs and integers records have.
pub fn holdings(caches: &Caches, owner: &str, pending: &Ledger) -> Vec<Holding> {
    let owner = label_value(owner);
    let mut held: BTreeMap<String, GpuCounts> = BTreeMap::new();
    for d in deployed(caches) {
        let Some(labels) = d.meta().labels.as_ref() else {
            continue;
        };
        if labels.get(OWNER_LABEL) != Some(&owner) {
            continue;
        }
        if let Some(deployment) = labels.get(DEPLOYMENT_LABEL) {
            held.insert(deployment.clone(), times(&d.footprint().gpus, d.replicas()));
        }
    }
    for (deployment, entry) in &pending.entries {
        let gpus = held.entry(deployment.clone()).or_default();
        *gpus = max_gpus(gpus, &entry.gpus);
    }
    held.into_iter()
        .filter(|(_, gpus)| !gpus.is_empty())
        .map(|(deployment, gpus)| Holding { deployment, gpus })
        .collect()
}

/// Starts the reconciler when the service has a cluster and enforces bookings.
pub fn spawn_reconciler(
    records: Arc<dyn crate::records::RecordSource>,
    cluster: Option<&crate::cluster::Cluster>,
    policy: &Arc<ReservationPolicy>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let cluster = cluster?.clone();
    if !policy.settings.enforce {
        return None;
    }
    let reconciler = reconciler::Reconciler::new(
        records,
        cluster,
        policy.clone(),
        &crate::cluster::lease::instance_name(),
    );
    Some(tokio::spawn(reconciler.run(shutdown)))
}
