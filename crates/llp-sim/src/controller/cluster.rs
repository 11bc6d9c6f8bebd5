//! What the simulated cluster consists of (nodes, namespaces) and how its containers behave
//! (timings, and image markers that make them crash, fail to pull or run out of memory).

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// The GPU resources nodes may offer.
pub const GPU_RESOURCES: [&str; 4] = [
    "nvidia.com/gpu",
    "nvidia.com/mig-1g.10gb",
    "nvidia.com/mig-2g.20gb",
    "nvidia.com/mig-3g.40gb",
];

/// One node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// Labels (the worker role label makes it schedulable for llp-k8s pods).
    pub labels: BTreeMap<String, String>,
    /// Allocatable CPU cores.
    pub cpu: u32,
    /// Allocatable memory in GiB.
    pub memory_gi: u32,
    /// How many pods it may run (a kubelet's `maxPods`, 110 by default).
    pub pods: u32,
    /// Allocatable extended resources (GPUs), by resource name.
    pub gpus: BTreeMap<String, u32>,
}

impl NodeSpec {
    /// A worker node with `gpus`.
    pub fn worker(name: &str, gpus: &[(&str, u32)]) -> Self {
        Self {
            name: name.to_owned(),
            labels: BTreeMap::from([
                ("kubernetes.io/hostname".to_owned(), name.to_owned()),
                ("node-role.kubernetes.io/worker".to_owned(), "worker".to_owned()),
            ]),
            cpu: 64,
            memory_gi: 256,
            pods: 110,
            gpus: gpus.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect(),
        }
    }

    /// A hash of the node's name (FNV-1a, seeded), for identities that stay the same.
    fn hash(&self, seed: u64) -> u64 {
        self.name
            .bytes()
            .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    }

    /// A stable address in 10.0.0.0/8 of the node's name.
    fn internal_ip(&self) -> String {
        let [.., b, c, d] = self.hash(0xcbf2_9ce4_8422_2325).to_be_bytes();
        format!("10.{b}.{c}.{}", d.max(1))
    }

    /// A stable machine id of the node's name (32 hex digits, as `/etc/machine-id`).
    fn id(&self) -> String {
        format!("{:016x}{:016x}", self.hash(1), self.hash(2))
    }

    /// The Node object.
    pub fn to_object(&self) -> Value {
        let mut allocatable = json!({"cpu": self.cpu.to_string(), "memory": format!("{}Gi", self.memory_gi), "pods": self.pods.to_string()});
        for (resource, count) in &self.gpus {
            allocatable[resource] = json!(count.to_string());
        }
        json!({
            "metadata": {"name": self.name, "labels": self.labels},
            "spec": {},
            "status": {
                "capacity": allocatable.clone(),
                "allocatable": allocatable,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                // What a kubelet reports of itself, so that clients reading a node's address
                // or versions find them as on a real node.
                "addresses": [
                    {"type": "InternalIP", "address": self.internal_ip()},
                    {"type": "Hostname", "address": self.name},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.32.0-llp-sim", "kubeProxyVersion": "", "operatingSystem": "linux",
                    "architecture": "amd64", "osImage": "llp-sim", "kernelVersion": "6.1.0-llp-sim",
                    "containerRuntimeVersion": "llp-sim://1", "machineID": self.id(), "systemUUID": self.id(),
                    "bootID": self.id(),
                },
            },
        })
    }
}

/// How long simulated steps take.
#[derive(Debug, Clone, PartialEq)]
pub struct Timings {
    /// Between controller passes.
    pub tick: Duration,
    /// Pulling an image (the pod shows ContainerCreating meanwhile).
    pub pull: Duration,
    /// From a container's start until a crashing image exits.
    pub crash_after: Duration,
    /// From a container's start until it exits 0, in a pod that runs to completion
    /// (`restartPolicy` `OnFailure` or `Never`: a Job's).
    pub complete_after: Duration,
    /// First back-off after a crash; doubles per restart, up to 8 times this.
    pub backoff: Duration,
    /// Between the log lines a running container writes.
    pub log_every: Duration,
    /// From a pod's deletion until its containers have stopped and it is gone (it shows
    /// Terminating meanwhile).
    pub terminate: Duration,
    /// How long an Event lives after its last write (kube-apiserver's `--event-ttl`).
    pub event_ttl: Duration,
    /// Between compactions of the history (kube-apiserver's `--etcd-compaction-interval`):
    /// a watch resumed from a version older than one to two of these is 410 Gone.
    pub compaction: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(200),
            pull: Duration::from_millis(1500),
            crash_after: Duration::from_secs(2),
            complete_after: Duration::from_secs(5),
            backoff: Duration::from_secs(2),
            log_every: Duration::from_secs(5),
            terminate: Duration::from_secs(1),
            event_ttl: Duration::from_secs(3600),
            compaction: Duration::from_secs(300),
        }
    }
}

