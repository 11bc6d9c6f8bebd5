//! Resource limits per group of users.
//!
//! Everyone gets [`Limits::default`] (the seed's numbers); a configured group such as
//! `management` may get larger maxima. A user in several groups gets, for each limit, the
//! largest any of their groups allows. Admins are not exempt: they get their groups' limits.

use crate::spec::Gpu;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Defaults and maxima that validation applies to one user.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// CPU cores of a container that sets none.
    pub default_cpu: u32,
    /// Largest `cpu` of one container.
    pub max_cpu: u32,
    /// Memory (GB) of a container that sets none.
    pub default_memory: f64,
    /// Largest `memory` (GB) of one container.
    pub max_memory: f64,
    /// Largest `gpuCount` of one container.
    pub max_gpu_count: u32,
    /// Largest `replicas` (and `?scale=`).
    pub max_replicas: u32,
    /// The GPU kinds (profiles) that may be asked for, e.g. only MIG slices for students.
    pub gpus: GpuSet,
    /// Whether containers may run as root (`user: 0` or `fsUser: 0`).
    pub allow_root: bool,
    /// What one user's deployments may hold together.
    pub quota: crate::quota::Quota,
}

/// A set of GPU kinds; in configuration, a list of resource names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<Gpu>", into = "Vec<Gpu>")]
pub struct GpuSet(u8);

impl GpuSet {
    /// Every kind.
    pub const ALL: GpuSet = GpuSet(0b1111);

    fn bit(gpu: Gpu) -> u8 {
        1 << Gpu::ALL.iter().position(|g| *g == gpu).unwrap_or(0)
    }

    /// Whether `gpu` is in the set.
    pub fn contains(self, gpu: Gpu) -> bool {
        self.0 & Self::bit(gpu) != 0
    }

    /// The kinds in either set.
    pub fn union(self, other: GpuSet) -> GpuSet {
        GpuSet(self.0 | other.0)
    }

    /// The kinds in the set, whole GPU first.
    pub fn iter(self) -> impl Iterator<Item = Gpu> {
        Gpu::ALL.into_iter().filter(move |g| self.contains(*g))
    }
}

impl From<Vec<Gpu>> for GpuSet {
    fn from(gpus: Vec<Gpu>) -> Self {
        GpuSet(gpus.into_iter().fold(0, |set, gpu| set | GpuSet::bit(gpu)))
    }
}

impl From<GpuSet> for Vec<Gpu> {
    fn from(set: GpuSet) -> Self {
        set.iter().collect()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            default_cpu: 4,
            max_cpu: 32,
            default_memory: 16.0,
            max_memory: 64.0,
            max_gpu_count: 2,
            max_replicas: 16,
            gpus: GpuSet::ALL,
            allow_root: false,
            quota: crate::quota::Quota::default(),
        }
    }
}

impl Limits {
    /// The smallest memory a container may ask for, in GB, whatever the group.
    pub const MIN_MEMORY: f64 = 0.1;

    /// The larger of two limits, field by field (defaults are taken from `self`).
    fn widen(self, other: Limits) -> Limits {
        Limits {
            max_cpu: self.max_cpu.max(other.max_cpu),
            max_memory: self.max_memory.max(other.max_memory),
            max_gpu_count: self.max_gpu_count.max(other.max_gpu_count),
            max_replicas: self.max_replicas.max(other.max_replicas),
            gpus: self.gpus.union(other.gpus),
            allow_root: self.allow_root || other.allow_root,
            quota: self.quota.widen(other.quota),
            ..self
        }
    }
}

/// The limits of every group, and the ones everybody gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsTable {
    /// What applies to every user.
    pub default: Limits,
    /// Larger maxima for members of a group, by group name.
    pub groups: BTreeMap<String, Limits>,
}

impl Default for LimitsTable {
    /// The seed's limits for everyone, and upstream's larger maxima for `management`.
    fn default() -> Self {
        let management = Limits {
            max_cpu: 256,
            max_memory: 512.0,
            max_gpu_count: 8,
            ..Limits::default()
        };
        Self {
            default: Limits::default(),
            groups: BTreeMap::from([("management".to_owned(), management)]),
        }
    }
}

