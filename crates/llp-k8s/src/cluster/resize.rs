//! Growing volumes: what a deployment's claims hold now (from the caches, to refuse a smaller
//! size before anything is written), and growing its per-replica claims in place. A
//! StatefulSet's claim templates cannot change, so new replicas get the new size only once
//! [`super::apply`] recreates the StatefulSet around its running pods.

use super::Cluster;
use super::cache::Caches;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, Patch, PatchParams};
use llp_spec::Objects;
use llp_spec::names::DEPLOYMENT_LABEL;
use llp_spec::resize::{grows, larger, requested};
use serde_json::json;
use std::collections::BTreeMap;

/// The size each volume of `objects` asks for now, by volume name: the largest of its
/// per-replica claims, or its shared claim. Volumes without claims yet are left out.
pub fn current_sizes(caches: &Caches, objects: &Objects) -> BTreeMap<String, String> {
    let base = objects.workload.name();
    let (_, claims) = caches.members(base);
    let mut sizes: BTreeMap<String, String> = BTreeMap::new();
    for template in templates(objects) {
        let volume = template.metadata.name.as_deref().unwrap_or_default();
        let own = claims.iter().filter(|c| is_replica_claim(c, volume, base));
        for size in own.filter_map(|c| requested(c)) {
            let now = sizes.get(volume).map_or(size, |s| larger(s, size)).to_owned();
            sizes.insert(volume.to_owned(), now);
        }
    }
    // A run to completion's claims, `<volume>-<base>`.
    for own in &objects.claims {
        let name = own.metadata.name.as_deref().unwrap_or_default();
        let volume = name.strip_suffix(&format!("-{base}")).unwrap_or(name);
        if let Some(size) = caches.claim(name).as_deref().and_then(requested) {
            sizes.insert(volume.to_owned(), size.to_owned());
        }
    }
    for shared in &objects.shared_claims {
        let volume = shared
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(llp_spec::names::SHARED_VOLUME_LABEL));
        let existing = caches.claim(shared.metadata.name.as_deref().unwrap_or_default());
        if let (Some(volume), Some(size)) = (volume, existing.as_deref().and_then(requested)) {
            sizes.insert(volume.clone(), size.to_owned());
        }
    }
    sizes
}

/// Asks every per-replica claim of the deployment labelled `deployment_label` for its
/// template's size, where that is more; returns the claims that were grown.
pub async fn grow_claims(
    cluster: &Cluster,
    objects: &Objects,
    deployment_label: &str,
) -> Result<Vec<String>, (String, kube::Error)> {
    let base = objects.workload.name();
    let api: Api<PersistentVolumeClaim> = cluster.api();
    // From the watch cache: the claims were made by the StatefulSet controller long before.
    let claims: Vec<_> = cluster
        .caches
        .claims
        .state()
        .into_iter()
        .filter(|c| {
            c.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(DEPLOYMENT_LABEL))
                .map(String::as_str)
                == Some(deployment_label)
        })
        .collect();
    let mut grown = Vec::new();
    for template in templates(objects) {
        let volume = template.metadata.name.as_deref().unwrap_or_default();
        let Some(wanted) = requested(template) else { continue };
        for claim in claims.iter().filter(|c| is_replica_claim(c, volume, base)) {
            let name = claim.metadata.name.clone().unwrap_or_default();
            if requested(claim).is_some_and(|now| grows(now, wanted)) {
                let patch = json!({"spec": {"resources": {"requests": {"storage": wanted}}}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .map_err(|e| (name.clone(), e))?;
                grown.push(name);
            }
        }
    }
    Ok(grown)
}

fn templates(objects: &Objects) -> impl Iterator<Item = &PersistentVolumeClaim> {
    objects
        .stateful_set()
        .and_then(|s| s.spec.as_ref())
        .into_iter()
        .flat_map(|s| s.volume_claim_templates.iter().flatten())
}

/// Whether `claim` is a replica's claim of `volume` of StatefulSet `base`:
/// `<volume>-<base>-<ordinal>`.
fn is_replica_claim(claim: &PersistentVolumeClaim, volume: &str, base: &str) -> bool {
    claim
        .metadata
        .name
        .as_deref()
        .and_then(|n| {
            n.strip_prefix(volume)?
                .strip_prefix('-')?
                .strip_prefix(base)?
                .strip_prefix('-')
        })
        .is_some_and(|ordinal| !ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit()))
}
