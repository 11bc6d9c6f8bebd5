//! Checks of one container: its own fields, ports, environment and mounts.
//!
//! Rules that span containers (unique names and ports, pod-wide settings, mounts of declared
//! volumes) are checked in [`super::pod`] from what this module returns.

use super::check::{
    Problems, choice, dns_label, index, int_in, is_data_key, is_env_name, is_port_name, join, list_items, required,
    typed, unknown_keys,
};
use crate::error::Rule;
use crate::limits::Limits;
use crate::raw::{Command, Lenient, RawContainer, RawEnvVar, RawPort, RawVolumeMount};
use crate::spec::{Container, EnvSource, EnvVar, GpuRequest, Port, VolumeMount};
use serde_json::Value;
use std::collections::BTreeSet;

/// Largest uid/gid Kubernetes accepts.
const MAX_ID: i64 = 2_147_483_647;
/// More ports than any one container needs; keeps the Services small.
const MAX_PORTS: usize = 32;

/// A container that passed its own checks, with the settings that need pod-wide checks.
pub struct Checked {
    /// The container; only complete when the whole spec is valid.
    pub container: Container,
    /// `replicas` written inside the container (the seed's place for it).
    pub replicas: Option<i64>,
    /// Field path of each of `container.ports`.
    pub port_paths: Vec<String>,
    /// Field path of each of `container.volume_mounts`.
    pub mount_paths: Vec<String>,
}

/// Checks `raw` at `path`. Returns `None` when a required part is missing or unreadable;
/// every problem is in `p` either way.
pub fn check_container(p: &mut Problems, path: &str, raw: &RawContainer, limits: &Limits) -> Option<Checked> {
    unknown_keys::<RawContainer>(p, path, &raw.unknown);
    let name = required(p, &join(path, "name"), &raw.name, "a name like `web`")
        .filter(|n| dns_label(p, &join(path, "name"), n))
        .cloned();
    let image = check_image(p, path, raw);
    let (port_paths, ports) = check_ports(p, &join(path, "ports"), raw).into_iter().unzip();
    let cpu = int_in(
        p,
        &join(path, "cpu"),
        &raw.cpu,
        1..=i64::from(limits.max_cpu),
        "a whole number of CPU cores",
    );
    let memory = check_memory(p, &join(path, "memory"), raw, limits);
    let gpu = check_gpu(p, path, raw, limits);
    let command = check_command(p, &join(path, "command"), raw);
    let args = check_strings(p, &join(path, "args"), &raw.args);
    let environment = check_environment(p, &join(path, "environment"), raw);
    let id = |p: &mut Problems, key: &str, field| {
        int_in(
            p,
            &join(path, key),
            field,
            0..=MAX_ID,
            "a whole number (a user or group id)",
        )
    };
    let (user, group) = (id(p, "user", &raw.user), id(p, "group", &raw.group));
    let (fs_user, fs_group) = (id(p, "fsUser", &raw.fs_user), id(p, "fsGroup", &raw.fs_group));
    for (key, value) in [("user", user), ("fsUser", fs_user)] {
        if value == Some(0) && !limits.allow_root {
            p.add(
                join(path, key),
                Rule::OutOfRange,
                "is 0, the root user, which your group may not set: give another id (such as 1000), or leave it out to run as the image's own user (root for many images, such as nginx and pytorch, which then start with only the few capabilities they need to switch to their own user).",
            );
        }
    }
    let change_group_on_mismatch = typed(
        p,
        &join(path, "changeGroupOnMismatch"),
        &raw.change_group_on_mismatch,
        "`true` or `false`",
    )
    .copied();
    let (mount_paths, volume_mounts) = check_mounts(p, &join(path, "volumeMounts"), raw).into_iter().unzip();
    let replicas = int_in(
        p,
        &join(path, "replicas"),
        &raw.replicas,
        0..=i64::from(limits.max_replicas),
        "a whole number of replicas",
    );

    Some(Checked {
        container: Container {
            name: name?,
            image: image?,
            ports,
            cpu: u32::try_from(cpu.unwrap_or(i64::from(limits.default_cpu))).ok()?,
            memory: memory.unwrap_or(limits.default_memory),
            gpu: gpu?,
            command: command?,
            args: args?,
            environment,
            user,
            group,
            fs_user,
            fs_group,
            change_group_on_mismatch,
            volume_mounts,
        },
        replicas,
        port_paths,
        mount_paths,
    })
}

