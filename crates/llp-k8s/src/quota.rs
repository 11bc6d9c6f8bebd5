//! Counting what a user's deployments hold, from the watch caches, for the per-group quota
//! ([`llp_spec::quota`]): the other deployments as they run now, and one deployment as it
//! would run after a deploy or a scale.

use crate::cluster::cache::Caches;
use crate::cluster::workload::Deployed;
use llp_spec::Objects;
use llp_spec::admission::{Entry, Ledger};
use llp_spec::names::{DEPLOYMENT_LABEL, OWNER_LABEL};
use llp_spec::quota::{Usage, pods, storage};
use llp_spec::reservations::GpuCounts;
use std::collections::BTreeMap;

/// What the owner's deployments other than `deployment_label` hold: pods as they run, and
/// every claim of the owner but that deployment's and the shared ones it mounts (`mounted`),
/// which it counts itself. A deployment with a live entry in the owner's admission ledger
/// (`pending`) counts as the larger of what the caches and the entry say: it may have been
/// admitted a moment ago, by this replica or another, and not be in the caches yet.
pub fn others(
    caches: &Caches,
    owner_label: &str,
    deployment_label: &str,
    mounted: &[String],
    pending: &Ledger,
) -> Usage {
    let label = |labels: &Option<std::collections::BTreeMap<String, String>>, key: &str| {
        labels.as_ref().and_then(|l| l.get(key)).cloned()
    };
    // Per deployment (its label), and the owner's claims of no deployment (shared) by name.
    let mut per_deployment: BTreeMap<String, Usage> = BTreeMap::new();
    let mut shared: BTreeMap<String, f64> = BTreeMap::new();
    for deployed in crate::reservations::deployed(caches) {
        let labels = &deployed.meta().labels;
        let Some(deployment) = label(labels, DEPLOYMENT_LABEL) else {
            continue;
        };
        if label(labels, OWNER_LABEL).as_deref() != Some(owner_label) || deployment == deployment_label {
            continue;
        }
        let held = per_deployment.entry(deployment).or_default();
        held.deployments = 1;
        *held = *held + deployed.footprint().usage.times(deployed.replicas());
    }
    for claim in caches.claims.state() {
        let labels = &claim.metadata.labels;
        let name = claim.metadata.name.clone().unwrap_or_default();
        if label(labels, OWNER_LABEL).as_deref() != Some(owner_label) || mounted.contains(&name) {
            continue;
        }
        match label(labels, DEPLOYMENT_LABEL) {
            Some(d) if d == deployment_label => {}
            Some(d) => per_deployment.entry(d).or_default().storage += storage(&claim),
            None => {
                shared.insert(name, storage(&claim));
            }
        }
    }
    for (deployment, entry) in &pending.entries {
        if deployment == deployment_label {
            continue;
        }
        let held = per_deployment.entry(deployment.clone()).or_default();
        *held = llp_spec::admission::max(*held, entry.usage());
        for (name, size) in &entry.shared {
            if !mounted.contains(name) {
                let counted = shared.entry(name.clone()).or_default();
                *counted = counted.max(*size);
            }
        }
    }
    let mut usage = per_deployment.into_values().fold(Usage::default(), |a, b| a + b);
    usage.storage += shared.values().sum::<f64>();
    usage
}

/// Whether `this` holds no more than `held` of anything.
pub fn within(this: Usage, held: Usage) -> bool {
    let tolerance = 1e-9;
    this.deployments <= held.deployments
        && this.cpu <= held.cpu + tolerance
        && this.memory <= held.memory + tolerance
        && this.gpus <= held.gpus
        && this.storage <= held.storage + tolerance
}

/// The ledger entry of a deployment that holds `usage` (as [`of_objects`] or [`scaled`]
/// count it, shared claims included), `gpus` in all, and mounts the shared claims `shared`
/// (name and GiB). Its time is set when it is written.
pub fn entry(usage: Usage, gpus: GpuCounts, shared: BTreeMap<String, f64>) -> Entry {
    let in_shared: f64 = shared.values().sum();
    Entry {
        cpu: usage.cpu,
        memory: usage.memory,
        gpus,
        storage: (usage.storage - in_shared).max(0.0),
        shared,
        until: jiff::Timestamp::UNIX_EPOCH,
    }
}

/// The shared claims among `objects`: name and GiB.
pub fn shared_claims(objects: &Objects) -> BTreeMap<String, f64> {
    objects
        .shared_claims
        .iter()
        .filter_map(|c| Some((c.metadata.name.clone()?, storage(c))))
        .collect()
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

/// GiB of the claims of the deployment labelled `deployment_label` that `objects` does not
/// render: those of a volume renamed or dropped, or of replicas beyond its count, which
/// Kubernetes keeps (and so the owner holds) until the deployment is deleted.
pub fn unrendered_claims(caches: &Caches, deployment_label: &str, objects: &Objects) -> f64 {
    let mut rendered: Vec<String> = objects
        .claims
        .iter()
        .chain(&objects.shared_claims)
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    if let Some(set) = objects.stateful_set() {
        let name = set.metadata.name.clone().unwrap_or_default();
        let spec = set.spec.as_ref();
        let replicas = spec.and_then(|s| s.replicas).unwrap_or(1).max(0);
        for template in spec
            .and_then(|s| s.volume_claim_templates.as_ref())
            .into_iter()
            .flatten()
        {
            let volume = template.metadata.name.clone().unwrap_or_default();
            rendered.extend((0..replicas).map(|ordinal| format!("{volume}-{name}-{ordinal}")));
        }
    }
    caches
        .claims
        .state()
        .iter()
        .filter(|c| {
            let labels = c.metadata.labels.as_ref();
            labels.and_then(|l| l.get(DEPLOYMENT_LABEL)).map(String::as_str) == Some(deployment_label)
                && c.metadata.name.as_ref().is_some_and(|n| !rendered.contains(n))
        })
        .map(|c| storage(c))
        .sum()
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
    let shared: f64 = mounted_shared(caches, deployed, base).values().sum();
    usage.storage = held.max(first * f64::from(replicas)) + shared;
    usage
}

/// The claims the deployed `deployed` (base name `base`) mounts that are not its own (the
/// owner's shared volumes): name and GiB.
pub fn mounted_shared(caches: &Caches, deployed: &Deployed, base: &str) -> BTreeMap<String, f64> {
    let (_, claims) = caches.members(base);
    deployed
        .footprint()
        .claims
        .iter()
        .filter(|name| !claims.iter().any(|c| c.metadata.name.as_deref() == Some(name)))
        .filter_map(|name| Some((name.clone(), storage(caches.claim(name)?.as_ref()))))
        .collect()
}
