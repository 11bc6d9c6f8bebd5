//! Taking a deployment's objects away, and the writes that bring a stopped one back: what
//! DELETE, the orphan reconciler and a deploy over another record's leftovers share.

use super::Cluster;
use super::shared::SharedError;
use super::workload::Deployed;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use llp_spec::names::{DEPLOYMENT_LABEL, STOPPED_ANNOTATION};

/// Why a removal stopped partway (what was removed before stays removed; running it again
/// finishes it).
#[derive(Debug, thiserror::Error)]
pub enum RemovalError {
    /// A cluster call failed.
    #[error(transparent)]
    Cluster(#[from] kube::Error),
    /// Giving up the deployment's part in a shared volume failed.
    #[error(transparent)]
    Shared(#[from] SharedError),
}

/// Deletes every object of the deployment whose base name is `base` and `deployment` label
/// `label`: its StatefulSet or Job (and so its pods), Services, Ingress, NetworkPolicy, claims,
/// hostname claims, Secret and ConfigMap, and its part in the owner's shared volumes. What is
/// already gone is no error.
pub async fn delete_objects(cluster: &Cluster, base: Option<&str>, label: &str) -> Result<(), RemovalError> {
    let selector = ListParams::default().labels(&format!("{DEPLOYMENT_LABEL}={label}"));
    if let Some(base) = base {
        // A Job's pods go with it (background propagation).
        gone(
            cluster
                .api::<StatefulSet>()
                .delete(base, &DeleteParams::background())
                .await,
        )?;
        gone(cluster.api::<Job>().delete(base, &DeleteParams::background()).await)?;
    }
    delete_labelled(cluster.api::<Service>(), &selector).await?;
    delete_labelled(cluster.api::<Ingress>(), &selector).await?;
    delete_labelled(cluster.api::<NetworkPolicy>(), &selector).await?;
    delete_labelled(cluster.api::<PersistentVolumeClaim>(), &selector).await?;
    super::hostnames::release(cluster, label, None).await?;
    // Shared volumes go with the last deployment of the owner that declared them.
    super::shared::release(cluster, label).await?;
    if let Some(base) = base {
        gone(cluster.api::<Secret>().delete(base, &DeleteParams::default()).await)?;
        gone(cluster.api::<ConfigMap>().delete(base, &DeleteParams::default()).await)?;
    }
    Ok(())
}

/// A deletion's answer, with "already gone" as success.
fn gone<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

async fn delete_labelled<K>(api: Api<K>, selector: &ListParams) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    api.delete_collection(&DeleteParams::background(), selector)
        .await
        .map(drop)
}

/// Runs a Job again: the same Job (name, labels, spec as applied) is deleted with its pods and
/// created anew, by server-side apply under the deploy's field manager, so a later deploy
/// owns its fields as before.
pub async fn rerun(cluster: &Cluster, name: &str) -> Result<(), kube::Error> {
    let jobs: Api<Job> = cluster.api();
    let old = jobs.get(name).await?;
    let fresh = llp_spec::render::fresh_job(&old);
    super::apply::delete_and_wait(&jobs, name, DeleteParams::foreground()).await?;
    let params = PatchParams::apply(super::apply::MANAGER).force();
    jobs.patch(name, &params, &Patch::Apply(&fresh)).await.map(drop)
}

/// Removes the note that the reservation reconciler stopped the deployment, once it runs
/// again (deployed, or scaled up), and lets a stopped Job run again. Costs nothing when there
/// is none.
pub async fn clear_stopped(cluster: &Cluster, name: &str) -> Result<(), kube::Error> {
    let Some(deployed) = cluster.caches.deployed(name) else {
        return Ok(());
    };
    if deployed.annotation(STOPPED_ANNOTATION).is_none() {
        return Ok(());
    }
    let params = PatchParams {
        field_manager: Some("llp-k8s-reservations".into()),
        ..Default::default()
    };
    let annotation = serde_json::json!({"metadata": {"annotations": {STOPPED_ANNOTATION: null}}});
    match deployed {
        Deployed::StatefulSet(_) => cluster
            .api::<StatefulSet>()
            .patch(name, &params, &Patch::Merge(annotation))
            .await
            .map(drop),
        Deployed::Job(_) => {
            let mut patch = annotation;
            patch["spec"] = serde_json::json!({"suspend": false});
            cluster
                .api::<Job>()
                .patch(name, &params, &Patch::Merge(patch))
                .await
                .map(drop)
        }
    }
}
