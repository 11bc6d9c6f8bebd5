//! Where a deployment's pods could start now, for a dry run: each pod's GPUs against what each
//! worker has free, placed first-fit as pods are made one after another. Pure: the free GPUs
//! per worker are counted by the caller. CPU and memory are not judged (pods of other
//! namespaces, which the service cannot see, hold them too).

use crate::reservations::GpuCounts;
use serde::Serialize;
use std::collections::BTreeMap;

/// A worker and the GPUs it has free, by resource name.
#[derive(Debug, Clone)]
pub struct Room {
    /// The node's name.
    pub node: String,
    /// Free count by extended resource (`nvidia.com/gpu`).
    pub free: BTreeMap<String, i64>,
}

/// Where the pods would go.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Pods the deployment runs.
    pub replicas: u32,
    /// The worker of each pod that could start now, in order.
    pub nodes: Vec<String>,
    /// Pods that would wait for GPUs (Pending), and why, when some would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// Places `replicas` pods that each hold `per_pod` (some GPUs: pods without are not judged)
/// on `rooms`, first fit.
pub fn place(per_pod: &GpuCounts, replicas: u32, rooms: &[Room]) -> Placement {
    let mut rooms = rooms.to_vec();
    let needs: Vec<(&'static str, i64)> = per_pod
        .iter()
        .map(|(gpu, count)| (gpu.resource_name(), i64::from(*count)))
        .collect();
    let mut nodes = Vec::new();
    for _ in 0..replicas {
        let fits = |room: &Room| {
            needs
                .iter()
                .all(|(resource, n)| room.free.get(*resource).copied().unwrap_or(0) >= *n)
        };
        let Some(room) = rooms.iter_mut().find(|room| fits(room)) else {
            break;
        };
        for (resource, n) in &needs {
            *room.free.entry((*resource).to_owned()).or_default() -= n;
        }
        nodes.push(room.node.clone());
    }
    let placed = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
    let waiting = (placed < replicas).then(|| {
        let need = needs
            .iter()
            .map(|(resource, n)| format!("{n} × {resource}"))
            .collect::<Vec<_>>()
            .join(" and ");
        let left = needs
            .iter()
            .map(|(resource, _)| {
                let on: Vec<String> = rooms
                    .iter()
                    .filter_map(|r| {
                        r.free
                            .get(*resource)
                            .filter(|n| **n > 0)
                            .map(|n| format!("{n} on {}", r.node))
                    })
                    .collect();
                let on = if on.is_empty() {
                    "none".to_owned()
                } else {
                    on.join(", ")
                };
                format!("{resource} free after the pods before it: {on}")
            })
            .collect::<Vec<_>>()
            .join("; ");
        format!(
            "{} of {replicas} pods would wait (Pending) until GPUs are free: each needs {need}; {left}.",
            replicas - placed
        )
    });
    Placement {
        replicas,
        nodes,
        waiting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Gpu;

    fn room(node: &str, free: &[(&str, i64)]) -> Room {
        Room {
            node: node.into(),
            free: free.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect(),
        }
    }

    #[test]
    fn pods_go_first_fit_and_those_that_fit_nowhere_are_explained() {
        let rooms = [
            room("worker-1", &[("nvidia.com/gpu", 4)]),
            room("worker-3", &[("nvidia.com/mig-3g.40gb", 2), ("nvidia.com/gpu", 1)]),
        ];
        let two_m = GpuCounts::from([(Gpu::Mig3g40gb, 2)]);
        let placement = place(&two_m, 2, &rooms);
        assert_eq!(placement.nodes, ["worker-3"]);
        assert_eq!(
            placement.waiting.as_deref(),
            Some(
                "1 of 2 pods would wait (Pending) until GPUs are free: each needs 2 × nvidia.com/mig-3g.40gb; nvidia.com/mig-3g.40gb free after the pods before it: none."
            )
        );
        let one_l = GpuCounts::from([(Gpu::Full, 1)]);
        let placement = place(&one_l, 5, &rooms);
        assert_eq!(
            placement.nodes,
            ["worker-1", "worker-1", "worker-1", "worker-1", "worker-3"]
        );
        assert_eq!(placement.waiting, None);
    }
}
