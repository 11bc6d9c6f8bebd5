//! Deploy: a record becomes its objects. The pipeline, in the order [`deploy`] runs it:
//! fetch the record → validate → render → decide every refusal that needs no write (a
//! shrinking volume, a hostname's format or holder) → admit (quota and GPU bookings, one step
//! per owner) → clear what an earlier record left → claim the hostname → apply → settle (the
//! reconciler's stop note, hostnames let go, the watch caches caught up).

use super::admission::{self, Ask};
use super::{Error, Operations};
use crate::cluster::Cluster;
use crate::cluster::apply::{Applied, ApplyError, apply_objects};
use crate::cluster::hostnames::{self, Claimed, HostnameError};
use crate::cluster::leftovers::{self, Incarnation};
use crate::records::{Purpose, Session};
use llp_spec::admission::Entry;
use llp_spec::names::label_value;
use llp_spec::quota::{Quota, Usage};
use llp_spec::render::Objects;
use llp_spec::reservations::{Demand, GpuCounts, times};
use llp_spec::{Deployment, Identity as Owner, Record, RecordId, render, validate_record_with};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a deploy may wait for the cluster to apply its objects.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a deploy waits for the previous deployment's pods and claims to finish
/// terminating before it asks the caller to retry (a real pod's grace period is 30 s).
const DELETION_WAIT: Duration = Duration::from_secs(15);

/// A deploy that went through.
pub struct Deployed {
    /// The normalised spec, defaults filled in.
    pub spec: Deployment,
    /// Whether the deployment was not there before.
    pub created: bool,
}

/// Deploys the record `id` for `caller`.
pub async fn deploy(ops: &Operations<'_>, caller: &Session, id: &str) -> Result<Deployed, Error> {
    // One deploy of a record at a time; the record is read under the lock, so the last
    // deploy applies the latest record and no mix of two is left behind.
    let lock = ops.locks.deployment(id);
    let _deploying = lock.lock().await;
    let started = Instant::now();
    let record = ops.records.record(caller, id, Purpose::Act).await?;
    let plan = Plan::new(ops, caller, record, id).await?;
    let cluster = plan.cluster;
    refuse_a_taken_hostname(&plan).await?;
    let started = ops.steps.done("record", started);
    admission::admit(ops, cluster, caller, &plan.ask()).await?;
    let started = ops.steps.done("admission", started);
    clear_leftovers(&plan).await?;
    let claimed = claim_hostname(ops, &plan).await?;
    let applied = match apply(&plan).await {
        Ok(applied) => applied,
        Err(error) => {
            give_back(&plan, claimed).await;
            return Err(error);
        }
    };
    let started = ops.steps.done("apply", started);
    settle(&plan, &applied).await?;
    ops.steps.done("observe", started);
    Ok(Deployed {
        spec: plan.deployment,
        created: applied.created,
    })
}

/// What a deploy would do, found without doing it.
pub struct Preview {
    /// The normalised spec, defaults filled in.
    pub spec: Deployment,
    /// Every object as the API server's dry run of its apply answers it.
    pub objects: Vec<serde_json::Value>,
    /// Where its pods could start now, for a deployment with GPUs.
    pub placement: Option<llp_spec::placement::Placement>,
}

