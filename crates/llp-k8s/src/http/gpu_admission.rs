//! Admission against GPU reservations for the changes that start GPU pods (PUT, `scale=N`
//! with N > 0, restart, pod delete): the bookings come from the record source, what the
//! owner's other deployments hold from the watch caches, the rule from
//! [`llp_spec::reservations::admit`].

use super::AppState;
use super::error::ApiError;
use crate::cluster::Cluster;
use crate::records::Session;
use llp_spec::reservations::{Admitted, Demand, GpuCounts, admit, times};

/// Checks that the bookings active now cover `replicas` pods of deployment `id` (of `owner`),
/// each holding `per_pod`. Without GPUs, or with enforcement off, nothing is read.
pub async fn check(
    state: &AppState,
    cluster: &Cluster,
    caller: &Session,
    id: &str,
    owner: &str,
    per_pod: GpuCounts,
    replicas: u32,
) -> Result<Admitted, ApiError> {
    if !state.reservations.settings.enforce || times(&per_pod, replicas).is_empty() {
        return Ok(None);
    }
    let now = state.reservations.clock.now();
    let others = crate::reservations::holdings(&cluster.caches, owner);
    let mut deployments: Vec<String> = others.iter().map(|h| h.deployment.clone()).collect();
    deployments.push(id.to_owned());
    let bookings = state.records.reservations(caller, owner, &deployments, now).await?;
    let demand = Demand {
        deployment: id,
        owner,
        per_pod,
        replicas,
    };
    admit(&demand, &bookings, &others, now).map_err(ApiError::NotEnoughResources)
}