impl Timings {
    /// Timings for tests: everything happens within a few hundred milliseconds.
    pub fn fast() -> Self {
        Self {
            tick: Duration::from_millis(20),
            pull: Duration::from_millis(50),
            crash_after: Duration::from_millis(100),
            complete_after: Duration::from_millis(300),
            backoff: Duration::from_millis(100),
            log_every: Duration::from_millis(200),
            terminate: Duration::from_millis(100),
            event_ttl: Duration::from_secs(3600),
            compaction: Duration::from_secs(300),
        }
    }
}

/// The simulated cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    /// Its nodes.
    pub nodes: Vec<NodeSpec>,
    /// Namespaces that exist from the start.
    pub namespaces: Vec<String>,
    /// An image whose reference contains this crashes repeatedly (CrashLoopBackOff).
    pub crash_marker: String,
    /// An image whose reference contains this cannot be pulled (ImagePullBackOff).
    pub pull_error_marker: String,
    /// An image whose reference contains this is killed for memory (OOMKilled).
    pub oom_marker: String,
    /// Timings.
    pub timings: Timings,
}

impl Default for ClusterSpec {
    /// A control-plane node and three workers with the four GPU kinds between them.
    fn default() -> Self {
        let mut control_plane = NodeSpec::worker("control-plane", &[]);
        control_plane.labels.remove("node-role.kubernetes.io/worker");
        control_plane
            .labels
            .insert("node-role.kubernetes.io/control-plane".into(), String::new());
        Self {
            nodes: vec![
                control_plane,
                NodeSpec::worker("worker-1", &[("nvidia.com/gpu", 4)]),
                NodeSpec::worker(
                    "worker-2",
                    &[("nvidia.com/mig-1g.10gb", 7), ("nvidia.com/mig-2g.20gb", 3)],
                ),
                NodeSpec::worker("worker-3", &[("nvidia.com/mig-3g.40gb", 2), ("nvidia.com/gpu", 1)]),
            ],
            namespaces: vec!["default".into(), "kube-system".into(), "services".into()],
            crash_marker: "crash".into(),
            pull_error_marker: "no-such-image".into(),
            oom_marker: "oom".into(),
            timings: Timings::default(),
        }
    }
}

impl ClusterSpec {
    /// The default cluster, or a control-plane node and `workers` workers (default 3) with
    /// `gpus` each (default `nvidia.com/gpu=2`): the `--nodes`/`--gpus` flags of `llp-k8s sim`
    /// and `llp-testbed up`. The error names the flag.
    pub fn with_workers(workers: Option<u32>, gpus: Option<&str>) -> Result<Self, String> {
        let mut cluster = ClusterSpec::default();
        if workers.is_none() && gpus.is_none() {
            return Ok(cluster);
        }
        let gpus = parse_gpus(gpus.unwrap_or("nvidia.com/gpu=2")).map_err(|e| format!("--gpus: {e}"))?;
        let gpus: Vec<(&str, u32)> = gpus.iter().map(|(r, n)| (r.as_str(), *n)).collect();
        let control_plane = cluster.nodes.remove(0);
        cluster.nodes = std::iter::once(control_plane)
            .chain((1..=workers.unwrap_or(3)).map(|i| NodeSpec::worker(&format!("worker-{i}"), &gpus)))
            .collect();
        Ok(cluster)
    }
}

/// Parses `nvidia.com/gpu=2,nvidia.com/mig-1g.10gb=7` into resources and counts.
pub fn parse_gpus(spec: &str) -> Result<Vec<(String, u32)>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (resource, count) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected RESOURCE=COUNT"))?;
            if !GPU_RESOURCES.contains(&resource) {
                return Err(format!("`{resource}` is not one of {}", GPU_RESOURCES.join(", ")));
            }
            let count = count.parse().map_err(|_| format!("`{count}` is not a count"))?;
            Ok((resource.to_owned(), count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_specs_parse_and_reject_unknown_resources() {
        assert_eq!(
            parse_gpus("nvidia.com/gpu=2, nvidia.com/mig-1g.10gb=7").unwrap().len(),
            2
        );
        assert!(parse_gpus("amd.com/gpu=1").is_err());
        assert!(parse_gpus("nvidia.com/gpu").is_err());
        assert_eq!(parse_gpus("").unwrap(), vec![]);
    }

    #[test]
    fn a_node_reports_its_addresses_and_a_kubelets_node_info_the_same_each_time() {
        let node = NodeSpec::worker("worker-1", &[]).to_object();
        let types: Vec<&str> = node["status"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["InternalIP", "Hostname"]);
        let info = node["status"]["nodeInfo"].as_object().unwrap();
        for field in [
            "machineID",
            "systemUUID",
            "bootID",
            "kernelVersion",
            "osImage",
            "containerRuntimeVersion",
        ] {
            assert!(info[field].as_str().is_some_and(|v| !v.is_empty()), "{field}");
        }
        assert_eq!(node, NodeSpec::worker("worker-1", &[]).to_object(), "stable");
        assert_ne!(
            node["status"]["addresses"][0],
            NodeSpec::worker("worker-2", &[]).to_object()["status"]["addresses"][0],
            "one address each"
        );
    }
}
