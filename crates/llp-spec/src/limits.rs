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
