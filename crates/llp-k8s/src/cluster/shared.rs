//! Shared (`ReadWriteMany`) volumes: one claim per owner and volume name, mounted by every
//! deployment of the owner that declares it. Which deployments declared it is written on the
//! claim itself, one label each (`shared.llp.kitegg.de/<deployment>`), and the claim is deleted
//! with the last of them. Every change is a write conditioned on the claim's resourceVersion,
//! retried on what won when it lost a race, so two replicas of the service need no lock to
//! agree. A larger size grows the claim in place.

use super::Cluster;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use llp_spec::names::{OWNER_LABEL, SHARED_USER_PREFIX, SHARED_VOLUME_LABEL, shared_user_label};
use llp_spec::resize::{grows, requested};
use serde_json::json;

/// Tries of one read-then-write before giving up on a claim that keeps changing.
const ATTEMPTS: usize = 8;

/// Why a shared claim could not be attached or released.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// A claim of that name exists and is not this owner's shared volume.
    #[error("claim {claim} exists and is not this owner's shared volume")]
    Foreign { claim: String },
    /// The claim is being deleted: its last deployment was deleted a moment ago.
    #[error("claim {claim} is still being deleted")]
    Deleting { claim: String },
    /// The cluster failed, or the claim kept changing under every try.
    #[error("claim {claim}: {source}")]
    Cluster { claim: String, source: kube::Error },
}

/// Makes sure each of `wanted` exists and says that the deployment labelled `deployment_label`
/// uses it: created when missing, labelled when it is the owner's already.
pub async fn attach(
    cluster: &Cluster,
    wanted: &[PersistentVolumeClaim],
    deployment_label: &str,
) -> Result<(), SharedError> {
    let api: Api<PersistentVolumeClaim> = cluster.api();
    let user = shared_user_label(deployment_label);
    for claim in wanted {
        attach_one(&api, claim, &user).await?;
    }
    Ok(())
}

async fn attach_one(
    api: &Api<PersistentVolumeClaim>,
    wanted: &PersistentVolumeClaim,
    user: &str,
) -> Result<(), SharedError> {
    let name = wanted.metadata.name.clone().unwrap_or_default();
    let fail = |source| SharedError::Cluster {
        claim: name.clone(),
        source,
    };
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let outcome = match api.get_opt(&name).await.map_err(fail)? {
            None => {
                let mut claim = wanted.clone();
                claim
                    .metadata
                    .labels
                    .get_or_insert_default()
                    .insert(user.to_owned(), "true".into());
                api.create(&PostParams::default(), &claim).await.map(drop)
            }
            Some(existing) => {
                check_ours(&existing, wanted)?;
                // A larger size grows the claim (a smaller one was refused before the deploy).
                let size = requested(wanted).filter(|w| requested(&existing).is_some_and(|now| grows(now, w)));
                if label(&existing, user).is_some() && size.is_none() {
                    return Ok(());
                }
                let mut patch = json!({"metadata": {
                    "resourceVersion": existing.metadata.resource_version,
                    "labels": {user: "true"},
                }});
                if let Some(size) = size {
                    patch["spec"] = json!({"resources": {"requests": {"storage": size}}});
                }
                api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .map(drop)
            }
        };
        match outcome {
            Ok(()) => return Ok(()),
            // Created or changed meanwhile: read it again.
            Err(kube::Error::Api(status)) if status.code == 409 => last = Some(kube::Error::Api(status)),
            Err(source) => return Err(fail(source)),
        }
    }
    Err(fail(last.expect("a conflict was seen")))
}

/// A claim of the shared name must be this owner's shared volume of that name, alive.
fn check_ours(existing: &PersistentVolumeClaim, wanted: &PersistentVolumeClaim) -> Result<(), SharedError> {
    let claim = existing.metadata.name.clone().unwrap_or_default();
    let same = |key: &str| label(existing, key).is_some() && label(existing, key) == label(wanted, key);
    if !same(OWNER_LABEL) || !same(SHARED_VOLUME_LABEL) {
        return Err(SharedError::Foreign { claim });
    }
    if existing.metadata.deletion_timestamp.is_some() {
        return Err(SharedError::Deleting { claim });
    }
    Ok(())
}

/// Takes the deployment labelled `deployment_label` off every shared claim it uses, deleting
/// the claims no other deployment uses; returns their names. A claim still mounted by a
/// terminating pod stays (Terminating) until that pod is gone.
pub async fn release(cluster: &Cluster, deployment_label: &str) -> Result<Vec<String>, SharedError> {
    let api: Api<PersistentVolumeClaim> = cluster.api();
    let user = shared_user_label(deployment_label);
    let used = api
        .list(&ListParams::default().labels(&user))
        .await
        .map_err(|source| SharedError::Cluster {
            claim: "(list)".into(),
            source,
        })?;
    let mut deleted = Vec::new();
    for claim in used {
        let name = claim.metadata.name.clone().unwrap_or_default();
        if release_one(&api, claim, &user).await? {
            deleted.push(name);
        }
    }
    Ok(deleted)
}

/// Whether the claim was deleted (its last user gone).
async fn release_one(
    api: &Api<PersistentVolumeClaim>,
    mut claim: PersistentVolumeClaim,
    user: &str,
) -> Result<bool, SharedError> {
    let name = claim.metadata.name.clone().unwrap_or_default();
    let fail = |source| SharedError::Cluster {
        claim: name.clone(),
        source,
    };
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let others = claim
            .metadata
            .labels
            .iter()
            .flatten()
            .any(|(key, _)| key.starts_with(SHARED_USER_PREFIX) && key != user);
        let version = claim.metadata.resource_version.clone();
        let outcome = if others {
            let patch = json!({"metadata": {"resourceVersion": version, "labels": {user: null}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map(drop)
        } else {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: version,
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            api.delete(&name, &params).await.map(drop)
        };
        match outcome {
            Ok(()) => return Ok(!others),
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // Another deployment attached meanwhile: decide again on what it wrote.
                last = Some(kube::Error::Api(status));
                match api.get_opt(&name).await.map_err(fail)? {
                    Some(fresh) => claim = fresh,
                    None => return Ok(false),
                }
            }
            Err(source) => return Err(fail(source)),
        }
    }
    Err(fail(last.expect("a conflict was seen")))
}

fn label<'a>(claim: &'a PersistentVolumeClaim, key: &str) -> Option<&'a String> {
    claim.metadata.labels.as_ref()?.get(key)
}