fn check_image(p: &mut Problems, path: &str, raw: &RawContainer) -> Option<String> {
    let path = join(path, "image");
    let image = required(p, &path, &raw.image, "an image like `nginx:latest`")?;
    let valid = !image.is_empty() && image.len() <= 1024 && !image.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        p.add(path, Rule::InvalidFormat, format!("`{image}` is not an image reference: write it like `nginx:1.27` or `ghcr.io/org/app:tag`, without spaces."));
        return None;
    }
    Some(image.clone())
}

fn check_memory(p: &mut Problems, path: &str, raw: &RawContainer, limits: &Limits) -> Option<f64> {
    let (min, max) = (Limits::MIN_MEMORY, limits.max_memory);
    let expected = format!("a number of GB from {min} to {max}, like 16 or 0.5");
    let memory = *typed(p, path, &raw.memory, &expected)?;
    if !(min..=max).contains(&memory) {
        let memory = super::check::readable(memory);
        p.add(path, Rule::OutOfRange, format!("is {memory}, but must be {expected}."));
        return None;
    }
    Some(memory)
}

/// `Some(None)` when no GPU is asked for; `None` when the GPU settings are invalid.
fn check_gpu(p: &mut Problems, path: &str, raw: &RawContainer, limits: &Limits) -> Option<Option<GpuRequest>> {
    let options =
        "one of `nvidia.com/gpu`, `nvidia.com/mig-1g.10gb`, `nvidia.com/mig-2g.20gb`, `nvidia.com/mig-3g.40gb`";
    // A booking's slug where the resource name belongs: the student copied it from a booking.
    if let Some(Lenient::Invalid(Value::String(word))) = &raw.gpu
        && let Some(profile) = crate::spec::Gpu::from_slug(word)
    {
        p.add(
            join(path, "gpu"),
            Rule::InvalidFormat,
            format!(
                "`{word}` is what a GPU booking calls this profile; a container names its Kubernetes resource: write `gpu: {}`.",
                profile.resource_name()
            ),
        );
        return None;
    }
    let gpu = choice(p, &join(path, "gpu"), &raw.gpu, options).copied();
    let count_path = join(path, "gpuCount");
    let count = int_in(
        p,
        &count_path,
        &raw.gpu_count,
        1..=i64::from(limits.max_gpu_count),
        "a whole number of GPUs",
    );
    if raw.gpu_count.is_some() && raw.gpu.is_none() {
        p.add(
            count_path,
            Rule::Conflict,
            "only applies together with `gpu`: add `gpu: nvidia.com/gpu` (or a MIG slice), or remove `gpuCount`.",
        );
        return None;
    }
    match (&raw.gpu, gpu) {
        (None, _) => Some(None),
        (Some(_), None) => None,
        (Some(_), Some(gpu)) if !limits.gpus.contains(gpu) => {
            let offered: Vec<String> = limits.gpus.iter().map(|g| format!("`{}`", g.resource_name())).collect();
            let choose = if offered.is_empty() {
                "no GPU is offered to you: remove `gpu` and `gpuCount`.".to_owned()
            } else {
                format!("choose one of {}.", offered.join(", "))
            };
            p.add(
                join(path, "gpu"),
                Rule::OutOfRange,
                format!("`{}` is not offered to you: {choose}", gpu.resource_name()),
            );
            None
        }
        (Some(_), Some(gpu)) => {
            let gpu_count = match (&raw.gpu_count, count) {
                (None, _) => 1,
                (Some(_), Some(n)) => u32::try_from(n).ok()?,
                (Some(_), None) => return None,
            };
            Some(Some(GpuRequest { gpu, gpu_count }))
        }
    }
}

/// `Some(None)` when there is no command; `None` when it is invalid.
fn check_command(p: &mut Problems, path: &str, raw: &RawContainer) -> Option<Option<Vec<String>>> {
    let Some(command) = typed(p, path, &raw.command, "a program path or a list of text") else {
        return raw.command.is_none().then_some(None);
    };
    match command {
        Command::One(program) if program.trim().is_empty() => {
            p.add(
                path,
                Rule::InvalidFormat,
                "is empty: give the program to run, or remove `command`.",
            );
            None
        }
        Command::One(program) if program.contains(char::is_whitespace) => {
            let words: Vec<String> = program.split_whitespace().map(|w| format!("\"{w}\"")).collect();
            p.add(
                path,
                Rule::InvalidFormat,
                format!(
                    "a text command is one program path, without arguments: write a list instead, like [{}].",
                    words.join(", ")
                ),
            );
            None
        }
        Command::One(program) => Some(Some(vec![program.clone()])),
        Command::List(list) => Some(Some(list.clone())),
    }
}

