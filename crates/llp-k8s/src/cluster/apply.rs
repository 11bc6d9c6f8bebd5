//! Applying a rendered deployment: the owner's shared claims it mounts (see [`super::shared`]),
//! server-side apply of every object under one field manager, then pruning what the deployment no longer has (a removed container's Service,
//! a removed hostname's Ingress). A StatefulSet whose immutable fields changed (a new volume)
//! is recreated; its claims are retained, so data survives.

use super::Cluster;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use llp_spec::names::DEPLOYMENT_LABEL;
use llp_spec::{Objects, Workload};

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
    /// The uid and generation of the StatefulSet or Job as applied, for read-after-write waits.
    pub uid: String,
    /// See `uid`.
    pub generation: i64,
}

/// Applies `objects` in the cluster's namespace; `deployment_label` selects the deployment's objects.
pub async fn apply_objects(
    cluster: &Cluster,
    objects: &Objects,
    deployment_label: &str,
) -> Result<Applied, ApplyError> {
    let Objects {
        workload,
        claims,
        services,
        ingress,
        shared_claims,
        network_policy,
    } = objects;
    let params = PatchParams::apply(MANAGER).force();
    let sets: Api<StatefulSet> = cluster.api();
    let jobs: Api<Job> = cluster.api();
    let name = workload.name().to_owned();
    let failed = |kind: &'static str| {
        let name = name.clone();
        move |source| ApplyError::Apply { kind, name, source }
    };
    // What is there, from the watch caches (a deploy reads nothing from the API server).
    let existing_set = cluster.caches.stateful_set(&name).is_some();
    let existing_job = cluster.caches.job(&name);
    let created = !existing_set && existing_job.is_none();
    // Before the pods that mount them.
    super::shared::attach(cluster, shared_claims, deployment_label).await?;
    ensure_claims(cluster, claims).await?;
    super::resize::grow_claims(cluster, objects, deployment_label)
        .await
        .map_err(|(name, source)| ApplyError::Apply {
            kind: "PersistentVolumeClaim",
            name,
            source,
        })?;
    // The Services, the Ingress and the NetworkPolicy at once (none depends on another); all
    // before the pods, so that none runs unprotected.
    let svcs: Api<Service> = cluster.api();
    let ingresses: Api<Ingress> = cluster.api();
    let policies: Api<NetworkPolicy> = cluster.api();
    let services_applied = futures::future::try_join_all(services.iter().map(|service| {
        let svc_name = service.metadata.name.clone().unwrap_or_default();
        let (svcs, params) = (&svcs, &params);
        async move {
            svcs.patch(&svc_name, params, &Patch::Apply(service))
                .await
                .map_err(|source| ApplyError::Apply {
                    kind: "Service",
                    name: svc_name,
                    source,
                })
        }
    }));
    let ingress_applied = async {
        let Some(ingress) = ingress else {
            return Ok(());
        };
        let ing_name = ingress.metadata.name.clone().unwrap_or_default();
        ingresses
            .patch(&ing_name, &params, &Patch::Apply(ingress))
            .await
            .map(drop)
            .map_err(|source| ApplyError::Apply {
                kind: "Ingress",
                name: ing_name,
                source,
            })
    };
    // Gone when switched off.
    let policy_applied = async {
        match network_policy {
            Some(policy) => {
                let policy_name = policy.metadata.name.clone().unwrap_or_default();
                policies
                    .patch(&policy_name, &params, &Patch::Apply(policy))
                    .await
                    .map(drop)
                    .map_err(|source| ApplyError::Apply {
                        kind: "NetworkPolicy",
                        name: policy_name,
                        source,
                    })
            }
            None => {
                let selector = ListParams::default().labels(&format!("{DEPLOYMENT_LABEL}={deployment_label}"));
                policies
                    .delete_collection(&DeleteParams::default(), &selector)
                    .await
                    .map(drop)
                    .map_err(|source| ApplyError::Prune {
                        kind: "NetworkPolicy",
                        name: "(all)".into(),
                        source,
                    })
            }
        }
    };
    tokio::try_join!(services_applied, ingress_applied, policy_applied)?;
    // A changed `restartPolicy` switches kinds: the new one first, then the other goes with
    // its pods, so a switch the cluster refuses leaves the deployment as it was.
    let meta = match workload {
        Workload::StatefulSet(sts) => {
            let applied = apply_stateful_set(&sets, sts).await.map_err(failed("StatefulSet"))?;
            if existing_job.is_some() {
                delete_and_wait(&jobs, &name, DeleteParams::foreground())
                    .await
                    .map_err(failed("Job"))?;
            }
            applied.metadata
        }
        Workload::Job(job) => {
            let applied = apply_job(&jobs, job, existing_job.as_deref())
                .await
                .map_err(failed("Job"))?;
            if existing_set {
                delete_and_wait(&sets, &name, DeleteParams::foreground())
                    .await
                    .map_err(failed("StatefulSet"))?;
            }
            applied.metadata
        }
    };
    // Pruned as the watch caches list them: an object made a moment ago by a concurrent deploy
    // of the same record is pruned by the next deploy.
    let wanted: Vec<&str> = services.iter().filter_map(|s| s.metadata.name.as_deref()).collect();
    for old_name in super::cache::Caches::labelled(&cluster.caches.services, deployment_label) {
        if !wanted.contains(&old_name.as_str()) {
            delete_if_there(&svcs, &old_name)
                .await
                .map_err(|source| ApplyError::Prune {
                    kind: "Service",
                    name: old_name,
                    source,
                })?;
        }
    }
    if ingress.is_none() {
        for old_name in super::cache::Caches::labelled(&cluster.caches.ingresses, deployment_label) {
            delete_if_there(&ingresses, &old_name)
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
        uid: meta.uid.unwrap_or_default(),
        generation: meta.generation.unwrap_or(1),
    })
}

