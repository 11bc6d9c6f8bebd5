//! `/kubernetes/deployments/{id}`: deploy (PUT) and status (GET). The pipeline is
//! fetch record → validate → render → apply → report; only fetching and applying do I/O,
//! and status reads the watch caches alone.

use super::AppState;
use super::admission::{self, Ask};
use super::auth::Caller;
use super::error::ApiError;
use super::openapi::{CommonErrors, DeploymentId};
use super::status_memo::Inputs;
use crate::cluster::Cluster;
use crate::cluster::apply::{ApplyError, apply_objects};
use crate::cluster::hostnames::{self, HostnameError};
use crate::cluster::leftovers::{self, Incarnation};
use crate::cluster::workload::Deployed;
use crate::records::{Purpose, Session};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use llp_spec::names::{Names, STOPPED_ANNOTATION, label_value};
use llp_spec::reservations::{Demand, times};
use llp_spec::status::DeploymentStatus;
use llp_spec::{ErrorBody, Identity as Owner, Record, RecordId, render, validate_record_with};
use utoipa_axum::{router::OpenApiRouter, routes};

/// How long a deploy may wait for the cluster before answering 504.
const CLUSTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a deploy waits for the previous deployment's pods and claims to finish
/// terminating before it answers 409 (a real pod's grace period is 30 s by default).
const DELETION_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status, deploy))
}

fn cluster(state: &AppState) -> Result<&Cluster, ApiError> {
    state.cluster.as_ref().ok_or(ApiError::Unavailable {
        dependency: "the cluster",
    })
}

/// A record the caller may act on, and where its objects are.
pub struct Resolved<'a> {
    /// The record.
    pub record: std::sync::Arc<Record>,
    /// Its object names.
    pub names: Names,
    /// Its `llp.kitegg.de/deployment` label value.
    pub label: String,
    /// The cluster.
    pub cluster: &'a Cluster,
}

/// A change to a deployed deployment that admission decides on.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// To this many pods.
    Scale(u32),
    /// A run to completion started again with this many pods (its old ones go first).
    Rerun(u32),
    /// Its pods as they are (a rolling restart, a pod deleted and made again).
    Keep,
}

/// Finds the record `id` for `caller` (404 when unknown or someone else's) and its names.
pub async fn resolve<'a>(
    state: &'a AppState,
    caller: &Session,
    id: &str,
    purpose: Purpose,
) -> Result<Resolved<'a>, ApiError> {
    let record = state.records.record(caller, id, purpose).await?;
    let cluster = cluster(state)?;
    let record_id = record.id.clone().unwrap_or_else(|| RecordId::Text(id.to_owned()));
    let names = Names::new(&state.render.name_prefix, &record_id);
    Ok(Resolved {
        label: label_value(&record_id.to_string()),
        record,
        names,
        cluster,
    })
}

impl Resolved<'_> {
    /// The deployment, if it is deployed (404 saying so otherwise).
    pub fn deployed(self) -> Result<Self, ApiError> {
        if self.cluster.caches.deployed(self.names.base()).is_none() {
            return Err(ApiError::NotFound(
                "this deployment is not deployed yet: deploy it with PUT first".into(),
            ));
        }
        Ok(self)
    }

    /// The user the deployment belongs to (the caller's own when the record names none).
    pub fn owner<'b>(&'b self, caller: &'b Session) -> &'b str {
        self.record.user_created.as_deref().unwrap_or(&caller.identity.id)
    }

    /// Admits `change` of the deployed StatefulSet or Job, one step per owner through the
    /// admission ledger (see [`crate::admission`]): the GPU reservations active now must cover
    /// its GPUs, and, when it grows, the group's quota what it would hold. What scale-up,
    /// restart and pod delete do before they start pods.
    pub async fn admit(&self, state: &AppState, caller: &Session, change: Change) -> Result<(), ApiError> {
        let caches = &self.cluster.caches;
        let base = self.names.base();
        let Some(deployed) = caches.deployed(base) else {
            return Ok(());
        };
        let (replicas, rerun) = match change {
            Change::Scale(n) => (n, false),
            Change::Rerun(n) => (n, true),
            Change::Keep => (deployed.replicas(), false),
        };
        let grows = replicas > deployed.replicas();
        let id = self.record.id.as_ref().map(ToString::to_string).unwrap_or_default();
        let owner = self.owner(caller);
        let per_pod = deployed.footprint().gpus.clone();
        let this = crate::quota::scaled(caches, &deployed, base, replicas);
        let mounted = deployed.footprint().claims.clone();
        let quota = state.limits.for_groups(&caller.identity.groups).quota;
        let entry = crate::quota::entry(
            this,
            times(&per_pod, replicas),
            crate::quota::mounted_shared(caches, &deployed, base),
        );
        let ask = Ask {
            demand: Demand {
                deployment: &id,
                owner,
                per_pod,
                replicas,
            },
            label: &self.label,
            quota: grows.then_some((this, quota)),
            mounted: &mounted,
            // A rerun's pods are gone from the caches before the new ones are there.
            hold: grows || rerun,
            entry,
        };
        admission::admit(state, self.cluster, caller, &ask).await
    }

    /// Checks that `pod` is one of this deployment's pods (404 otherwise, whoever owns it).
    pub fn own_pod(&self, pod: &str) -> Result<(), ApiError> {
        let (pods, _) = self.cluster.caches.members(self.names.base());
        if pods.iter().any(|p| p.metadata.name.as_deref() == Some(pod)) {
            Ok(())
        } else {
            Err(ApiError::NotFound(format!("this deployment has no pod `{pod}`")))
        }
    }
}