/// Checks a list of texts, pointing at each item that is not text.
fn check_strings(p: &mut Problems, path: &str, field: &crate::raw::Field<Vec<String>>) -> Option<Option<Vec<String>>> {
    match field {
        None => Some(None),
        Some(Lenient::Valid(list)) => Some(Some(list.clone())),
        Some(Lenient::Invalid(serde_json::Value::Array(items))) => {
            for (i, item) in items.iter().enumerate().filter(|(_, it)| !it.is_string()) {
                let text = item.to_string();
                p.add(
                    index(path, i),
                    Rule::WrongType,
                    format!(
                        "must be text, not {}: put it in quotes, like \"{}\".",
                        super::check::describe(item),
                        text.trim_matches('"')
                    ),
                );
            }
            None
        }
        Some(Lenient::Invalid(value)) => {
            p.add(
                path,
                Rule::WrongType,
                format!(
                    "must be a list of text, like [\"--port\", \"80\"], not {}.",
                    super::check::describe(value)
                ),
            );
            None
        }
    }
}

fn check_ports(p: &mut Problems, path: &str, raw: &RawContainer) -> Vec<(String, Port)> {
    let items = list_items(p, path, &raw.ports, "ports like `{name: http, port: 80}`");
    if items.len() > MAX_PORTS {
        p.add(
            path,
            Rule::OutOfRange,
            format!("has {} ports; at most {MAX_PORTS} are allowed.", items.len()),
        );
    }
    let mut names = BTreeSet::new();
    let mut ports = Vec::new();
    for (i, raw) in items {
        let at = index(path, i);
        if let Some(port) = check_port(p, &at, raw) {
            if !names.insert(port.name.clone()) {
                p.add(
                    join(&at, "name"),
                    Rule::Duplicate,
                    format!(
                        "`{}` names another port of this container too: port names must be unique.",
                        port.name
                    ),
                );
            }
            ports.push((at, port));
        }
    }
    ports
}

fn check_port(p: &mut Problems, path: &str, raw: &RawPort) -> Option<Port> {
    unknown_keys::<RawPort>(p, path, &raw.unknown);
    let number = int_in(p, &join(path, "port"), &raw.port, 1..=65535, "a whole port number");
    if raw.port.is_none() {
        p.add(
            join(path, "port"),
            Rule::Required,
            "is required: give the port number the container listens on, like 80.",
        );
    }
    let name_path = join(path, "name");
    let name = match typed(p, &name_path, &raw.name, "a port name like `http`") {
        Some(name) if !is_port_name(name) => {
            p.add(name_path, Rule::InvalidFormat, format!("`{name}` is not a valid port name: use at most 15 lowercase letters, digits and `-`, with at least one letter (like `http`)."));
            None
        }
        Some(name) => Some(name.clone()),
        None if raw.name.is_some() => None,
        None => number.map(|n| format!("port-{n}")),
    };
    Some(Port {
        name: name?,
        port: u16::try_from(number?).ok()?,
    })
}

fn check_environment(p: &mut Problems, path: &str, raw: &RawContainer) -> Vec<EnvVar> {
    let mut seen = BTreeSet::new();
    let mut vars = Vec::new();
    for (i, raw) in list_items(
        p,
        path,
        &raw.environment,
        "variables like `{name: MY_VAR, value: \"1\"}`",
    ) {
        let at = index(path, i);
        if let Some(var) = check_env_var(p, &at, raw) {
            if !seen.insert(var.name.clone()) {
                p.add(
                    join(&at, "name"),
                    Rule::Duplicate,
                    format!("`{}` is set twice in this container: keep one.", var.name),
                );
            }
            vars.push(var);
        }
    }
    vars
}

