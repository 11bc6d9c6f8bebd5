//! Placing pods on nodes: the node selector must match and the node's allocatable resources
//! must cover the requests of the pods already there plus this one. When no node fits, the
//! message is worded like the real scheduler's `FailedScheduling` event.

use super::quantity;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Where a pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On this node.
    Node(String),
    /// Nowhere; the message says why.
    Unschedulable(String),
}

/// The resources a pod requests: its containers' requests (or limits) summed.
pub fn requests(pod: &Value) -> BTreeMap<String, f64> {
    let mut total = BTreeMap::new();
    for container in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let resources = &container["resources"];
        let asked = resources["requests"].as_object().or(resources["limits"].as_object());
        for (name, value) in asked.into_iter().flatten() {
            let amount = value.as_str().and_then(quantity::parse).unwrap_or(0.0);
            *total.entry(name.clone()).or_insert(0.0) += amount;
        }
    }
    total
}

/// What the pods bound to each node request, by node name.
pub type Usage = HashMap<String, BTreeMap<String, f64>>;

/// The usage of each node by `bound` pods.
pub fn usage(bound: &[Arc<Value>]) -> Usage {
    let mut usage = Usage::new();
    // A finished pod holds nothing any more.
    let running = bound
        .iter()
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")));
    for pod in running {
        if let Some(node) = pod["spec"]["nodeName"].as_str() {
            add(&mut usage, node, pod);
        }
    }
    usage
}

/// Counts `pod`'s requests against `node`.
pub fn add(usage: &mut Usage, node: &str, pod: &Value) {
    let used = usage.entry(node.to_owned()).or_default();
    for (resource, amount) in requests(pod) {
        *used.entry(resource).or_insert(0.0) += amount;
    }
}

/// Picks a node for `pod` among `nodes`, given what is already used on each.
pub fn place(pod: &Value, nodes: &[Arc<Value>], usage: &Usage) -> Placement {
    let wanted = requests(pod);
    let selector = pod["spec"]["nodeSelector"].as_object();
    let mut mismatched = 0;
    let mut insufficient: BTreeMap<String, usize> = BTreeMap::new();
    let mut tainted: BTreeMap<String, usize> = BTreeMap::new();
    for node in nodes {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        let labels = &node["metadata"]["labels"];
        if !selector.into_iter().flatten().all(|(k, v)| labels[k] == *v) {
            mismatched += 1;
            continue;
        }
        if let Some(taint) = untolerated_taint(pod, node) {
            *tainted.entry(taint).or_insert(0) += 1;
            continue;
        }
        let nothing = BTreeMap::new();
        let used = usage.get(name).unwrap_or(&nothing);
        let short: Vec<&String> = wanted
            .iter()
            .filter(|(resource, amount)| {
                let allocatable = node["status"]["allocatable"][resource.as_str()]
                    .as_str()
                    .and_then(quantity::parse)
                    .unwrap_or(0.0);
                used.get(*resource).copied().unwrap_or(0.0) + **amount > allocatable + 1e-9 && **amount > 0.0
            })
            .map(|(resource, _)| resource)
            .collect();
        if short.is_empty() {
            return Placement::Node(name.to_owned());
        }
        for resource in short {
            *insufficient.entry(resource.clone()).or_insert(0) += 1;
        }
    }
    Placement::Unschedulable(message(nodes.len(), mismatched, &tainted, &insufficient))
}

/// The first NoSchedule/NoExecute taint of `node` that no toleration of `pod` matches, as
/// the scheduler prints it (`{nvidia.com/gpu: }`).
fn untolerated_taint(pod: &Value, node: &Value) -> Option<String> {
    let tolerations = pod["spec"]["tolerations"].as_array();
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|taint| {
            let effect = taint["effect"].as_str().unwrap_or_default();
            if !matches!(effect, "NoSchedule" | "NoExecute") {
                return None;
            }
            let tolerated = tolerations.into_iter().flatten().any(|t| {
                let key_matches = t["key"].as_str().is_none_or(str::is_empty) && t["operator"] == "Exists"
                    || t["key"] == taint["key"]
                        && (t["operator"] == "Exists"
                            || t["value"].as_str().unwrap_or_default() == taint["value"].as_str().unwrap_or_default());
                key_matches && t["effect"].as_str().is_none_or(|e| e.is_empty() || e == effect)
            });
            (!tolerated).then(|| {
                format!(
                    "{{{}: {}}}",
                    taint["key"].as_str().unwrap_or_default(),
                    taint["value"].as_str().unwrap_or_default()
                )
            })
        })
}

/// `0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 3 Insufficient nvidia.com/gpu. preemption: …`
fn message(
    total: usize,
    mismatched: usize,
    tainted: &BTreeMap<String, usize>,
    insufficient: &BTreeMap<String, usize>,
) -> String {
    let mut reasons: Vec<String> = insufficient
        .iter()
        .map(|(r, n)| format!("{n} Insufficient {r}"))
        .chain(
            tainted
                .iter()
                .map(|(t, n)| format!("{n} node(s) had untolerated taint {t}")),
        )
        .collect();
    if mismatched > 0 {
        reasons.push(format!(
            "{mismatched} node(s) didn't match Pod's node affinity/selector"
        ));
    }
    reasons.sort();
    let mut preemption = Vec::new();
    let unhelpful = mismatched + tainted.values().sum::<usize>();
    if unhelpful > 0 {
        preemption.push(format!("{unhelpful} Preemption is not helpful for scheduling"));
    }
    let starved = total - unhelpful;
    if starved > 0 {
        preemption.push(format!("{starved} No preemption victims found for incoming pod"));
    }
    preemption.sort();
    format!(
        "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {}.",
        reasons.join(", "),
        preemption.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::cluster::NodeSpec;
    use serde_json::json;

    fn pod(gpus: u32, node: Option<&str>) -> Arc<Value> {
        let mut limits = json!({"cpu": "4", "memory": "16Gi"});
        if gpus > 0 {
            limits["nvidia.com/gpu"] = json!(gpus.to_string());
        }
        Arc::new(json!({"spec": {
            "nodeName": node,
            "nodeSelector": {"node-role.kubernetes.io/worker": "worker"},
            "containers": [{"name": "c", "resources": {"limits": limits, "requests": limits}}],
        }}))
    }

    fn nodes() -> Vec<Arc<Value>> {
        let mut cp = NodeSpec::worker("cp", &[]);
        cp.labels.remove("node-role.kubernetes.io/worker");
        [
            cp,
            NodeSpec::worker("w1", &[("nvidia.com/gpu", 2)]),
            NodeSpec::worker("w2", &[]),
        ]
        .iter()
        .map(|n| Arc::new(n.to_object()))
        .collect()
    }

    #[test]
    fn a_pod_goes_where_its_gpu_is() {
        assert_eq!(
            place(&pod(1, None), &nodes(), &Usage::new()),
            Placement::Node("w1".into())
        );
        assert_eq!(
            place(&pod(0, None), &nodes(), &Usage::new()),
            Placement::Node("w1".into())
        );
    }

    #[test]
    fn a_pod_that_fits_nowhere_is_explained_like_the_scheduler_does() {
        let bound = vec![pod(2, Some("w1"))];
        let Placement::Unschedulable(message) = place(&pod(1, None), &nodes(), &usage(&bound)) else {
            panic!("placed")
        };
        assert_eq!(
            message,
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient nvidia.com/gpu. \
             preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
        );
    }
}
