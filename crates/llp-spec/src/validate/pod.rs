//! Rules that span the pod: unique names and ports, settings Kubernetes keeps per pod,
//! mounts of declared volumes and the volumes' access modes.

use super::check::{Problems, join};
use super::container::Checked;
use super::suggest::did_you_mean;
use super::volume::CheckedVolume;
use crate::error::Rule;
use crate::spec::VolumeKind;
use std::collections::BTreeMap;

/// Container names must be unique across init and app containers.
pub fn check_unique_names(p: &mut Problems, containers: &[(String, &Checked)]) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (path, c) in containers {
        if let Some(first) = seen.insert(&c.container.name, path) {
            let message = format!(
                "`{}` is also the name of {first}: container names must be unique in a deployment.",
                c.container.name
            );
            p.add(join(path, "name"), Rule::Duplicate, message);
        }
    }
}

/// The containers of a pod share one network, so two cannot listen on the same port.
pub fn check_unique_ports(p: &mut Problems, containers: &[(String, &Checked)]) {
    let mut seen: BTreeMap<u16, &str> = BTreeMap::new();
    for (_, c) in containers {
        for (port, path) in c.container.ports.iter().zip(&c.port_paths) {
            if let Some(first) = seen.insert(port.port, path) {
                let message = format!(
                    "{} is already used by {first}: containers of one deployment share the network, so each port can be used once.",
                    port.port
                );
                p.add(join(path, "port"), Rule::Duplicate, message);
            }
        }
    }
}

/// `fsUser`, `fsGroup` and `changeGroupOnMismatch` apply to the whole pod, so the containers
/// that set them must agree.
pub fn check_pod_settings(p: &mut Problems, containers: &[(String, &Checked)]) {
    type Setting = (&'static str, fn(&Checked) -> Option<i64>);
    let settings: [Setting; 3] = [
        ("fsUser", |c| c.container.fs_user),
        ("fsGroup", |c| c.container.fs_group),
        ("changeGroupOnMismatch", |c| {
            c.container.change_group_on_mismatch.map(i64::from)
        }),
    ];
    for (key, get) in settings {
        let mut first: Option<(i64, &str)> = None;
        for (path, c) in containers {
            let Some(value) = get(c) else { continue };
            match first {
                None => first = Some((value, path)),
                Some((v, at)) if v != value => {
                    let message = format!(
                        "differs from `{key}` of {at}: it applies to the whole pod, so give it once or the same everywhere."
                    );
                    p.add(join(path, key), Rule::Conflict, message);
                }
                Some(_) => {}
            }
        }
    }
}

/// Mounts must name a declared volume, or an existing claim of the owner (`own_claim`); the
/// mounts of a persistent volume settle its access mode (`ReadWriteOnce` unless a mount says
/// otherwise), and must agree on it. Returns the existing claims mounted, in order.
pub fn check_mounts(
    p: &mut Problems,
    containers: &[(String, &Checked)],
    declared: &[String],
    volumes: &mut [CheckedVolume],
    own_claim: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut access_set_at: BTreeMap<String, String> = BTreeMap::new();
    let mut claims: Vec<String> = Vec::new();
    for (_, c) in containers {
        for (mount, path) in c.container.volume_mounts.iter().zip(&c.mount_paths) {
            if !declared.contains(&mount.name) && own_claim(&mount.name) {
                if !claims.contains(&mount.name) {
                    claims.push(mount.name.clone());
                }
                continue;
            }
            if !declared.contains(&mount.name) {
                let hint = did_you_mean(&mount.name, declared.iter().map(String::as_str));
                let message = format!(
                    "`{}` is not declared under `volumes`: add it there (like `{{name: {}, size: 1Gi}}`) or fix the name.{hint}",
                    mount.name, mount.name
                );
                p.add(join(path, "name"), Rule::UnknownReference, message);
                continue;
            }
            let Some(volume) = volumes.iter_mut().find(|v| v.name == mount.name) else {
                continue;
            };
            let Some(wanted) = mount.access else { continue };
            match &mut volume.kind {
                VolumeKind::EmptyDir { .. } => {
                    p.add(
                        join(path, "type"),
                        Rule::Conflict,
                        format!(
                            "only applies to persistent volumes; `{}` is an `emptyDir`: remove `type`.",
                            mount.name
                        ),
                    );
                }
                VolumeKind::Persistent { access, .. } => match access_set_at.get(&mount.name) {
                    Some(first) if *access != wanted => {
                        let message =
                            format!("differs from the `type` given at {first}: a volume has one access mode.");
                        p.add(join(path, "type"), Rule::Conflict, message);
                    }
                    Some(_) => {}
                    None => {
                        *access = wanted;
                        access_set_at.insert(mount.name.clone(), path.clone());
                    }
                },
            }
        }
    }
    claims
}

/// Init containers finish before the app starts, so they cannot serve ports.
pub fn check_init_containers(p: &mut Problems, init: &[(String, &Checked)]) {
    for (path, c) in init {
        if !c.container.ports.is_empty() {
            p.add(
                join(path, "ports"),
                Rule::Conflict,
                "init containers run to completion before the app starts and cannot serve ports: remove `ports`.",
            );
        }
    }
}
