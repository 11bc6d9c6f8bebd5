//! Per-user totals: how much one user's deployments may hold together (deployments, CPU,
//! memory, GPUs, storage), per group. Pure: what is held is counted by the caller from the
//! cluster; this adds it up and says by how much a change would exceed the quota.

use crate::quantity;
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, PodSpec};
use serde::{Deserialize, Serialize};

/// What one user's deployments may hold together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quota {
    /// Deployments deployed at once.
    pub deployments: u32,
    /// CPU cores all pods ask for.
    pub cpu: u32,
    /// Memory (GB) all pods ask for.
    pub memory: f64,
    /// GPUs (of every kind) all pods ask for.
    pub gpus: u32,
    /// Persistent storage (GiB) of all volumes.
    pub storage: u32,
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            deployments: 10,
            cpu: 128,
            memory: 512.0,
            gpus: 8,
            storage: 2000,
        }
    }
}

impl Quota {
    /// The larger of two quotas, field by field.
    pub fn widen(self, other: Quota) -> Quota {
        Quota {
            deployments: self.deployments.max(other.deployments),
            cpu: self.cpu.max(other.cpu),
            memory: self.memory.max(other.memory),
            gpus: self.gpus.max(other.gpus),
            storage: self.storage.max(other.storage),
        }
    }
}

