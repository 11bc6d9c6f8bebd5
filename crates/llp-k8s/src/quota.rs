//! Counting what a user's deployments hold, from the watch caches, for the per-group quota
//! ([`llp_spec::quota`]): the other deployments as they run now, and one deployment as it
//! would run after a deploy or a scale.

use crate::cluster::cache::Caches;
use crate::cluster::workload::Deployed;
use llp_spec::Objects;
use llp_spec::names::{DEPLOYMENT_LABEL, OWNER_LABEL};
use llp_spec::quota::{Usage, pods, storage};

/// What the owner's deployments other than `deployment_label` hold: pods as they run, and
/// every claim of the owner but that deployment's and the shared ones it mounts (`mounted`),
/// which it counts itself.
pub fn others(caches: &Caches, owner_label: &str, deployment_label: &str, mounted: &[String]) -> Usage {
    let label = |labels: &Option<std::collections::BTreeMap<String, String>>, key: &str| {
        labels.as_ref().and_then(|l| l.get(key)).cloned()
    };
    let mut usage = Usage::default();
    for deployed in crate::reservations::deployed(caches) {
        let labels = &deployed.meta().labels;
        if label(labels, OWNER_LABEL).as_deref() != Some(owner_label)
            || label(labels, DEPLOYMENT_LABEL).as_deref() == Some(deployment_label)
        {
            continue;
        }
        usage.deployments += 1;
        usage = usage + deployed.footprint().usage.times(deployed.replicas());
    }
    for claim in caches.claims.state() {
        let labels = &claim.metadata.labels;
        let name = claim.metadata.name.clone().unwrap_or_default();
        if label(labels, OWNER_LABEL).as_deref() == Some(owner_label)
            && label(labels, DEPLOYMENT_LABEL).as_deref() != Some(deployment_label)
            && !mounted.contains(&name)
        {
            usage.storage += storage(&claim);
        }
    }
    usage
}

/// What a deployment rendered as `objects` holds: its pods, a claim per replica and
/// per-replica volume, a run's claims, and its shared volumes.
pub fn of_objects(objects: &Objects) -> Usage {
    let replicas = match &objects.workload {
        llp_spec::Workload::StatefulSet(s) => s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        llp_spec::Workload::Job(j) => j.spec.as_ref().and_then(|s| s.parallelism).unwrap_or(1),
    };
    let replicas = u32::try_from(replicas).unwrap_or(0);
    let mut usage = Usage {
        deployments: 1,
        ..Usage::default()
    };
    if let Some(pod) = objects.workload.pod_template().and_then(|t| t.spec.as_ref()) {
        usage = usage + pods(pod, replicas);
    }
    let per_replica: f64 = objects
        .stateful_set()
        .and_then(|s| s.spec.as_ref()?.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
        .map(storage)
        .sum();
    usage.storage = per_replica * f64::from(replicas)
        + objects
            .claims
            .iter()
            .chain(&objects.shared_claims)
            .map(storage)
            .sum::<f64>();
    usage
}

/// What the deployed `deployed` (base name `base`) would hold at `replicas`: its pods, and
/// its claims, with those of the replicas it would add (each like replica 0's).
pub fn scaled(caches: &Caches, deployed: &Deployed, base: &str, replicas: u32) -> Usage {
    let mut usage = Usage {
        deployments: 1,
        ..Usage::default()
    };
    usage = usage + deployed.footprint().usage.times(replicas);
    let (_, claims) = caches.members(base);
    let held: f64 = claims.iter().map(|c| storage(c)).sum();
    let first: f64 = claims
        .iter()
        .filter(|c| {
            c.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with(&format!("-{base}-0")))
        })
        .map(|c| storage(c))
        .sum();
    let shared: f64 = deployed
        .footprint()
        .claims
        .iter()
        .filter(|name| !claims.iter().any(|c| c.metadata.name.as_deref() == Some(name)))
        .filter_map(|name| caches.claim(name))
        .map(|c| storage(&c))
        .sum();
    usage.storage = held.max(first * f64::from(replicas)) + shared;
    usage
}