/// What the API server would make of `objects` (its dry run of every server-side apply,
/// nothing stored): each object as it would be. A workload whose immutable fields changed
/// would be recreated; it is given as rendered.
pub async fn dry_run(cluster: &Cluster, objects: &Objects) -> Result<Vec<serde_json::Value>, ApplyError> {
    let params = PatchParams::apply(MANAGER).force().dry_run();
    let mut answers = Vec::new();
    async fn one<K>(api: Api<K>, object: &K, params: &PatchParams) -> Result<serde_json::Value, ApplyError>
    where
        K: k8s_openapi::Resource
            + kube::Resource<DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        match api.patch(&name, params, &Patch::Apply(object)).await {
            Ok(applied) => Ok(serde_json::to_value(applied).unwrap_or_default()),
            Err(kube::Error::Api(status)) if immutable_field_changed(&status) => {
                Ok(serde_json::to_value(object).unwrap_or_default())
            }
            Err(source) => Err(ApplyError::Apply {
                kind: K::KIND,
                name,
                source,
            }),
        }
    }
    for claim in objects.shared_claims.iter().chain(&objects.claims) {
        answers.push(one(cluster.api::<PersistentVolumeClaim>(), claim, &params).await?);
    }
    if let Some(policy) = &objects.network_policy {
        answers.push(one(cluster.api::<NetworkPolicy>(), policy, &params).await?);
    }
    for service in &objects.services {
        answers.push(one(cluster.api::<Service>(), service, &params).await?);
    }
    if let Some(ingress) = &objects.ingress {
        answers.push(one(cluster.api::<Ingress>(), ingress, &params).await?);
    }
    answers.push(match &objects.workload {
        Workload::StatefulSet(sts) => one(cluster.api::<StatefulSet>(), sts, &params).await?,
        Workload::Job(job) => one(cluster.api::<Job>(), job, &params).await?,
    });
    Ok(answers)
}

/// Deletes `name`; already gone is fine.
async fn delete_if_there<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    match api.delete(name, &DeleteParams::default()).await {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other.map(drop),
    }
}