/// Deploy the record: validate its YAML and `exposed_*`, then create or update its objects.
#[utoipa::path(
    put,
    path = "/kubernetes/deployments/{id}",
    tag = "deployments",
    params(DeploymentId),
    responses(
        (status = 201, description = "First deploy: the normalised spec, defaults filled in", body = ref("#/components/schemas/DeploymentSpec")),
        (status = 200, description = "Updated: the normalised spec, defaults filled in", body = ref("#/components/schemas/DeploymentSpec")),
        (status = 400, description = "Invalid YAML or `exposed_*`: every problem, each with its `field` (`VALIDATION_FAILED`)", body = ErrorBody),
        (status = 400, description = "GPUs not covered by reservations active now (`NOT_ENOUGH_RESOURCES`, `reason` `api_errors.not_enough_resources`): the shortfall per profile", body = ErrorBody),
        (status = 409, description = "`exposed_hostname` is used by another deployment (`CONFLICT`)", body = ErrorBody),
        CommonErrors
    )
)]
async fn deploy(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // One deploy of a record at a time; the record is read under the lock, so the last
    // deploy applies the latest record and no mix of two is left behind.
    let lock = state.locks.deployment(&id);
    let _deploying = lock.lock().await;
    let step = std::time::Instant::now();
    let record = state.records.record(&caller, &id, Purpose::Act).await?;
    let owner = record
        .user_created
        .clone()
        .unwrap_or_else(|| caller.identity.id.clone());
    // A mount may name one of the owner's existing claims, as upstream allowed.
    let owner_label = label_value(&owner);
    let own_claim = |name: &str| {
        state
            .cluster
            .as_ref()
            .is_some_and(|c| c.caches.owned_claim(name, &owner_label))
    };
    let limits = state.limits.for_groups(&caller.identity.groups);
    let deployment = validate_record_with(&record, &limits, &own_claim).map_err(ApiError::Validation)?;
    let record_id = record.id.clone().unwrap_or(RecordId::Text(id));
    let mut objects = render(
        &deployment,
        Owner {
            id: &record_id,
            owner: &owner,
        },
        &state.render,
    );
    if let Some(created) = &record.date_created {
        objects.stamp_record_created(created);
    }
    let cluster = cluster(&state)?;
    let label = label_value(&record_id.to_string());
    let incarnation = Incarnation {
        owner_label: record.user_created.as_ref().map(|_| owner_label.as_str()),
        created: record.date_created.as_deref(),
    };
    remove_leftovers(cluster, objects.workload.name(), &label, incarnation).await?;
    // Claims can grow, not shrink: refused before anything is written.
    let current = crate::cluster::resize::current_sizes(&cluster.caches, &objects);
    llp_spec::resize::check_no_shrink(&deployment.spec, &current).map_err(ApiError::Validation)?;
    // The group's quota and the GPU bookings, one step per owner (see crate::admission).
    let per_pod = llp_spec::footprint::PodFootprint::of(objects.workload.pod_template()).gpus;
    let replicas = deployment.spec.replicas;
    let mounted: Vec<String> = objects
        .shared_claims
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    let this = crate::quota::of_objects(&objects);
    let entry = crate::quota::entry(this, times(&per_pod, replicas), crate::quota::shared_claims(&objects));
    let record_label = record_id.to_string();
    // An unchanged or smaller deployment holds no more than the caches show: no entry needed.
    let hold = cluster.caches.deployed(objects.workload.name()).is_none_or(|d| {
        let base = objects.workload.name();
        let held = crate::quota::scaled(&cluster.caches, &d, base, d.replicas());
        let held_gpus = times(&d.footprint().gpus, d.replicas());
        !crate::quota::within(this, held) || !llp_spec::admission::gpus_within(&times(&per_pod, replicas), &held_gpus)
    });
    let ask = Ask {
        demand: Demand {
            deployment: &record_label,
            owner: &owner,
            per_pod,
            replicas,
        },
        label: &label,
        quota: Some((this, limits.quota)),
        mounted: &mounted,
        hold,
        entry,
    };
    // Every refusal that needs no cluster is decided before the first write (the ledger's).
    if let Some(hostname) = deployment.hostname() {
        state
            .render
            .ingress
            .check_hostname(hostname)
            .map_err(|problem| ApiError::Validation(vec![problem]))?;
    }
    let step = state.metrics.deploy_step("record", step);
    admission::admit(&state, cluster, &caller, &ask).await?;
    let step = state.metrics.deploy_step("admission", step);
    // The hostname is claimed through the API server (see cluster::hostnames), so two deploys,
    // even by two replicas of the service, cannot both take it.
    if let Some(hostname) = deployment.hostname() {
        let host = format!("{hostname}.{}", state.render.ingress.domain);
        match hostnames::claim(cluster, hostname, &host, &label, &label_value(&owner)).await {
            Ok(()) => {}
            Err(HostnameError::Taken) => {
                return Err(ApiError::Conflict {
                    field: "exposed_hostname".into(),
                    message: format!(
                        "exposed_hostname: `{hostname}` is already used by another deployment; pick another one."
                    ),
                });
            }
            Err(HostnameError::Cluster(error)) => return Err(ApiError::cluster(error)),
        }
    }
    let base = objects.workload.name().to_owned();
    // Right after a DELETE the old pods terminate and keep their claims: wait a little for
    // them to go, so the new pods get fresh volumes, or tell the caller to retry.
    cluster
        .caches
        .wait_deleted(&base, DELETION_WAIT)
        .await
        .map_err(|objects| ApiError::StillDeleting { objects })?;
    let applying = apply_objects(cluster, &objects, &label);
    let applied = tokio::time::timeout(CLUSTER_TIMEOUT, applying)
        .await
        .map_err(|_| ApiError::Timeout {
            dependency: "the cluster",
        })?
        .map_err(apply_failed)?;
    clear_stopped(cluster, &base).await?;
    let step = state.metrics.deploy_step("apply", step);
    // A hostname changed or dropped is free again once the new objects stand.
    hostnames::release_seen(cluster, &label, deployment.hostname())
        .await
        .map_err(ApiError::cluster)?;
    if !cluster.caches.observe(&base, &applied.uid, applied.generation).await {
        tracing::warn!(%base, "the watch cache has not seen the deploy yet");
    }
    state.metrics.deploy_step("observe", step);
    let status = if applied.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(deployment)).into_response())
}

