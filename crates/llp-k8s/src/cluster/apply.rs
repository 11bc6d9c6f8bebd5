//! Applying a rendered deployment: the owner's shared claims it mounts (see [`super::shared`]),
//! server-side apply of every object under one field manager, then pruning what the deployment no longer has (a removed container's Service,
//! a removed hostname's Ingress). A StatefulSet whose immutable fields changed (a new volume)
//! is recreated; its claims are retained, so data survives.

use super::Cluster;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use llp_spec::Objects;
use llp_spec::names::DEPLOYMENT_LABEL;

/// The field manager of every write.
pub const MANAGER: &str = "llp-k8s";

/// Which object could not be applied, and why.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Writing one object failed.
    #[error("applying {kind} {name} failed: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    /// A shared volume's claim could not be attached.
    #[error("attaching the shared volume failed: {0}")]
    Shared(#[from] super::shared::SharedError),
    /// Removing an object the deployment no longer has failed.
    #[error("removing {kind} {name} failed: {source}")]
    Prune {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
}

impl ApplyError {
    /// `Service sd-42-web`: the object that failed.
    pub fn object(&self) -> String {
        match self {
            ApplyError::Apply { kind, name, .. } | ApplyError::Prune { kind, name, .. } => format!("{kind} {name}"),
            ApplyError::Shared(
                super::shared::SharedError::Foreign { claim }
                | super::shared::SharedError::Deleting { claim }
                | super::shared::SharedError::Cluster { claim, .. },
            ) => format!("PersistentVolumeClaim {claim}"),
        }
    }
}

/// What an apply did.
pub struct Applied {
    /// The deployment was not there before (201 rather than 200).
    pub created: bool,
    /// The generation of the StatefulSet as applied, for read-after-write waits.
    pub generation: i64,
}

/// Applies `objects` in the cluster's namespace; `deployment_label` selects the deployment's objects.
pub async fn apply_objects(
    cluster: &Cluster,
    objects: &Objects,
    deployment_label: &str,
) -> Result<Applied, ApplyError> {
    let Objects {
        stateful_set,
        services,
        ingress,
        shared_claims,
    } = objects;
    let params = PatchParams::apply(MANAGER).force();
    let sets: Api<StatefulSet> = cluster.api();
    let name = stateful_set.metadata.name.clone().unwrap_or_default();
    let existing = sets.get_opt(&name).await.map_err(|source| ApplyError::Apply {
        kind: "StatefulSet",
        name: name.clone(),
        source,
    })?;
    let created = existing.is_none();
    // Before the pods that mount them.
    super::shared::attach(cluster, shared_claims, deployment_label).await?;
    super::resize::grow_claims(cluster, objects, deployment_label)
        .await
        .map_err(|(name, source)| ApplyError::Apply {
            kind: "PersistentVolumeClaim",
            name,
            source,
        })?;
    let svcs: Api<Service> = cluster.api();
    for service in services {
        let svc_name = service.metadata.name.clone().unwrap_or_default();
        svcs.patch(&svc_name, &params, &Patch::Apply(service))
            .await
            .map_err(|source| ApplyError::Apply {
                kind: "Service",
                name: svc_name,
                source,
            })?;
    }
    let ingresses: Api<Ingress> = cluster.api();
    if let Some(ingress) = ingress {
        let ing_name = ingress.metadata.name.clone().unwrap_or_default();
        ingresses
            .patch(&ing_name, &params, &Patch::Apply(ingress))
            .await
            .map_err(|source| ApplyError::Apply {
                kind: "Ingress",
                name: ing_name,
                source,
            })?;
    }
    let applied = match sets.patch(&name, &params, &Patch::Apply(stateful_set)).await {
        Ok(applied) => applied,
        Err(kube::Error::Api(status)) if immutable_field_changed(&status) => {
            // Immutable fields changed: recreate; claims stay (retention Retain). When only
            // the claims' sizes changed (grown in place above), the pods stay too: orphaned,
            // then adopted by the new StatefulSet, whose template is the same.
            let fail = |source| ApplyError::Apply {
                kind: "StatefulSet",
                name: name.clone(),
                source,
            };
            let templates = |s: &StatefulSet| s.spec.as_ref()?.volume_claim_templates.clone();
            let resized = existing.as_ref().is_some_and(|old| {
                llp_spec::resize::only_sizes_differ(
                    &templates(old).unwrap_or_default(),
                    &templates(stateful_set).unwrap_or_default(),
                )
            });
            let propagation = if resized {
                DeleteParams::orphan()
            } else {
                DeleteParams::foreground()
            };
            sets.delete(&name, &propagation).await.map_err(fail)?;
            // Foreground deletion takes a while on a real cluster: wait until it is gone.
            for _ in 0..240 {
                if sets.get_opt(&name).await.map_err(fail)?.is_none() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            // Created by server-side apply too, so that llp-k8s alone owns its fields: after a
            // plain create the creator would co-own every field, and a container or variable
            // later dropped from the YAML would stay.
            sets.patch(&name, &params, &Patch::Apply(stateful_set))
                .await
                .map_err(fail)?
        }
        Err(source) => {
            return Err(ApplyError::Apply {
                kind: "StatefulSet",
                name,
                source,
            });
        }
    };
    let selector = ListParams::default().labels(&format!("{DEPLOYMENT_LABEL}={deployment_label}"));
    let wanted: Vec<&str> = services.iter().filter_map(|s| s.metadata.name.as_deref()).collect();
    for old in svcs.list(&selector).await.map_err(|source| ApplyError::Prune {
        kind: "Service",
        name: "(list)".into(),
        source,
    })? {
        let old_name = old.metadata.name.unwrap_or_default();
        if !wanted.contains(&old_name.as_str()) {
            svcs.delete(&old_name, &DeleteParams::default())
                .await
                .map_err(|source| ApplyError::Prune {
                    kind: "Service",
                    name: old_name,
                    source,
                })?;
        }
    }
    if ingress.is_none() {
        for old in ingresses.list(&selector).await.map_err(|source| ApplyError::Prune {
            kind: "Ingress",
            name: "(list)".into(),
            source,
        })? {
            let old_name = old.metadata.name.unwrap_or_default();
            ingresses
                .delete(&old_name, &DeleteParams::default())
                .await
                .map_err(|source| ApplyError::Prune {
                    kind: "Ingress",
                    name: old_name,
                    source,
                })?;
        }
    }
    Ok(Applied {
        created,
        generation: applied.metadata.generation.unwrap_or(1),
    })
}

/// Whether the API server refused a StatefulSet update because a field that cannot change did
/// (its volume claim templates, for a new volume): Kubernetes 1.37 names each field ("field is
/// immutable"); older releases answer with one "updates to statefulset spec" cause.
fn immutable_field_changed(status: &kube::core::Status) -> bool {
    let causes = status.details.iter().flat_map(|d| d.causes.iter());
    status.code == 422
        && (status.message.contains("Forbidden: updates to statefulset spec")
            || causes
                .into_iter()
                .any(|c| c.field.starts_with("spec.") && c.message.contains("field is immutable")))
}

/// Whether `host` is the host of an Ingress of another deployment than `deployment_label`.
pub async fn hostname_taken(cluster: &Cluster, host: &str, deployment_label: &str) -> Result<bool, kube::Error> {
    let ingresses: Api<Ingress> = cluster.api();
    let managed = ListParams::default().labels(&format!(
        "{}={}",
        llp_spec::names::MANAGED_BY.0,
        llp_spec::names::MANAGED_BY.1
    ));
    Ok(ingresses.list(&managed).await?.items.iter().any(|ingress| {
        let theirs = ingress
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(DEPLOYMENT_LABEL))
            .map(String::as_str)
            != Some(deployment_label);
        let hosts = ingress
            .spec
            .iter()
            .flat_map(|s| s.rules.iter().flatten())
            .filter_map(|r| r.host.as_deref());
        theirs && hosts.into_iter().any(|h| h == host)
    }))
}
