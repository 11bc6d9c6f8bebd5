//! Admission of the changes that start pods (deploy, scale up, restart, pod delete): the
//! GPU reservations active now must cover them, and the group's quota what they would hold,
//! decided one step per owner through the admission ledger ([`crate::cluster::ledger`]). The
//! bookings come from the record source, what the owner's other deployments hold from the
//! watch caches and the ledger, the rules from [`llp_spec::reservations::admit`] and
//! [`llp_spec::quota::check`].

use super::{Error, Operations, Target};
use crate::cluster::Cluster;
use crate::cluster::ledger::AdmitError;
use crate::records::Session;
use llp_spec::admission::{Entry, Ledger};
use llp_spec::names::label_value;
use llp_spec::quota::{Quota, Usage};
use llp_spec::reservations::{Admitted, Demand, admit as admit_gpus, times};

/// What one admission decides on.
pub struct Ask<'a> {
    /// The deployment's GPUs, and its owner.
    pub demand: Demand<'a>,
    /// Its `llp.kitegg.de/deployment` label.
    pub label: &'a str,
    /// What it would hold, and the quota that must allow it (`None`: it does not grow, the
    /// quota is not checked).
    pub quota: Option<(Usage, Quota)>,
    /// The shared claims it mounts, which it counts itself.
    pub mounted: &'a [String],
    /// Whether it may hold more than the caches show (then its entry is written; otherwise the
    /// checks alone decide, and nothing is written).
    pub hold: bool,
    /// Its ledger entry once admitted.
    pub entry: Entry,
}

/// A change to a deployed deployment that admission decides on.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// To this many pods.
    Scale(u32),
    /// A run to completion started again with this many pods (its old ones go first).
    Rerun(u32),
    /// Its pods as they are (a rolling restart, a pod deleted and made again).
    Keep,
}

/// Admits `ask` or says why not, one step per owner across replicas.
pub async fn admit(ops: &Operations<'_>, cluster: &Cluster, caller: &Session, ask: &Ask<'_>) -> Result<(), Error> {
    let owner_label = label_value(ask.demand.owner);
    let owner_label = &owner_label;
    let decide = |pending: Ledger| async move {
        check(ops, cluster, caller, &ask.demand, &pending).await?;
        if let Some((this, quota)) = &ask.quota {
            let others = crate::quota::others(&cluster.caches, owner_label, ask.label, ask.mounted, &pending);
            llp_spec::quota::check(quota, others, *this).map_err(Error::OverQuota)?;
        }
        Ok(())
    };
    if !ask.hold {
        return decide(crate::cluster::ledger::seen(cluster, ask.demand.owner, ask.label)).await;
    }
    crate::cluster::ledger::admit(cluster, ask.demand.owner, ask.label, |pending| {
        let entry = ask.entry.clone();
        async move {
            decide(pending).await?;
            Ok(entry)
        }
    })
    .await
    .map_err(|error| match error {
        AdmitError::Refused(refusal) => refusal,
        AdmitError::Cluster(error) => Error::cluster(error),
        AdmitError::Timeout(_) => Error::Timeout {
            dependency: "the cluster",
        },
    })
}

/// Checks that the bookings active now cover `demand`, beside what the owner's other
/// deployments hold or were just admitted to hold (`pending`). Without GPUs, or with
/// enforcement off, nothing is read.
async fn check(
    ops: &Operations<'_>,
    cluster: &Cluster,
    caller: &Session,
    demand: &Demand<'_>,
    pending: &Ledger,
) -> Result<Admitted, Error> {
    if !ops.reservations.settings.enforce || times(&demand.per_pod, demand.replicas).is_empty() {
        return Ok(None);
    }
    let now = ops.reservations.clock.now();
    let others = crate::reservations::holdings(&cluster.caches, demand.owner, pending);
    let mut deployments: Vec<String> = others.iter().map(|h| h.deployment.clone()).collect();
    deployments.push(demand.deployment.to_owned());
    let bookings = ops
        .records
        .reservations(caller, demand.owner, &deployments, now)
        .await?;
    admit_gpus(demand, &bookings, &others, now).map_err(Error::NotEnoughResources)
}

impl Target<'_> {
    /// Admits `change` of the deployed StatefulSet or Job, one step per owner through the
    /// admission ledger: the GPU reservations active now must cover its GPUs, and, when it
    /// grows, the group's quota what it would hold. What scale-up, restart and pod delete do
    /// before they start pods.
    pub async fn admit(&self, ops: &Operations<'_>, caller: &Session, change: Change) -> Result<(), Error> {
        let caches = &self.cluster.caches;
        let base = self.names.base();
        let Some(deployed) = caches.deployed(base) else {
            return Ok(());
        };
        let (replicas, rerun) = match change {
            Change::Scale(n) => (n, false),
            Change::Rerun(n) => (n, true),
            Change::Keep => (deployed.replicas(), false),
        };
        let grows = replicas > deployed.replicas();
        let id = self.record.id.as_ref().map(ToString::to_string).unwrap_or_default();
        let owner = self.owner(caller);
        let per_pod = deployed.footprint().gpus.clone();
        let this = crate::quota::scaled(caches, &deployed, base, replicas);
        let mounted = deployed.footprint().claims.clone();
        let quota = ops.limits.for_groups(&caller.identity.groups).quota;
        let entry = crate::quota::entry(
            this,
            times(&per_pod, replicas),
            crate::quota::mounted_shared(caches, &deployed, base),
        );
        let ask = Ask {
            demand: Demand {
                deployment: &id,
                owner,
                per_pod,
                replicas,
            },
            label: &self.label,
            quota: grows.then_some((this, quota)),
            mounted: &mounted,
            // A rerun's pods are gone from the caches before the new ones are there.
            hold: grows || rerun,
            entry,
        };
        admit(ops, self.cluster, caller, &ask).await
    }
}
