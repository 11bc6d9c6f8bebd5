//! Admission of the changes that start pods (PUT, `scale=N` up, restart, pod delete): the
//! GPU reservations active now must cover them, and the group's quota what they would hold,
//! decided one step per owner through the admission ledger ([`crate::admission`]). The
//! bookings come from the record source, what the owner's other deployments hold from the
//! watch caches and the ledger, the rules from [`llp_spec::reservations::admit`] and
//! [`llp_spec::quota::check`].

use super::AppState;
use super::error::ApiError;
use crate::admission::AdmitError;
use crate::cluster::Cluster;
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

/// Admits `ask` or says why not, one step per owner across replicas.
pub async fn admit(state: &AppState, cluster: &Cluster, caller: &Session, ask: &Ask<'_>) -> Result<(), ApiError> {
    let owner_label = label_value(ask.demand.owner);
    let owner_label = &owner_label;
    let decide = |pending: Ledger| async move {
        check(state, cluster, caller, &ask.demand, &pending).await?;
        if let Some((this, quota)) = &ask.quota {
            let others = crate::quota::others(&cluster.caches, owner_label, ask.label, ask.mounted, &pending);
            llp_spec::quota::check(quota, others, *this).map_err(ApiError::OverQuota)?;
        }
        Ok(())
    };
    if !ask.hold {
        return decide(crate::admission::seen(cluster, ask.demand.owner, ask.label)).await;
    }
    crate::admission::admit(cluster, ask.demand.owner, ask.label, |pending| {
        let entry = ask.entry.clone();
        async move {
            decide(pending).await?;
            Ok(entry)
        }
    })
    .await
    .map_err(|error| match error {
        AdmitError::Refused(refusal) => refusal,
        AdmitError::Cluster(error) => ApiError::cluster(error),
        AdmitError::Timeout(_) => ApiError::Timeout {
            dependency: "the cluster",
        },
    })
}

/// Checks that the bookings active now cover `demand`, beside what the owner's other
/// deployments hold or were just admitted to hold (`pending`). Without GPUs, or with
/// enforcement off, nothing is read.
async fn check(
    state: &AppState,
    cluster: &Cluster,
    caller: &Session,
    demand: &Demand<'_>,
    pending: &Ledger,
) -> Result<Admitted, ApiError> {
    if !state.reservations.settings.enforce || times(&demand.per_pod, demand.replicas).is_empty() {
        return Ok(None);
    }
    let now = state.reservations.clock.now();
    let others = crate::reservations::holdings(&cluster.caches, demand.owner, pending);
    let mut deployments: Vec<String> = others.iter().map(|h| h.deployment.clone()).collect();
    deployments.push(demand.deployment.to_owned());
    let bookings = state
        .records
        .reservations(caller, demand.owner, &deployments, now)
        .await?;
    admit_gpus(demand, &bookings, &others, now).map_err(ApiError::NotEnoughResources)
}