/// Removes what an earlier record with the same id left under this deployment's names (see
/// [`leftovers`]) and waits for it to be gone, so the record starts with fresh volumes; 409
/// when the removal takes longer than a deploy may wait.
async fn remove_leftovers(
    cluster: &crate::cluster::Cluster,
    base: &str,
    label: &str,
    record: Incarnation<'_>,
) -> Result<(), ApiError> {
    let Some(reason) = leftovers::left_by_another_record(&cluster.caches, base, record) else {
        return Ok(());
    };
    tracing::warn!(deployment = %base, %reason, "removing what an earlier record with this id left");
    super::actions::delete_objects(cluster, Some(base), label).await?;
    cluster
        .caches
        .wait_gone(base, DELETION_WAIT)
        .await
        .map_err(|objects| ApiError::StillDeleting { objects })
}

/// The deployment's status, from the watch caches (costs the cluster nothing).
#[utoipa::path(
    get,
    path = "/kubernetes/deployments/{id}",
    tag = "deployments",
    params(DeploymentId),
    responses(
        (status = 200, description = "Replicas, pods with their containers, volumes, URL", body = DeploymentStatus),
        CommonErrors
    )
)]
async fn status(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Resolved {
        record, names, cluster, ..
    } = resolve(&state, &caller, &id, Purpose::Look).await?;
    let inputs = Inputs {
        // Read before the caches: see `Caches::version`.
        version: cluster.caches.version(),
        url: record.exposed_hostname.as_deref().filter(|h| !h.is_empty()).map(|h| {
            format!(
                "{}://{h}.{}",
                if state.render.ingress.tls { "https" } else { "http" },
                state.render.ingress.domain
            )
        }),
        stale_since: cluster.health.stale_since(),
    };
    let body = match state.status_memo.get(names.base(), &inputs) {
        Some(body) => body,
        None => {
            let status = render_status(cluster, names.base(), &inputs)?;
            // Cannot fail: string keys only, and serde_json writes a non-finite number as null.
            let body = Bytes::from(serde_json::to_vec(&status).unwrap_or_default());
            state.status_memo.put(names.base(), inputs, body.clone());
            body
        }
    };
    Ok(([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}

/// The status of deployment `base` from the caches.
fn render_status(cluster: &Cluster, base: &str, inputs: &Inputs) -> Result<DeploymentStatus, ApiError> {
    let deployed = cluster
        .caches
        .deployed(base)
        .ok_or_else(|| ApiError::NotFound("this deployment is not deployed yet: deploy it with PUT first".into()))?;
    let (pods, mut claims) = cluster.caches.members(base);
    // The claims its pods mount by name: shared ones, and a Job's (already among its members).
    for name in &deployed.footprint().claims {
        if !claims.iter().any(|c| c.metadata.name.as_deref() == Some(name))
            && let Some(claim) = cluster.caches.claim(name)
        {
            claims.push(claim);
        }
    }
    let url = inputs.url.clone();
    let status = match &deployed {
        Deployed::StatefulSet(sts) => {
            let refused = cluster.caches.failed_create(base);
            llp_spec::status::from_objects(sts, &pods, &claims, url).with_refused_pods(refused.as_deref())
        }
        Deployed::Job(job) => llp_spec::status::from_job(job, &pods, &claims, url),
    };
    Ok(DeploymentStatus {
        stale: inputs.stale_since.map(llp_spec::status::Stale::since),
        ..status
    })
}

/// Removes the note that the reservation reconciler stopped the deployment, once it runs
/// again (deployed, or scaled up), and lets a stopped Job run again. Costs nothing when there
/// is none.
pub async fn clear_stopped(cluster: &Cluster, name: &str) -> Result<(), ApiError> {
    let Some(deployed) = cluster.caches.deployed(name) else {
        return Ok(());
    };
    if deployed.annotation(STOPPED_ANNOTATION).is_none() {
        return Ok(());
    }
    let params = kube::api::PatchParams {
        field_manager: Some("llp-k8s-reservations".into()),
        ..Default::default()
    };
    let annotation = serde_json::json!({"metadata": {"annotations": {STOPPED_ANNOTATION: null}}});
    match deployed {
        Deployed::StatefulSet(_) => cluster
            .api::<k8s_openapi::api::apps::v1::StatefulSet>()
            .patch(name, &params, &kube::api::Patch::Merge(annotation))
            .await
            .map(drop),
        Deployed::Job(_) => {
            let mut patch = annotation;
            patch["spec"] = serde_json::json!({"suspend": false});
            cluster
                .api::<k8s_openapi::api::batch::v1::Job>()
                .patch(name, &params, &kube::api::Patch::Merge(patch))
                .await
                .map(drop)
        }
    }
    .map_err(ApiError::cluster)
}

/// A deploy stopped at one object: the cluster refusing it as invalid is the user's 400
/// (e.g. `restartPolicy: Never`, which StatefulSets do not allow); anything else is a 503
/// that names the object, so the user knows the next PUT has something to finish.
fn apply_failed(error: ApplyError) -> ApiError {
    tracing::error!(%error, "deploy failed");
    if let ApplyError::Shared(shared) = error {
        return ApiError::shared(shared);
    }
    match &error {
        ApplyError::Apply {
            source: kube::Error::Api(status),
            ..
        } if status.code == 422 || (status.code == 403 && error.object().starts_with("PersistentVolumeClaim")) => {
            // 403: the storage class does not allow growing claims.
            ApiError::BadRequest {
                field: None,
                message: format!("the cluster refused {}: {}", error.object(), status.message),
            }
        }
        ApplyError::Apply { source, .. } | ApplyError::Prune { source, .. }
            if crate::cluster::calls::timed_out(source) =>
        {
            ApiError::Timeout {
                dependency: "the cluster",
            }
        }
        _ => ApiError::PartlyApplied { object: error.object() },
    }
}
