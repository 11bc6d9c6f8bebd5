//! The orphan reconciler: one instance, elected through a Lease, looks every `check_seconds`
//! and removes the deployments whose record has been missing for the grace period, as DELETE
//! would (workload, pods, claims, Services, Ingress, NetworkPolicy, Secret, ConfigMap,
//! hostname, its part of shared volumes).

use super::{Found, Orphan, OrphanPolicy, Survey, collect};
use crate::cluster::Cluster;
use crate::cluster::lease::LeaseLock;
use crate::records::{RecordError, RecordSource, Token};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{ListParams, ObjectMeta};
use llp_spec::names::MANAGED_BY;
use std::sync::Arc;
use std::time::Duration;

/// The name of the Lease that elects the reconciler, in the managed namespace.
pub const LEASE_NAME: &str = "llp-k8s-orphans";

/// Why a look or a removal failed.
#[derive(Debug, thiserror::Error)]
pub enum OrphanError {
    /// The record ids could not be read: nothing is judged.
    #[error("cannot list the deployment records: {0}")]
    Records(#[from] RecordError),
    /// A cluster call failed.
    #[error("the cluster failed while {doing}: {source}")]
    Cluster { doing: &'static str, source: kube::Error },
    /// The cluster did not answer in time.
    #[error("the cluster did not answer in time while {0}")]
    Timeout(&'static str),
    /// Removing an orphan failed.
    #[error("cannot remove deployment {deployment}: {problem}")]
    Removal { deployment: String, problem: String },
}

/// Every deployment in the cluster: StatefulSets, Jobs and claims from the watch caches, the
/// kinds the service does not watch from metadata-only lists (a Secret's data never travels).
pub async fn inventory(cluster: &Cluster) -> Result<Found, OrphanError> {
    inventory_in_pages(cluster, crate::cluster::pages::PAGE).await
}

/// [`inventory`] with lists of `page` items a page (tests make pages small).
#[doc(hidden)]
pub async fn inventory_in_pages(cluster: &Cluster, page: u32) -> Result<Found, OrphanError> {
    let managed = ListParams::default()
        .labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1))
        .limit(page);
    let listed = [
        list_metadata::<Service>(cluster, &managed).await?,
        list_metadata::<Ingress>(cluster, &managed).await?,
        list_metadata::<NetworkPolicy>(cluster, &managed).await?,
        list_metadata::<Secret>(cluster, &managed).await?,
        list_metadata::<ConfigMap>(cluster, &managed).await?,
    ]
    .concat();
    let caches = &cluster.caches;
    let (sets, jobs, claims) = (caches.stateful_sets.state(), caches.jobs.state(), caches.claims.state());
    let cached = sets
        .iter()
        .map(|s| ("StatefulSet", &s.metadata))
        .chain(jobs.iter().map(|j| ("Job", &j.metadata)))
        .chain(claims.iter().map(|c| ("PersistentVolumeClaim", &c.metadata)));
    Ok(collect(cached.chain(listed.iter().map(|(kind, meta)| (*kind, meta)))))
}

/// The kind, name and labels of every `K` that `params` selects (all that [`collect`]
/// reads), read a page of `params.limit` at a time.
async fn list_metadata<K>(
    cluster: &Cluster,
    params: &ListParams,
) -> Result<Vec<(&'static str, ObjectMeta)>, OrphanError>
where
    K: k8s_openapi::Resource
        + kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let api = cluster.api::<K>();
    let mut asking = Some(crate::cluster::pages::first(params));
    let mut kept = Vec::new();
    while let Some(params) = asking {
        let page = api
            .list_metadata(&params)
            .await
            .map_err(|source| OrphanError::Cluster {
                doing: "listing the deployments' objects",
                source,
            })?;
        asking = crate::cluster::pages::next(&params, &page.metadata);
        kept.extend(page.items.into_iter().map(|o| {
            let meta = ObjectMeta {
                name: o.metadata.name,
                labels: o.metadata.labels,
                ..ObjectMeta::default()
            };
            (<K as k8s_openapi::Resource>::KIND, meta)
        }));
    }
    Ok(kept)
}

/// Looks once: the cluster first, then the records, so a record made in between is never
/// missing (its objects are not in the inventory yet). `fallback` reads the records when the
/// source has no token of its own (an admin's listing); `remember` starts grace periods.
pub async fn survey(
    records: &dyn RecordSource,
    cluster: &Cluster,
    policy: &OrphanPolicy,
    fallback: Option<&Token>,
    remember: bool,
) -> Result<Survey, OrphanError> {
    let found = inventory(cluster).await?;
    let ids = records.record_ids(fallback).await?;
    Ok(policy.judge(&found, &ids, Timestamp::now(), remember))
}

/// Removes an orphan as DELETE removes a deployment.
pub async fn remove(cluster: &Cluster, orphan: &Orphan) -> Result<(), OrphanError> {
    crate::cluster::removal::delete_objects(cluster, orphan.remains.base.as_deref(), &orphan.deployment)
        .await
        .map_err(|error| OrphanError::Removal {
            deployment: orphan.deployment.clone(),
            problem: error.to_string(),
        })
}

/// The reconciler of one service instance.
pub struct OrphanReconciler {
    records: Arc<dyn RecordSource>,
    cluster: Cluster,
    policy: Arc<OrphanPolicy>,
    lease: LeaseLock,
}

/// What one round did.
#[derive(Debug, Default)]
pub struct Round {
    /// What the look found.
    pub survey: Survey,
    /// Deployment labels removed.
    pub removed: Vec<String>,
}

impl OrphanReconciler {
    /// A reconciler that elects itself as `holder` (unique per instance).
    pub fn new(records: Arc<dyn RecordSource>, cluster: Cluster, policy: Arc<OrphanPolicy>, holder: &str) -> Self {
        let lease = LeaseLock::new(cluster.api(), LEASE_NAME, holder, every(&policy) * 3);
        Self {
            records,
            cluster,
            policy,
            lease,
        }
    }