/// Everything a deploy of the record `id` checks (validation, volumes, hostname, quota and
/// GPU bookings, the API server's own validation of every object), and where its pods could
/// start now; nothing is written. A refusal is the one the deploy would give. With
/// `proposed`, its `data` and `exposed_*` are tried instead of the stored record's.
pub async fn preview(
    ops: &Operations<'_>,
    caller: &Session,
    id: &str,
    proposed: Option<&Record>,
) -> Result<Preview, Error> {
    let stored = ops.records.record(caller, id, Purpose::Act).await?;
    // A proposed record is tried in the stored one's place: its YAML and exposure, the stored
    // one's id, owner and creation (what names and owns the objects).
    let record = match proposed {
        None => stored,
        Some(proposed) => Arc::new(Record {
            data: proposed.data.clone(),
            exposed_service: proposed.exposed_service.clone(),
            exposed_port: proposed.exposed_port.clone(),
            exposed_hostname: proposed.exposed_hostname.clone(),
            title: proposed.title.clone().or_else(|| stored.title.clone()),
            ..(*stored).clone()
        }),
    };
    let plan = Plan::new(ops, caller, record, id).await?;
    let cluster = plan.cluster;
    refuse_a_taken_hostname(&plan).await?;
    if let Some(hostname) = plan.deployment.hostname() {
        let host = format!("{hostname}.{}", ops.render.ingress.domain);
        if hostnames::served_by_another_ingress(cluster, &host, &plan.label)
            .await
            .map_err(Error::cluster)?
        {
            return Err(plan.hostname_taken(hostname));
        }
    }
    // Decided as a deploy decides, the entry not written.
    let ask = Ask {
        hold: false,
        ..plan.ask()
    };
    admission::admit(ops, cluster, caller, &ask).await?;
    let objects = crate::cluster::apply::dry_run(cluster, &plan.objects)
        .await
        .map_err(apply_failed)?;
    let placement = if plan.per_pod.is_empty() {
        None
    } else {
        let resources: Vec<&str> = plan.per_pod.keys().map(|gpu| gpu.resource_name()).collect();
        let workers = crate::cluster::capacity::worker_gpus(cluster, &ops.render.node_selector, &resources)
            .await
            .map_err(Error::cluster)?;
        let rooms: Vec<llp_spec::placement::Room> = workers
            .into_iter()
            .map(|(node, gpus)| llp_spec::placement::Room {
                node,
                free: gpus
                    .into_iter()
                    .map(|(resource, g)| (resource, (g.allocatable - g.requested).max(0)))
                    .collect(),
            })
            .collect();
        Some(llp_spec::placement::place(
            &plan.per_pod,
            plan.deployment.spec.replicas,
            &rooms,
        ))
    };
    Ok(Preview {
        spec: plan.deployment,
        objects,
        placement,
    })
}

/// What a deploy will write and what it asks admission, worked out from the record and the
/// watch caches before anything is written.
struct Plan<'a> {
    cluster: &'a Cluster,
    deployment: Deployment,
    objects: Objects,
    owner: String,
    /// The record's id, as bookings name it.
    record: String,
    /// Its `llp.kitegg.de/deployment` label.
    label: String,
    /// Why the objects under its names belong to an earlier record, if they do.
    leftovers: Option<String>,
    quota: Quota,
    usage: Usage,
    per_pod: GpuCounts,
    mounted: Vec<String>,
    hold: bool,
    entry: Entry,
}

