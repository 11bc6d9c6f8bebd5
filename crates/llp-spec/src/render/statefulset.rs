//! The StatefulSet: the pod template and one volume claim per per-replica volume per pod; and
//! the owner's claims of the shared volumes the pods mount.

use super::Context;
use super::pod::{non_empty, render_container, render_pod_security_context, render_pod_volumes};
use crate::names::{MANAGED_BY, OWNER_LABEL, SHARED_VOLUME_LABEL, label_value, selector};
use crate::spec::{AccessMode, Spec, VolumeKind};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

/// Renders the StatefulSet named after the deployment's base name.
pub(super) fn render_stateful_set(spec: &Spec, ctx: &Context<'_>) -> StatefulSet {
    let base = ctx.names.base();
    StatefulSet {
        metadata: ctx.metadata(base),
        spec: Some(StatefulSetSpec {
            replicas: Some(i32::try_from(spec.replicas).unwrap_or(i32::MAX)),
            service_name: Some(base.to_owned()),
            selector: LabelSelector {
                match_labels: Some(selector(ctx.names)),
                ..Default::default()
            },
            template: render_pod_template(spec, ctx),
            volume_claim_templates: non_empty(spec.volumes.iter().filter_map(|v| match &v.kind {
                VolumeKind::Persistent {
                    size,
                    access: AccessMode::ReadWriteOnce,
                } => Some(render_claim(
                    &v.name,
                    size,
                    AccessMode::ReadWriteOnce,
                    ctx.labels.clone(),
                    ctx,
                )),
                _ => None,
            })),
            // Claims outlive the StatefulSet: a change to its immutable fields (a new volume)
            // recreates it without losing data; the deployment's DELETE removes claims itself.
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some("Retain".into()),
                when_scaled: Some("Retain".into()),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

pub(super) fn render_pod_template(spec: &Spec, ctx: &Context<'_>) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(ctx.labels.clone()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: spec.containers.iter().map(|c| render_container(c, ctx)).collect(),
            init_containers: non_empty(spec.init_containers.iter().map(|c| render_container(c, ctx))),
            restart_policy: Some(spec.restart_policy.as_str().to_owned()),
            node_selector: (!ctx.config.node_selector.is_empty()).then(|| ctx.config.node_selector.clone()),
            tolerations: non_empty(
                spec.containers
                    .iter()
                    .chain(&spec.init_containers)
                    .any(|c| c.gpu.is_some())
                    .then(|| ctx.config.gpu_tolerations.clone())
                    .into_iter()
                    .flatten(),
            ),
            enable_service_links: Some(false),
            // Users' pods do not talk to the Kubernetes API.
            automount_service_account_token: Some(false),
            security_context: render_pod_security_context(spec, ctx),
            volumes: render_pod_volumes(spec, ctx),
            ..Default::default()
        }),
    }
}

/// The claims of the shared volumes: labelled with the owner and the volume, not with the
/// deployment (the apply adds the label saying this deployment uses it).
pub(super) fn render_shared_claims(spec: &Spec, ctx: &Context<'_>) -> Vec<PersistentVolumeClaim> {
    spec.volumes
        .iter()
        .filter_map(|v| match &v.kind {
            VolumeKind::Persistent {
                size,
                access: AccessMode::ReadWriteMany,
            } => {
                let labels = BTreeMap::from([
                    (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                    (OWNER_LABEL.to_owned(), label_value(ctx.owner)),
                    (SHARED_VOLUME_LABEL.to_owned(), v.name.clone()),
                ]);
                let mut claim = render_claim(&v.name, size, AccessMode::ReadWriteMany, labels, ctx);
                claim.metadata.name = Some(ctx.shared_claim(&v.name));
                claim.metadata.namespace = Some(ctx.config.namespace.clone());
                Some(claim)
            }
            _ => None,
        })
        .collect()
}

pub(super) fn render_claim(
    name: &str,
    size: &str,
    access: AccessMode,
    labels: BTreeMap<String, String>,
    ctx: &Context<'_>,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![access.as_str().to_owned()]),
            storage_class_name: ctx.config.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(size.to_owned()))])),
                limits: None,
            }),
            ..Default::default()
        }),
        status: None,
    }
}