    /// Looks every `check_seconds` while this instance holds the lease, until `shutdown` turns
    /// true; then gives the lease up.
    pub async fn run(self, shutdown: tokio::sync::watch::Receiver<bool>) {
        crate::cluster::lease::run_rounds(
            "orphan reconciler",
            &self.lease,
            every(&self.policy),
            shutdown,
            || async {
                match self.round().await {
                    Ok(Some(round)) => round.survey.held,
                    Ok(None) => None,
                    Err(error) => Some(error.to_string()),
                }
            },
        )
        .await;
    }

    /// One round: takes or renews the lease, and when this instance holds it, looks and
    /// removes what is due (unless `dry_run`); `None` when another instance holds it.
    pub async fn round(&self) -> Result<Option<Round>, OrphanError> {
        let held = tokio::time::timeout(Duration::from_secs(10), self.lease.try_hold(Timestamp::now()))
            .await
            .map_err(|_| OrphanError::Timeout("renewing the lease"))?
            .map_err(|source| OrphanError::Cluster {
                doing: "renewing the lease",
                source,
            })?;
        if !held {
            return Ok(None);
        }
        let survey = survey(self.records.as_ref(), &self.cluster, &self.policy, None, true).await?;
        let mut removed = Vec::new();
        for orphan in survey.orphans.iter().filter(|o| o.due) {
            if self.policy.settings.dry_run {
                tracing::info!(deployment = %orphan.deployment, objects = ?orphan.remains.objects, "dry run: would remove a deployment whose record is gone");
                continue;
            }
            remove(&self.cluster, orphan).await?;
            tracing::info!(deployment = %orphan.deployment, objects = ?orphan.remains.objects, missing_since = %orphan.missing_since, "removed a deployment whose record is gone");
            removed.push(orphan.deployment.clone());
        }
        Ok(Some(Round { survey, removed }))
    }
}

fn every(policy: &OrphanPolicy) -> Duration {
    Duration::from_secs(policy.settings.check_seconds.max(1))
}

/// Starts the reconciler unless the settings switch it off. With the `directus` source and no
/// service token its rounds fail, naming the setting, and remove nothing.
pub fn spawn(
    records: Arc<dyn RecordSource>,
    cluster: Option<&Cluster>,
    policy: &Arc<OrphanPolicy>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let cluster = cluster?.clone();
    if !policy.settings.enabled {
        return None;
    }
    let reconciler = OrphanReconciler::new(
        records,
        cluster,
        policy.clone(),
        &crate::cluster::lease::instance_name(),
    );
    Some(tokio::spawn(reconciler.run(shutdown)))
}
