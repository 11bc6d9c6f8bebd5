//! Validation: from what the user wrote ([`RawSpec`]) to a [`Spec`], or every problem at once.
//!
//! Each part of the tree is checked on its own (`container`, `volume`), then the rules that
//! span the pod (`pod`). A problem never stops the walk, so one answer lists everything the
//! student has to fix, each with its field path.

mod check;
mod container;
mod pod;
mod suggest;
mod volume;

pub use check::{describe, is_dns_label, readable};
pub use suggest::did_you_mean;

use crate::error::{FieldError, Rule};
use crate::limits::Limits;
use crate::parse::parse_yaml;
use crate::raw::{Lenient, RawSpec};
use crate::spec::{Container, RestartPolicy, Spec, Volume, VolumeKind};
use check::{Problems, choice, index, int_in, list_items, unknown_keys};
use container::{Checked, check_container};

/// Most containers (and, separately, init containers) in one deployment.
pub const MAX_CONTAINERS: usize = 16;

/// Parses and validates a deployment YAML for a user with `limits`.
pub fn validate_yaml(yaml: &str, limits: &Limits) -> Result<Spec, Vec<FieldError>> {
    validate_yaml_with(yaml, limits, &|_| false)
}

/// [`validate_yaml`], where a mount may also name one of the owner's existing claims.
pub fn validate_yaml_with(
    yaml: &str,
    limits: &Limits,
    own_claim: &dyn Fn(&str) -> bool,
) -> Result<Spec, Vec<FieldError>> {
    let raw = parse_yaml(yaml).map_err(|e| vec![e])?;
    validate_spec_with(&raw, limits, own_claim)
}

/// Validates a parsed deployment for a user with `limits`.
pub fn validate_spec(raw: &RawSpec, limits: &Limits) -> Result<Spec, Vec<FieldError>> {
    validate_spec_with(raw, limits, &|_| false)
}

/// [`validate_spec`], where a mount may also name an existing claim for which `own_claim`
/// holds (upstream's `<volume>-sd-<id>-<ordinal>`); any other undeclared name is the unknown
/// volume it always is, so another owner's claim is indistinguishable from a missing one.
pub fn validate_spec_with(
    raw: &RawSpec,
    limits: &Limits,
    own_claim: &dyn Fn(&str) -> bool,
) -> Result<Spec, Vec<FieldError>> {
    let mut p = Problems::default();
    unknown_keys::<RawSpec>(&mut p, "", &raw.unknown);

    let containers = check_containers(&mut p, "containers", &raw.containers, limits, true);
    let init = check_containers(&mut p, "initContainers", &raw.init_containers, limits, false);
    let mut volumes = volume::check_volumes(&mut p, &raw.volumes);
    let declared = declared_volume_names(raw);

    let all: Vec<(String, &Checked)> = init
        .iter()
        .chain(&containers)
        .map(|(path, c)| (path.clone(), c))
        .collect();
    pod::check_unique_names(&mut p, &all);
    pod::check_unique_ports(&mut p, &all);
    pod::check_pod_settings(&mut p, &all);
    let claims = pod::check_mounts(&mut p, &all, &declared, &mut volumes, own_claim);
    pod::check_init_containers(&mut p, &all[..init.len()]);

    let replicas = check_replicas(&mut p, raw, &all, limits);
    let restart_policy = choice(
        &mut p,
        "restartPolicy",
        &raw.restart_policy,
        "one of `Always`, `OnFailure`, `Never`",
    )
    .copied()
    .unwrap_or(RestartPolicy::Always);
    if restart_policy != RestartPolicy::Always && replicas == 0 {
        p.add(
            "replicas",
            Rule::OutOfRange,
            format!(
                "is 0, but a run to completion (`restartPolicy: {}`) needs at least 1 pod: give `replicas: 1` or more (to stop a run, scale it to 0).",
                restart_policy.as_str()
            ),
        );
    }

    if !p.0.is_empty() {
        return Err(p.0);
    }
    let container_count = all_containers_count(raw);
    if containers.len() + init.len() != container_count {
        // A container was dropped without a problem being recorded: never render half a pod.
        return Err(vec![FieldError::new(
            "containers",
            Rule::WrongType,
            "could not be read.",
        )]);
    }
    let volumes: Vec<Volume> = volumes
        .into_iter()
        .map(|v| Volume {
            name: v.name,
            kind: v.kind,
        })
        .collect();
    let finish = |(_, c): (String, Checked)| with_mount_access(c.container, &volumes);
    Ok(Spec {
        containers: containers.into_iter().map(finish).collect(),
        init_containers: init.into_iter().map(finish).collect(),
        volumes,
        claims,
        replicas: u32::try_from(replicas).unwrap_or(1),
        restart_policy,
    })
}

