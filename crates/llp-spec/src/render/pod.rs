//! The pod template's containers: resources, environment, mounts and security context.

use super::Context;
use crate::spec::{AccessMode, Container, EnvSource, EnvVar as SpecEnvVar, Spec, VolumeKind};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapKeySelector, Container as K8sContainer, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, PersistentVolumeClaimVolumeSource, PodSecurityContext, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// Renders one container of the pod.
pub(super) fn render_container(container: &Container, ctx: &Context<'_>) -> K8sContainer {
    K8sContainer {
        name: container.name.clone(),
        image: Some(container.image.clone()),
        image_pull_policy: Some(ctx.config.image_pull_policy.clone()),
        command: container.command.clone(),
        args: container.args.clone(),
        ports: non_empty(container.ports.iter().map(|p| ContainerPort {
            name: Some(p.name.clone()),
            container_port: i32::from(p.port),
            protocol: Some("TCP".into()),
            ..Default::default()
        })),
        env: non_empty(container.environment.iter().map(|e| render_env_var(e, ctx))),
        resources: Some(render_resources(container)),
        security_context: Some(render_security_context(container, ctx)),
        volume_mounts: non_empty(container.volume_mounts.iter().map(|m| VolumeMount {
            name: m.name.clone(),
            mount_path: m.mount_path.clone(),
            read_only: m.read_only.then_some(true),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Requests equal limits, so a pod gets exactly what it asked for (Guaranteed QoS).
fn render_resources(container: &Container) -> ResourceRequirements {
    let mut resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity(container.cpu.to_string())),
        ("memory".to_owned(), memory_quantity(container.memory)),
    ]);
    if let Some(gpu) = container.gpu {
        resources.insert(gpu.gpu.resource_name().to_owned(), Quantity(gpu.gpu_count.to_string()));
    }
    ResourceRequirements {
        limits: Some(resources.clone()),
        requests: Some(resources),
        ..Default::default()
    }
}

/// `16Gi` for whole GB; fractions in whole MiB (rounded up), since `0.1Gi` is no whole number
/// of bytes and the API server would rewrite it in millibytes.
pub fn memory_quantity(gb: f64) -> Quantity {
    if gb.fract() == 0.0 {
        Quantity(format!("{gb:.0}Gi"))
    } else {
        Quantity(format!("{:.0}Mi", (gb * 1024.0).ceil()))
    }
}

fn render_env_var(var: &SpecEnvVar, ctx: &Context<'_>) -> EnvVar {
    let (value, value_from) = match &var.source {
        EnvSource::Value(v) => (Some(v.clone()), None),
        EnvSource::FromSecret(key) => (
            None,
            Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: ctx.names.secret().to_owned(),
                    key: key.clone(),
                    optional: None,
                }),
                ..Default::default()
            }),
        ),
        EnvSource::FromConfig(key) => (
            None,
            Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: ctx.names.config_map().to_owned(),
                    key: key.clone(),
                    optional: None,
                }),
                ..Default::default()
            }),
        ),
    };
    EnvVar {
        name: var.name.clone(),
        value,
        value_from,
    }
}

/// Drops every capability; a container that may start as root (like nginx, which binds port
/// 80 and chowns its cache before switching to its worker user) gets back the few that such
/// images need, all of them within Pod Security "baseline" (`[cluster] root_capabilities`).
/// Under `run_as_non_root` (Pod Security "restricted") none come back: no root may start.
fn render_security_context(container: &Container, ctx: &Context<'_>) -> SecurityContext {
    let may_start_as_root = container.user.or(ctx.pod_user).is_none_or(|user| user == 0);
    let add_back = may_start_as_root && !ctx.config.run_as_non_root && !ctx.config.root_capabilities.is_empty();
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: ctx.config.drop_all_capabilities.then(|| Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: add_back.then(|| ctx.config.root_capabilities.clone()),
        }),
        run_as_user: container.user,
        run_as_group: container.group,
        ..Default::default()
    }
}

/// The pod's security context: the settings the format puts on containers, the runtime's
/// default seccomp profile, and `runAsNonRoot` when configured (unless the YAML asks for root,
/// which validation allows only to groups that may).
pub(super) fn render_pod_security_context(spec: &Spec, ctx: &Context<'_>) -> Option<PodSecurityContext> {
    let security = spec.pod_security();
    let asks_for_root = security.fs_user == Some(0) || spec.all_containers().any(|c| c.user == Some(0));
    Some(PodSecurityContext {
        run_as_user: security.fs_user,
        fs_group: security.fs_group,
        fs_group_change_policy: security.change_group_on_mismatch.then(|| "OnRootMismatch".to_owned()),
        run_as_non_root: (ctx.config.run_as_non_root && !asks_for_root).then_some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    })
}

/// The pod's own volumes: the memory-backed scratch directories, the owner's shared claims
/// and the owner's existing claims mounted by name. Per-replica volumes come from the
/// StatefulSet's claim templates instead.
pub(super) fn render_pod_volumes(spec: &Spec, ctx: &Context<'_>) -> Option<Vec<Volume>> {
    non_empty(
        spec.volumes
            .iter()
            .filter_map(|v| match v.kind {
                VolumeKind::EmptyDir { size_limit_mib } => Some(Volume {
                    name: v.name.clone(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: Some("Memory".into()),
                        size_limit: Some(Quantity(format!("{size_limit_mib}Mi"))),
                    }),
                    ..Default::default()
                }),
                VolumeKind::Persistent {
                    access: AccessMode::ReadWriteMany,
                    ..
                } => Some(Volume {
                    name: v.name.clone(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: ctx.shared_claim(&v.name),
                        read_only: None,
                    }),
                    ..Default::default()
                }),
                // A Job has no claim templates: its volume is one claim of the deployment.
                VolumeKind::Persistent { .. } if spec.restart_policy != crate::spec::RestartPolicy::Always => {
                    Some(Volume {
                        name: v.name.clone(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: ctx.names.job_claim(&v.name),
                            read_only: None,
                        }),
                        ..Default::default()
                    })
                }
                VolumeKind::Persistent { .. } => None,
            })
            .chain(spec.claims.iter().map(|claim| Volume {
                // The mount's name is the claim's.
                name: claim.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: None,
                }),
                ..Default::default()
            })),
    )
}

/// `None` for an empty list, so rendered objects omit empty fields like the API server does.
pub(super) fn non_empty<T>(items: impl Iterator<Item = T>) -> Option<Vec<T>> {
    let items: Vec<T> = items.collect();
    (!items.is_empty()).then_some(items)
}

#[cfg(test)]
mod tests {
    use super::memory_quantity;

    #[test]
    fn memory_is_rendered_in_gi_or_whole_mi() {
        assert_eq!(memory_quantity(16.0).0, "16Gi");
        assert_eq!(memory_quantity(0.5).0, "512Mi");
        assert_eq!(memory_quantity(0.1).0, "103Mi");
        assert_eq!(memory_quantity(1.25).0, "1280Mi");
    }
}