/// What some deployments hold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Deployments.
    pub deployments: u32,
    /// CPU cores.
    pub cpu: f64,
    /// Memory, GB (GiB, as deployments ask for it).
    pub memory: f64,
    /// GPUs of every kind.
    pub gpus: u32,
    /// Storage, GiB.
    pub storage: f64,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, other: Usage) -> Usage {
        Usage {
            deployments: self.deployments + other.deployments,
            cpu: self.cpu + other.cpu,
            memory: self.memory + other.memory,
            gpus: self.gpus + other.gpus,
            storage: self.storage + other.storage,
        }
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What `replicas` pods of `pod` ask for (see [`per_pod`]).
pub fn pods(pod: &PodSpec, replicas: u32) -> Usage {
    per_pod(pod).times(replicas)
}

/// What one pod of `pod` reserves, as the scheduler counts it: per resource, the larger of
/// its app containers' requests together and its largest init container's (init containers
/// run one at a time, before the app containers).
pub fn per_pod(pod: &PodSpec) -> Usage {
    let apps = pod
        .containers
        .iter()
        .map(requests)
        .fold(Usage::default(), |sum, one| sum + one);
    let init = pod
        .init_containers
        .iter()
        .flatten()
        .map(requests)
        .fold(Usage::default(), Usage::larger);
    apps.larger(init)
}

/// What one container requests.
fn requests(container: &Container) -> Usage {
    let mut one = Usage::default();
    for (name, value) in container.resources.iter().flat_map(|r| r.requests.iter().flatten()) {
        let amount = quantity::parse(&value.0).unwrap_or(0.0);
        match name.as_str() {
            "cpu" => one.cpu += amount,
            "memory" => one.memory += amount / GIB,
            gpu if gpu.starts_with("nvidia.com/") => one.gpus += amount as u32,
            _ => {}
        }
    }
    one
}

impl Usage {
    /// The larger of two, field by field.
    pub fn larger(self, other: Usage) -> Usage {
        Usage {
            deployments: self.deployments.max(other.deployments),
            cpu: self.cpu.max(other.cpu),
            memory: self.memory.max(other.memory),
            gpus: self.gpus.max(other.gpus),
            storage: self.storage.max(other.storage),
        }
    }

    /// The CPU, memory and GPUs of `replicas` pods each holding this (deployments and
    /// storage are not per pod, and are not multiplied).
    pub fn times(self, replicas: u32) -> Usage {
        let n = f64::from(replicas);
        Usage {
            deployments: 0,
            cpu: self.cpu * n,
            memory: self.memory * n,
            gpus: self.gpus * replicas,
            storage: 0.0,
        }
    }
}

/// The storage a claim asks for, GiB.
pub fn storage(claim: &PersistentVolumeClaim) -> f64 {
    crate::resize::requested(claim).and_then(quantity::parse).unwrap_or(0.0) / GIB
}

/// Whether `others` plus `this` stay within `quota`; otherwise every total exceeded, with what
/// this change asks for, what the others hold, and by how much it is over.
pub fn check(quota: &Quota, others: Usage, this: Usage) -> Result<(), String> {
    let n = crate::validate::readable;
    let mut over = Vec::new();
    let mut line = |what: &str, unit: &str, asked: f64, held: f64, allowed: f64| {
        if asked + held > allowed + 1e-9 {
            over.push(format!(
                "{what}: this asks for {}{unit} and your other deployments hold {}{unit}, {}{unit} over your group's {}{unit}",
                n(asked),
                n(held),
                n(asked + held - allowed),
                n(allowed)
            ));
        }
    };
    line(
        "deployments",
        "",
        f64::from(this.deployments),
        f64::from(others.deployments),
        f64::from(quota.deployments),
    );
    line("CPU", " cores", this.cpu, others.cpu, f64::from(quota.cpu));
    line("memory", " GB", this.memory, others.memory, quota.memory);
    line(
        "GPUs",
        "",
        f64::from(this.gpus),
        f64::from(others.gpus),
        f64::from(quota.gpus),
    );
    line(
        "storage",
        " GiB",
        this.storage,
        others.storage,
        f64::from(quota.storage),
    );
    if over.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "over your quota: {}. Stop or delete another deployment, or ask for less.",
            over.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu: &str, memory: &str, gpus: Option<&str>) -> PodSpec {
        let mut requests = serde_json::json!({"cpu": cpu, "memory": memory});
        if let Some(n) = gpus {
            requests["nvidia.com/mig-1g.10gb"] = serde_json::json!(n);
        }
        serde_json::from_value(serde_json::json!({"containers": [{"name": "a", "resources": {"requests": requests}}]}))
            .unwrap()
    }

    #[test]
    fn pods_count_their_requests_times_replicas() {
        let usage = pods(&pod("4", "16Gi", Some("2")), 3);
        assert_eq!((usage.cpu, usage.memory, usage.gpus), (12.0, 48.0, 6));
        assert_eq!(pods(&pod("500m", "512Mi", None), 2).memory, 1.0);
    }

    #[test]
    fn a_pod_reserves_its_largest_init_container_when_that_asks_for_more() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [
                {"name": "fetch", "resources": {"requests": {"cpu": "64", "memory": "1Gi"}}},
                {"name": "warm", "resources": {"requests": {"cpu": "2", "memory": "8Gi"}}}],
            "containers": [
                {"name": "app", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}},
                {"name": "side", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}],
        }))
        .unwrap();
        let one = per_pod(&spec);
        // CPU from the 64-core init container; memory from the 8 GiB one, over the apps' 4.
        assert_eq!((one.cpu, one.memory), (64.0, 8.0));
        assert_eq!(pods(&spec, 16).cpu, 1024.0);
    }

    #[test]
    fn the_message_says_what_is_over_and_by_how_much() {
        let quota = Quota {
            cpu: 16,
            ..Quota::default()
        };
        let others = Usage {
            cpu: 12.0,
            deployments: 1,
            ..Usage::default()
        };
        let fits = Usage {
            cpu: 4.0,
            deployments: 1,
            ..Usage::default()
        };
        assert!(check(&quota, others, fits).is_ok());
        let message = check(&quota, others, Usage { cpu: 8.0, ..fits }).unwrap_err();
        assert!(
            message.contains("CPU: this asks for 8 cores and your other deployments hold 12 cores, 4 cores over your group's 16 cores"),
            "{message}"
        );
        assert!(!message.contains("memory"), "{message}");
    }
}