/// Server-side applies the StatefulSet. One whose immutable fields changed is recreated;
/// claims stay (retention Retain). When only the claims' sizes changed (grown in place
/// before), the pods stay too: orphaned, then adopted by the new StatefulSet, whose template
/// is the same.
async fn apply_stateful_set(sets: &Api<StatefulSet>, sts: &StatefulSet) -> Result<StatefulSet, kube::Error> {
    let name = sts.metadata.name.clone().unwrap_or_default();
    let params = PatchParams::apply(MANAGER).force();
    match sets.patch(&name, &params, &Patch::Apply(sts)).await {
        Err(kube::Error::Api(status)) if immutable_field_changed(&status) => {
            // Rare (a volume added or grown): the old templates are read for it alone.
            let existing = sets.get_opt(&name).await?;
            let templates = |s: &StatefulSet| s.spec.as_ref()?.volume_claim_templates.clone();
            let resized = existing.is_some_and(|old| {
                llp_spec::resize::only_sizes_differ(
                    &templates(&old).unwrap_or_default(),
                    &templates(sts).unwrap_or_default(),
                )
            });
            let propagation = if resized {
                DeleteParams::orphan()
            } else {
                DeleteParams::foreground()
            };
            delete_and_wait(sets, &name, propagation).await?;
            // Created by server-side apply too, so that llp-k8s alone owns its fields: after a
            // plain create the creator would co-own every field, and a container or variable
            // later dropped from the YAML would stay.
            sets.patch(&name, &params, &Patch::Apply(sts)).await
        }
        other => other,
    }
}

/// Server-side applies the Job. A finished one runs again: it is deleted with its pods and
/// created anew; so is one whose pod template changed (a Job's template is immutable).
async fn apply_job(jobs: &Api<Job>, job: &Job, existing: Option<&Job>) -> Result<Job, kube::Error> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let params = PatchParams::apply(MANAGER).force();
    if existing.is_some_and(|j| super::workload::job_finished(j).is_some()) {
        delete_and_wait(jobs, &name, DeleteParams::foreground()).await?;
    }
    match jobs.patch(&name, &params, &Patch::Apply(job)).await {
        Err(kube::Error::Api(status)) if immutable_field_changed(&status) => {
            delete_and_wait(jobs, &name, DeleteParams::foreground()).await?;
            jobs.patch(&name, &params, &Patch::Apply(job)).await
        }
        other => other,
    }
}

/// Deletes `name` and waits (up to a minute) until it is gone: a foreground deletion takes
/// its pods first, which takes their grace period on a real cluster.
pub async fn delete_and_wait<K>(api: &Api<K>, name: &str, propagation: DeleteParams) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    match api.delete(name, &propagation).await {
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        other => drop(other?),
    }
    for _ in 0..240 {
        if api.get_opt(name).await?.is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    Ok(())
}

/// Creates a run to completion's claims that are missing; a larger size grows one that exists.
async fn ensure_claims(cluster: &Cluster, claims: &[PersistentVolumeClaim]) -> Result<(), ApplyError> {
    let api: Api<PersistentVolumeClaim> = cluster.api();
    for claim in claims {
        let name = claim.metadata.name.clone().unwrap_or_default();
        let fail = |source| ApplyError::Apply {
            kind: "PersistentVolumeClaim",
            name: name.clone(),
            source,
        };
        match cluster.caches.claim(&name) {
            None => match api.create(&PostParams::default(), claim).await {
                // Made a moment ago (the cache had not seen it): as good as made now.
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                other => drop(other.map_err(fail)?),
            },
            Some(existing) => {
                let wanted = llp_spec::resize::requested(claim).unwrap_or_default();
                let grows = llp_spec::resize::requested(existing.as_ref())
                    .is_some_and(|now| llp_spec::resize::grows(now, wanted));
                if grows {
                    let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": wanted}}}});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                        .await
                        .map_err(fail)?;
                }
            }
        }
    }
    Ok(())
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