impl<'a> Plan<'a> {
    /// Validates (off the async threads, see [`super::parsing`]) and renders `record`, and
    /// decides what needs no write: a volume that
    /// would shrink and a malformed or reserved hostname are refused here.
    async fn new(ops: &Operations<'a>, caller: &Session, record: Arc<Record>, id: &str) -> Result<Self, Error> {
        let owner = record
            .user_created
            .clone()
            .unwrap_or_else(|| caller.identity.id.clone());
        let owner_label = label_value(&owner);
        let limits = ops.limits.for_groups(&caller.identity.groups);
        let deployment = {
            let caches = ops.cluster.map(|c| c.caches.clone());
            let (record, owner_label) = (record.clone(), owner_label.clone());
            // A mount may name one of the owner's existing claims, as upstream allowed.
            let own_claim = move |name: &str| caches.as_ref().is_some_and(|c| c.owned_claim(name, &owner_label));
            super::parsing::parse(move || validate_record_with(&record, &limits, &own_claim)).await?
        }
        .map_err(Error::Validation)?;
        let record = record.as_ref();
        let record_id = record.id.clone().unwrap_or_else(|| RecordId::Text(id.to_owned()));
        let mut objects = render(
            &deployment,
            Owner {
                id: &record_id,
                owner: &owner,
            },
            ops.render,
        );
        if let Some(created) = &record.date_created {
            objects.stamp_record_created(created);
        }
        let cluster = ops.cluster()?;
        let caches = &cluster.caches;
        let base = objects.workload.name().to_owned();
        let incarnation = Incarnation {
            owner_label: record.user_created.as_ref().map(|_| owner_label.as_str()),
            created: record.date_created.as_deref(),
        };
        let leftovers = leftovers::left_by_another_record(caches, &base, incarnation);
        // Claims can grow, not shrink (an earlier record's claims go before this one's come).
        if leftovers.is_none() {
            let current = crate::cluster::resize::current_sizes(caches, &objects);
            llp_spec::resize::check_no_shrink(&deployment.spec, &current).map_err(Error::Validation)?;
        }
        if let Some(hostname) = deployment.hostname() {
            ops.render
                .ingress
                .check_hostname(hostname)
                .map_err(|problem| Error::Validation(vec![problem]))?;
        }
        let per_pod = llp_spec::footprint::PodFootprint::of(objects.workload.pod_template()).gpus;
        let replicas = deployment.spec.replicas;
        let mut usage = crate::quota::of_objects(&objects);
        // Claims it no longer renders stay until it is deleted: it holds them all the same.
        if leftovers.is_none() {
            usage.storage += crate::quota::unrendered_claims(caches, &label_value(&record_id.to_string()), &objects);
        }
        let entry = crate::quota::entry(usage, times(&per_pod, replicas), crate::quota::shared_claims(&objects));
        // An unchanged or smaller deployment holds no more than the caches show: no entry needed.
        let hold = caches.deployed(&base).is_none_or(|d| {
            let held = crate::quota::scaled(caches, &d, &base, d.replicas());
            let held_gpus = times(&d.footprint().gpus, d.replicas());
            !crate::quota::within(usage, held)
                || !llp_spec::admission::gpus_within(&times(&per_pod, replicas), &held_gpus)
        });
        let mounted = objects
            .shared_claims
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        Ok(Self {
            cluster,
            label: label_value(&record_id.to_string()),
            record: record_id.to_string(),
            quota: limits.quota,
            deployment,
            objects,
            owner,
            leftovers,
            usage,
            per_pod,
            mounted,
            hold,
            entry,
        })
    }

    fn ask(&self) -> Ask<'_> {
        Ask {
            demand: Demand {
                deployment: &self.record,
                owner: &self.owner,
                per_pod: self.per_pod.clone(),
                replicas: self.deployment.spec.replicas,
            },
            label: &self.label,
            quota: Some((self.usage, self.quota)),
            mounted: &self.mounted,
            hold: self.hold,
            entry: self.entry.clone(),
        }
    }

    fn base(&self) -> &str {
        self.objects.workload.name()
    }

    fn hostname_taken(&self, hostname: &str) -> Error {
        Error::Conflict {
            field: "exposed_hostname".into(),
            message: format!("exposed_hostname: `{hostname}` is already used by another deployment; pick another one."),
        }
    }
}

/// A hostname another deployment holds is refused before anything is written (the claim
/// itself still decides a race).
async fn refuse_a_taken_hostname(plan: &Plan<'_>) -> Result<(), Error> {
    let Some(hostname) = plan.deployment.hostname() else {
        return Ok(());
    };
    if hostnames::held_by_another(plan.cluster, hostname, &plan.label)
        .await
        .map_err(Error::cluster)?
    {
        return Err(plan.hostname_taken(hostname));
    }
    Ok(())
}

/// Removes what an earlier record with the same id left under this deployment's names (see
/// [`leftovers`]) and waits for it to be gone, so the record starts with fresh volumes.
async fn clear_leftovers(plan: &Plan<'_>) -> Result<(), Error> {
    let cluster = plan.cluster;
    let Some(reason) = &plan.leftovers else {
        return Ok(());
    };
    let base = plan.base();
    tracing::warn!(deployment = %base, %reason, "removing what an earlier record with this id left");
    crate::cluster::removal::delete_objects(cluster, Some(base), &plan.label)
        .await
        .map_err(Error::removal)?;
    cluster
        .caches
        .wait_gone(base, DELETION_WAIT)
        .await
        .map_err(|objects| Error::StillDeleting { objects })
}

