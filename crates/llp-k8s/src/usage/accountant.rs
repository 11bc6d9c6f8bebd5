//! The accountant: one instance, elected through a Lease, looks at the pods every few seconds
//! and writes what GPUs they hold. A hold's start and end are the pod's own (its `startTime`,
//! its containers' `finishedAt`), so a new leader, a restarted service or a pod that ran while
//! no service did is counted from the pod itself; a hold is keyed by pod and profile, so
//! writing it again counts nothing twice. A pod that went away ends at the last look that saw
//! it (at most one round early).

use super::{GpuSeconds, ProfileLabel};
use crate::cluster::Cluster;
use crate::cluster::lease::LeaseLock;
use crate::records::UsageStore;
use jiff::Timestamp;
use llp_spec::usage::{Hold, holds_of};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The name of the Lease that elects the accountant, in the managed namespace.
pub const LEASE_NAME: &str = "llp-k8s-accountant";

/// How often the accountant looks, unless configured.
pub const EVERY: Duration = Duration::from_secs(10);

/// How long a store write may take.
const STORE_DEADLINE: Duration = Duration::from_secs(10);

/// The accountant of one service instance.
pub struct Accountant {
    store: Arc<dyn UsageStore>,
    cluster: Cluster,
    lease: LeaseLock,
    every: Duration,
    counter: GpuSeconds,
    /// When this instance last counted, while it holds the lease: what the counter has.
    counted_until: Mutex<Option<Timestamp>>,
    /// The holds it left open in the store at its last round, while it has led since: only
    /// the leader writes holds, so the store has no others, and a round need not read them.
    open: Mutex<Option<Vec<Hold>>>,
}

/// What one round wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Holds of pods seen now.
    pub seen: usize,
    /// Open holds of pods no longer there, ended now.
    pub ended: usize,
}

impl Accountant {
    /// The accountant of instance `holder`, looking every `every`, adding to `counter`.
    pub fn new(
        store: Arc<dyn UsageStore>,
        cluster: Cluster,
        holder: &str,
        every: Duration,
        counter: GpuSeconds,
    ) -> Self {
        let lease = LeaseLock::new(cluster.api(), LEASE_NAME, holder, every * 3);
        Self {
            store,
            cluster,
            lease,
            every,
            counter,
            counted_until: Mutex::new(None),
            open: Mutex::new(None),
        }
    }

    /// Looks every `every` while this instance holds the lease, until `shutdown` turns true;
    /// then gives the lease up.
    pub async fn run(self, shutdown: tokio::sync::watch::Receiver<bool>) {
        crate::cluster::lease::run_rounds("GPU accountant", &self.lease, self.every, shutdown, || async {
            self.round(Timestamp::now()).await.err()
        })
        .await;
    }

    /// One round at `now`: takes or renews the lease and, holding it, writes the holds;
    /// `None` when another instance holds it.
    pub async fn round(&self, now: Timestamp) -> Result<Option<Round>, String> {
        let held = tokio::time::timeout(STORE_DEADLINE, self.lease.try_hold(now))
            .await
            .map_err(|_| "the cluster did not answer in time while renewing the lease".to_owned())?
            .map_err(|error| format!("the cluster failed while renewing the lease: {error}"))?;
        // What it remembers holds only while it keeps leading, and a failed round forgets it.
        let remembered = lock(&self.open).take();
        if !held {
            *lock(&self.counted_until) = None;
            return Ok(None);
        }
        if let Some(since) = self.cluster.health.stale_since() {
            // Pods would look gone, or still running, when they are not.
            return Err(format!("the watch caches have not followed the cluster since {since}"));
        }
        let seen: Vec<Hold> = self
            .cluster
            .caches
            .pods
            .state()
            .iter()
            .flat_map(|pod| holds_of(pod, now))
            .collect();
        let open = match remembered.filter(|_| lock(&self.counted_until).is_some()) {
            Some(open) => open,
            None => self.store_call(self.store.open_holds()).await?,
        };
        let present: HashSet<_> = seen.iter().map(Hold::key).collect();
        let gone: Vec<Hold> = open
            .into_iter()
            .filter(|hold| !present.contains(&hold.key()))
            .map(|hold| Hold {
                end: Some(hold.seen),
                ..hold
            })
            .collect();
        let round = Round {
            seen: seen.len(),
            ended: gone.len(),
        };
        let written: Vec<Hold> = seen.into_iter().chain(gone).collect();
        self.store_call(self.store.record(&written)).await?;
        *lock(&self.open) = Some(written.iter().filter(|h| h.end.is_none()).cloned().collect());
        self.count(&written, now);
        Ok(Some(round))
    }

    /// Adds to the counter what `holds` accrued since the last round this instance counted
    /// (nothing in its first round as leader: an earlier leader counted that).
    fn count(&self, holds: &[Hold], now: Timestamp) {
        let mut counted_until = lock(&self.counted_until);
        if let Some(since) = *counted_until {
            for hold in holds {
                let seconds = hold.gpu_seconds(since, now, now);
                if seconds > 0.0 {
                    let label = ProfileLabel {
                        profile: hold.gpu.slug().to_owned(),
                    };
                    self.counter.get_or_create(&label).inc_by(seconds);
                }
            }
        }
        *counted_until = Some(now);
    }

    async fn store_call<T>(
        &self,
        call: impl Future<Output = Result<T, crate::records::RecordError>>,
    ) -> Result<T, String> {
        tokio::time::timeout(STORE_DEADLINE, call)
            .await
            .map_err(|_| "the usage store did not answer in time".to_owned())?
            .map_err(|error| format!("the usage store failed: {error}"))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the accountant when there is a cluster and a store.
pub fn spawn(
    store: Option<Arc<dyn UsageStore>>,
    cluster: Option<&Cluster>,
    counter: GpuSeconds,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let accountant = Accountant::new(
        store?,
        cluster?.clone(),
        &crate::cluster::lease::instance_name(),
        EVERY,
        counter,
    );
    Some(tokio::spawn(accountant.run(shutdown)))
}