fn check_containers(
    p: &mut Problems,
    path: &str,
    raw: &crate::raw::List<crate::raw::RawContainer>,
    limits: &Limits,
    required: bool,
) -> Vec<(String, Checked)> {
    let what = "containers like `{name: web, image: nginx}`";
    if required && raw.is_none() {
        p.add(
            path,
            Rule::Required,
            "is required: list at least one container, like `- {name: web, image: nginx:latest}`.",
        );
    }
    if let Some(Lenient::Valid(items)) = raw {
        if required && items.is_empty() {
            p.add(path, Rule::OutOfRange, "is empty: list at least one container.");
        }
        if items.len() > MAX_CONTAINERS {
            p.add(
                path,
                Rule::OutOfRange,
                format!("has {} entries; at most {MAX_CONTAINERS} are allowed.", items.len()),
            );
        }
    }
    list_items(p, path, raw, what)
        .into_iter()
        .filter_map(|(i, c)| {
            let at = index(path, i);
            check_container(p, &at, c, limits).map(|checked| (at, checked))
        })
        .collect()
}

/// `replicas` may stand at the top or, as in the seed, inside containers; all must agree.
fn check_replicas(p: &mut Problems, raw: &RawSpec, containers: &[(String, &Checked)], limits: &Limits) -> i64 {
    let top = int_in(
        p,
        "replicas",
        &raw.replicas,
        0..=i64::from(limits.max_replicas),
        "a whole number of replicas",
    );
    let mut given: Vec<(String, i64)> = top.map(|r| ("replicas".to_owned(), r)).into_iter().collect();
    given.extend(
        containers
            .iter()
            .filter_map(|(path, c)| c.replicas.map(|r| (check::join(path, "replicas"), r))),
    );
    let Some((first_at, first)) = given.first().cloned() else {
        return 1;
    };
    for (at, value) in &given[1..] {
        if *value != first {
            p.add(at, Rule::Conflict, format!("is {value}, but {first_at} is {first}: a deployment has one number of replicas, best given once at the top."));
        }
    }
    first
}

fn declared_volume_names(raw: &RawSpec) -> Vec<String> {
    let Some(Lenient::Valid(items)) = &raw.volumes else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|v| match v {
            Lenient::Valid(v) => match &v.name {
                Some(Lenient::Valid(name)) => Some(name.clone()),
                _ => None,
            },
            Lenient::Invalid(_) => None,
        })
        .collect()
}

fn all_containers_count(raw: &RawSpec) -> usize {
    let count = |l: &crate::raw::List<crate::raw::RawContainer>| match l {
        Some(Lenient::Valid(items)) => items.len(),
        _ => 0,
    };
    count(&raw.containers) + count(&raw.init_containers)
}

/// Fills in each mount's `type` from its volume: the settled access mode for a persistent
/// volume, none for a scratch directory.
fn with_mount_access(mut container: Container, volumes: &[Volume]) -> Container {
    for mount in &mut container.volume_mounts {
        mount.access = volumes
            .iter()
            .find(|v| v.name == mount.name)
            .and_then(|v| match &v.kind {
                VolumeKind::Persistent { access, .. } => Some(*access),
                VolumeKind::EmptyDir { .. } => None,
            });
    }
    container
}