fn check_env_var(p: &mut Problems, path: &str, raw: &RawEnvVar) -> Option<EnvVar> {
    unknown_keys::<RawEnvVar>(p, path, &raw.unknown);
    let name_path = join(path, "name");
    let name = required(p, &name_path, &raw.name, "a variable name like `MY_VAR`")?;
    if !is_env_name(name) {
        p.add(name_path, Rule::InvalidFormat, format!("`{name}` is not a valid variable name: use letters, digits, `_`, `-` and `.`, not starting with a digit."));
    }
    let value = typed(
        p,
        &join(path, "value"),
        &raw.value,
        "text (put numbers and true/false in quotes, like \"8080\")",
    );
    let key = |p: &mut Problems, field: &str, raw: &crate::raw::Field<String>| -> Option<String> {
        let at = join(path, field);
        let key = typed(p, &at, raw, "the name of a key, like `API_TOKEN`")?;
        if !is_data_key(key) {
            p.add(
                at,
                Rule::InvalidFormat,
                format!("`{key}` is not a valid key: use letters, digits, `_`, `-` and `.`."),
            );
            return None;
        }
        Some(key.clone())
    };
    let (secret, config) = (
        key(p, "fromSecret", &raw.from_secret),
        key(p, "fromConfig", &raw.from_config),
    );
    let given = [
        raw.value.is_some(),
        raw.from_secret.is_some(),
        raw.from_config.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => p.add(
            join(path, "value"),
            Rule::Required,
            "is required: give `value`, `fromSecret` or `fromConfig`.",
        ),
        1 => {}
        _ => p.add(
            path,
            Rule::Conflict,
            "give only one of `value`, `fromSecret` and `fromConfig`.",
        ),
    }
    let source = match (value, secret, config) {
        (Some(v), None, None) => EnvSource::Value(v.clone()),
        (None, Some(k), None) => EnvSource::FromSecret(k),
        (None, None, Some(k)) => EnvSource::FromConfig(k),
        _ => return None,
    };
    is_env_name(name).then(|| EnvVar {
        name: name.clone(),
        source,
    })
}

fn check_mounts(p: &mut Problems, path: &str, raw: &RawContainer) -> Vec<(String, VolumeMount)> {
    let mut paths = BTreeSet::new();
    let mut mounts = Vec::new();
    for (i, raw) in list_items(
        p,
        path,
        &raw.volume_mounts,
        "mounts like `{name: data, mountPath: /data}`",
    ) {
        let at = index(path, i);
        if let Some(mount) = check_mount(p, &at, raw) {
            if !paths.insert(mount.mount_path.clone()) {
                p.add(
                    join(&at, "mountPath"),
                    Rule::Duplicate,
                    format!("`{}` is used by another mount of this container.", mount.mount_path),
                );
            }
            mounts.push((at, mount));
        }
    }
    mounts
}

fn check_mount(p: &mut Problems, path: &str, raw: &RawVolumeMount) -> Option<VolumeMount> {
    unknown_keys::<RawVolumeMount>(p, path, &raw.unknown);
    let name = required(
        p,
        &join(path, "name"),
        &raw.name,
        "the name of a volume declared under `volumes`",
    )
    .cloned();
    let mount_path_at = join(path, "mountPath");
    let mount_path = required(p, &mount_path_at, &raw.mount_path, "an absolute path like `/data`").cloned();
    if let Some(mp) = &mount_path
        && !is_absolute_path(mp)
    {
        p.add(
            mount_path_at,
            Rule::InvalidFormat,
            format!("`{mp}` must be an absolute path without `..`, like `/data`."),
        );
    }
    let read_only = typed(p, &join(path, "readOnly"), &raw.read_only, "`true` or `false`").copied();
    let access = choice(
        p,
        &join(path, "type"),
        &raw.access,
        "`ReadWriteOnce` or `ReadWriteMany`",
    )
    .copied();
    if raw.read_only.is_some() && read_only.is_none() || raw.access.is_some() && access.is_none() {
        return None;
    }
    let mount_path = mount_path.filter(|mp| is_absolute_path(mp))?;
    Some(VolumeMount {
        name: name?,
        mount_path,
        read_only: read_only.unwrap_or(false),
        access,
    })
}

/// An absolute path without `..` segments or control characters, as Kubernetes requires.
fn is_absolute_path(path: &str) -> bool {
    path.starts_with('/') && !path.split('/').any(|seg| seg == "..") && !path.contains(char::is_control)
}