impl LimitsTable {
    /// A group's maximum or quota below the default's, which would do nothing (a group only
    /// raises what everybody gets: [`LimitsTable::for_groups`] takes the larger), each as a
    /// sentence that names the setting and the fix.
    pub fn lowered_by_groups(&self) -> Vec<String> {
        let d = &self.default;
        let mut found = Vec::new();
        for (group, g) in &self.groups {
            let q = (&g.quota, &d.quota);
            let below: [(&str, bool, String, String); 9] = [
                (
                    "max_cpu",
                    g.max_cpu < d.max_cpu,
                    g.max_cpu.to_string(),
                    d.max_cpu.to_string(),
                ),
                (
                    "max_memory",
                    g.max_memory < d.max_memory,
                    g.max_memory.to_string(),
                    d.max_memory.to_string(),
                ),
                (
                    "max_gpu_count",
                    g.max_gpu_count < d.max_gpu_count,
                    g.max_gpu_count.to_string(),
                    d.max_gpu_count.to_string(),
                ),
                (
                    "max_replicas",
                    g.max_replicas < d.max_replicas,
                    g.max_replicas.to_string(),
                    d.max_replicas.to_string(),
                ),
                (
                    "quota.deployments",
                    q.0.deployments < q.1.deployments,
                    q.0.deployments.to_string(),
                    q.1.deployments.to_string(),
                ),
                ("quota.cpu", q.0.cpu < q.1.cpu, q.0.cpu.to_string(), q.1.cpu.to_string()),
                (
                    "quota.memory",
                    q.0.memory < q.1.memory,
                    q.0.memory.to_string(),
                    q.1.memory.to_string(),
                ),
                (
                    "quota.gpus",
                    q.0.gpus < q.1.gpus,
                    q.0.gpus.to_string(),
                    q.1.gpus.to_string(),
                ),
                (
                    "quota.storage",
                    q.0.storage < q.1.storage,
                    q.0.storage.to_string(),
                    q.1.storage.to_string(),
                ),
            ];
            for (field, lower, theirs, default) in below {
                if lower {
                    found.push(format!(
                        "limits.groups.{group}.{field} = {theirs} is below limits.default.{field} = {default}: a group only raises what everybody gets, so it would have no effect. Lower limits.default.{field} (and raise it for the other groups) or remove the setting."
                    ));
                }
            }
        }
        found
    }

    /// The limits of a user who belongs to `groups`.
    pub fn for_groups<S: AsRef<str>>(&self, groups: &[S]) -> Limits {
        groups
            .iter()
            .filter_map(|g| self.groups.get(g.as_ref()))
            .fold(self.default, |acc, group| acc.widen(*group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_without_groups_gets_the_defaults() {
        assert_eq!(LimitsTable::default().for_groups::<&str>(&[]), Limits::default());
    }

    #[test]
    fn a_member_of_management_gets_its_larger_maxima() {
        let limits = LimitsTable::default().for_groups(&["students", "management"]);
        assert_eq!(
            (limits.max_cpu, limits.max_memory, limits.max_gpu_count),
            (256, 512.0, 8)
        );
        assert_eq!(limits.default_cpu, 4, "defaults stay those of everybody");
    }

    #[test]
    fn a_group_cannot_lower_a_maximum() {
        let mut table = LimitsTable::default();
        table.groups.insert(
            "tiny".into(),
            Limits {
                max_cpu: 1,
                ..Limits::default()
            },
        );
        assert_eq!(table.for_groups(&["tiny"]).max_cpu, 32);
    }

    #[test]
    fn a_group_setting_below_the_default_is_named_with_the_fix() {
        let mut table = LimitsTable::default();
        assert!(table.lowered_by_groups().is_empty(), "management only raises");
        table.groups.insert(
            "tiny".into(),
            Limits {
                max_cpu: 1,
                quota: crate::quota::Quota {
                    storage: 10,
                    ..crate::quota::Quota::default()
                },
                ..Limits::default()
            },
        );
        let found = table.lowered_by_groups();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("limits.groups.tiny.max_cpu = 1 is below limits.default.max_cpu = 32"),
            "{}",
            found[0]
        );
        assert!(
            found[1].starts_with("limits.groups.tiny.quota.storage = 10"),
            "{}",
            found[1]
        );
    }

    #[test]
    fn gpu_profiles_are_a_list_of_resources_and_groups_add_to_them() {
        let table: LimitsTable = serde_json::from_value(serde_json::json!({
            "default": {"gpus": ["nvidia.com/mig-1g.10gb", "nvidia.com/mig-2g.20gb"]},
            "groups": {"staff": {"gpus": ["nvidia.com/gpu"]}}
        }))
        .unwrap();
        let students = table.for_groups::<&str>(&[]);
        assert!(students.gpus.contains(Gpu::Mig1g10gb) && !students.gpus.contains(Gpu::Full));
        let staff = table.for_groups(&["staff"]);
        assert_eq!(
            staff.gpus.iter().collect::<Vec<_>>(),
            [Gpu::Full, Gpu::Mig2g20gb, Gpu::Mig1g10gb]
        );
        assert_eq!(Limits::default().gpus, GpuSet::ALL);
        let wrong = serde_json::from_value::<Limits>(serde_json::json!({"gpus": ["nvidia.com/h100"]}));
        assert!(wrong.unwrap_err().to_string().contains("nvidia.com/h100"));
    }
}
