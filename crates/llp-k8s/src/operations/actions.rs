//! What a user does to a running deployment: scale it, restart it, delete it, delete one of
//! its pods. Each admits what would start pods before it writes.

use super::{Change, Error, Operations, Target};
use crate::cluster::removal;
use crate::cluster::workload::Deployed;
use crate::records::{Purpose, Session};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

/// Scales the deployment `id` to `replicas` (until the next deploy re-applies the YAML's
/// `replicas`). Scaling up needs the GPUs booked and fits the quota, decided one step per
/// owner; scaling down frees what the deployment's admission entry may still count.
pub async fn scale(ops: &Operations<'_>, caller: &Session, id: &str, replicas: u32) -> Result<(), Error> {
    let max = ops.limits.for_groups(&caller.identity.groups).max_replicas;
    if replicas > max {
        return Err(Error::invalid(
            "scale",
            format!("`{replicas}` is not a number of replicas from 0 to {max}"),
        ));
    }
    let target = ops.resolve(caller, id, Purpose::Act).await?.deployed()?;
    let base = target.names.base();
    let Some(deployed) = target.cluster.caches.deployed(base) else {
        return Err(Error::NotFound("this deployment is not deployed".into()));
    };
    if replicas > deployed.replicas() {
        target.admit(ops, caller, Change::Scale(replicas)).await?;
    }
    match deployed {
        Deployed::StatefulSet(_) => {
            let sets: Api<StatefulSet> = target.cluster.api();
            sets.patch_scale(
                base,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .map_err(Error::cluster)?;
        }
        // A run's pods at once; a finished run stays finished (a deploy or restart runs it again).
        Deployed::Job(_) => {
            let jobs: Api<Job> = target.cluster.api();
            jobs.patch(
                base,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"parallelism": replicas}})),
            )
            .await
            .map_err(Error::cluster)?;
        }
    }
    if replicas < deployed.replicas() {
        let caches = &target.cluster.caches;
        let held = crate::quota::scaled(caches, &deployed, base, replicas);
        let gpus = llp_spec::reservations::times(&deployed.footprint().gpus, replicas);
        let entry = crate::quota::entry(held, gpus, crate::quota::mounted_shared(caches, &deployed, base));
        crate::cluster::ledger::settle(target.cluster, target.owner(caller), &target.label, Some(entry))
            .await
            .map_err(Error::cluster)?;
    }
    if replicas > 0 {
        removal::clear_stopped(target.cluster, base)
            .await
            .map_err(Error::cluster)?;
    }
    Ok(())
}

/// Restarts the deployment `id`: a rolling restart of a StatefulSet's pods (the pod
/// template's `kubectl.kubernetes.io/restartedAt`), a run to completion from the beginning.
/// Answers the time it stamped.
pub async fn restart(ops: &Operations<'_>, caller: &Session, id: &str) -> Result<String, Error> {
    let target = ops.resolve(caller, id, Purpose::Act).await?.deployed()?;
    let base = target.names.base();
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    if let Some(Deployed::Job(job)) = target.cluster.caches.deployed(base) {
        let replicas = job.spec.as_ref().and_then(|s| s.parallelism).unwrap_or(1);
        // Held from here on: the deleted run's pods are gone from the caches before the new
        // run's are there, and its entry keeps another admission from taking its place.
        target
            .admit(ops, caller, Change::Rerun(u32::try_from(replicas).unwrap_or(0)))
            .await?;
        removal::rerun(target.cluster, base).await.map_err(Error::cluster)?;
        return Ok(now);
    }
    target.admit(ops, caller, Change::Keep).await?;
    let patch =
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
    target
        .cluster
        .api::<StatefulSet>()
        .patch(base, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(Error::cluster)?;
    Ok(now)
}

/// Deletes every object of the deployment `id`, volumes included (the record stays).
pub async fn delete(ops: &Operations<'_>, caller: &Session, id: &str) -> Result<(), Error> {
    // Not while a deploy of the same record is applying.
    let lock = ops.locks.deployment(id);
    let _deleting = lock.lock().await;
    let target = ops.resolve(caller, id, Purpose::Act).await?;
    let base = target.names.base().to_owned();
    // Not only a deployed one: what a deploy cut off partway left (Services, an Ingress,
    // claims, a hostname) goes too. Not found only when nothing of it is left, which the
    // cluster confirms: this replica's watches may not have seen a deploy another replica
    // answered a moment ago.
    if target.cluster.caches.remains(&base, &target.label).is_empty() && !workload_exists(&target, &base).await? {
        return Err(Error::NotFound(
            "this deployment is not deployed yet: deploy it with PUT first".into(),
        ));
    }
    remove(&target).await?;
    // What it held is free for the owner's next deploy at once.
    crate::cluster::ledger::settle(target.cluster, target.owner(caller), &target.label, None)
        .await
        .map_err(Error::cluster)?;
    // Read after write: a status request right after this answers not found.
    if !target.cluster.caches.observe_gone(&base).await {
        tracing::warn!(%base, "the watch cache has not seen the delete yet");
    }
    Ok(())
}

/// Whether the deployment's StatefulSet or Job exists, asked of the cluster itself.
async fn workload_exists(target: &Target<'_>, base: &str) -> Result<bool, Error> {
    let set = target.cluster.api::<StatefulSet>().get_opt(base).await;
    if set.map_err(Error::cluster)?.is_some() {
        return Ok(true);
    }
    let job = target.cluster.api::<Job>().get_opt(base).await;
    Ok(job.map_err(Error::cluster)?.is_some())
}

/// Removes every object of `target`, deployed or not (a record deleted, with its objects).
pub async fn remove(target: &Target<'_>) -> Result<(), Error> {
    removal::delete_objects(target.cluster, Some(target.names.base()), &target.label)
        .await
        .map_err(Error::removal)
}

/// Deletes `pod` of the deployment `id`; its StatefulSet starts it again, so the GPUs it
/// holds must still be booked.
pub async fn delete_pod(ops: &Operations<'_>, caller: &Session, id: &str, pod: &str) -> Result<(), Error> {
    let target = ops.resolve(caller, id, Purpose::Act).await?.deployed()?;
    target.own_pod(pod)?;
    target.admit(ops, caller, Change::Keep).await?;
    target
        .cluster
        .api::<Pod>()
        .delete(pod, &DeleteParams::default())
        .await
        .map_err(Error::cluster)?;
    Ok(())
}