/// Claims the hostname through the API server (see [`hostnames`]), so two deploys, even by
/// two replicas of the service, cannot both take it.
async fn claim_hostname(ops: &Operations<'_>, plan: &Plan<'_>) -> Result<Option<Claimed>, Error> {
    let Some(hostname) = plan.deployment.hostname() else {
        return Ok(None);
    };
    let host = format!("{hostname}.{}", ops.render.ingress.domain);
    match hostnames::claim(plan.cluster, hostname, &host, &plan.label, &label_value(&plan.owner)).await {
        Ok(claimed) => Ok(Some(claimed)),
        Err(HostnameError::Taken) => Err(plan.hostname_taken(hostname)),
        Err(HostnameError::Cluster(error)) => Err(Error::cluster(error)),
    }
}

/// A hostname this deploy claimed is free again when the deploy fails: a record that never
/// ran holds no name.
async fn give_back(plan: &Plan<'_>, claimed: Option<Claimed>) {
    let (Some(Claimed::Now), Some(hostname)) = (claimed, plan.deployment.hostname()) else {
        return;
    };
    if let Err(error) = hostnames::give_back(plan.cluster, hostname).await {
        tracing::warn!(%error, %hostname, "could not give back the hostname a failed deploy claimed");
    }
}

/// Applies the objects once the previous deployment's pods are gone (right after a DELETE
/// they terminate and keep their claims: the new pods must get fresh volumes).
async fn apply(plan: &Plan<'_>) -> Result<Applied, Error> {
    let cluster = plan.cluster;
    cluster
        .caches
        .wait_deleted(plan.base(), DELETION_WAIT)
        .await
        .map_err(|objects| Error::StillDeleting { objects })?;
    tokio::time::timeout(CLUSTER_TIMEOUT, apply_objects(cluster, &plan.objects, &plan.label))
        .await
        .map_err(|_| Error::Timeout {
            dependency: "the cluster",
        })?
        .map_err(apply_failed)
}

/// After the apply: the reconciler's stop note goes, a hostname changed or dropped is free
/// again, and the watch caches have the new objects (a status poll right after sees them).
async fn settle(plan: &Plan<'_>, applied: &Applied) -> Result<(), Error> {
    let cluster = plan.cluster;
    let base = plan.base();
    crate::cluster::removal::clear_stopped(cluster, base)
        .await
        .map_err(Error::cluster)?;
    hostnames::release_seen(cluster, &plan.label, plan.deployment.hostname())
        .await
        .map_err(Error::cluster)?;
    if !cluster.caches.observe(base, &applied.uid, applied.generation).await {
        tracing::warn!(%base, "the watch cache has not seen the deploy yet");
    }
    Ok(())
}

/// A deploy stopped at one object: the cluster refusing it as invalid is the user's mistake
/// (e.g. `restartPolicy: Never`, which StatefulSets do not allow); anything else names the
/// object, so the user knows the next deploy has something to finish.
fn apply_failed(error: ApplyError) -> Error {
    tracing::error!(%error, "deploy failed");
    if let ApplyError::Shared(shared) = error {
        return Error::shared(shared);
    }
    match &error {
        ApplyError::Apply {
            source: kube::Error::Api(status),
            ..
        } if status.code == 422 || (status.code == 403 && error.object().starts_with("PersistentVolumeClaim")) => {
            // 403: the storage class does not allow growing claims.
            Error::Invalid {
                field: None,
                message: format!("the cluster refused {}: {}", error.object(), status.message),
            }
        }
        ApplyError::Apply { source, .. } | ApplyError::Prune { source, .. }
            if crate::cluster::calls::timed_out(source) =>
        {
            Error::Timeout {
                dependency: "the cluster",
            }
        }
        _ => Error::PartlyApplied { object: error.object() },
    }
}
