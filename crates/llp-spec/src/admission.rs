//! What was admitted and may not be in the watch caches yet: the per-owner ledger that makes
//! admission one step per owner across replicas. Every deploy, scale-up, restart and pod
//! delete writes its deployment's entry with a `resourceVersion` precondition after checking
//! the owner's totals against the caches *and* the live entries; of two admissions that read
//! the same ledger only one write succeeds, and the other checks again with the winner's entry
//! counted. An entry counts until the caches surely show what it admitted. Pure: the caller
//! reads and writes the ledger object.

use crate::quota::Usage;
use crate::reservations::GpuCounts;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One deployment's admitted footprint, counted until `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// CPU cores its pods ask for together.
    pub cpu: f64,
    /// Memory (GB) its pods ask for together.
    pub memory: f64,
    /// Its GPUs, per profile, all pods together.
    #[serde(default)]
    pub gpus: GpuCounts,
    /// Storage (GiB) of its own claims.
    pub storage: f64,
    /// The shared claims it mounts, by name: storage (GiB).
    #[serde(default)]
    pub shared: BTreeMap<String, f64>,
    /// Until when it counts: by then the caches show it.
    pub until: Timestamp,
}

impl Entry {
    /// What it holds, as the quota counts it (one deployment; shared claims apart).
    pub fn usage(&self) -> Usage {
        Usage {
            deployments: 1,
            cpu: self.cpu,
            memory: self.memory,
            gpus: self.gpus.values().sum(),
            storage: self.storage,
        }
    }
}

/// The entries of one owner, by deployment label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    /// By the deployment's `llp.kitegg.de/deployment` label.
    pub entries: BTreeMap<String, Entry>,
}

impl Ledger {
    /// The ledger kept in an object's `data` (one key per deployment, its entry as JSON);
    /// a value that does not parse is left out (it counted for a moment at most).
    pub fn from_data(data: Option<&BTreeMap<String, String>>) -> Self {
        let entries = data
            .into_iter()
            .flatten()
            .filter_map(|(key, value)| Some((key.clone(), serde_json::from_str(value).ok()?)))
            .collect();
        Self { entries }
    }

    /// The `data` to store.
    pub fn to_data(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .filter_map(|(key, entry)| Some((key.clone(), serde_json::to_string(entry).ok()?)))
            .collect()
    }

    /// The entries that still count at `now`.
    pub fn live(&self, now: Timestamp) -> Self {
        let entries = self
            .entries
            .iter()
            .filter(|(_, e)| e.until > now)
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        Self { entries }
    }

    /// The live entries of `now` with `deployment`'s set to `entry` (`None`: removed).
    pub fn with(&self, now: Timestamp, deployment: &str, entry: Option<Entry>) -> Self {
        let mut next = self.live(now);
        match entry {
            Some(entry) => next.entries.insert(deployment.to_owned(), entry),
            None => next.entries.remove(deployment),
        };
        next
    }
}

/// The larger of two usages, field by field: a deployment counted both in the caches and in
/// the ledger counts as the more it may hold.
pub fn max(a: Usage, b: Usage) -> Usage {
    Usage {
        deployments: a.deployments.max(b.deployments),
        cpu: a.cpu.max(b.cpu),
        memory: a.memory.max(b.memory),
        gpus: a.gpus.max(b.gpus),
        storage: a.storage.max(b.storage),
    }
}

/// Whether `this` has no more of any profile than `held`.
pub fn gpus_within(this: &GpuCounts, held: &GpuCounts) -> bool {
    this.iter().all(|(gpu, n)| *n <= held.get(gpu).copied().unwrap_or(0))
}

/// The larger of two GPU counts, profile by profile.
pub fn max_gpus(a: &GpuCounts, b: &GpuCounts) -> GpuCounts {
    let mut out = a.clone();
    for (gpu, n) in b {
        let held = out.entry(*gpu).or_default();
        *held = (*held).max(*n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::GpuName;

    fn entry(cpu: f64, until: &str) -> Entry {
        Entry {
            cpu,
            memory: 1.0,
            gpus: GpuCounts::from([(GpuName::Full, 1)]),
            storage: 2.0,
            shared: BTreeMap::from([("sd-abc-data-shared".to_owned(), 5.0)]),
            until: until.parse().unwrap(),
        }
    }

    #[test]
    fn a_ledger_survives_its_object_and_drops_what_does_not_parse() {
        let ledger = Ledger {
            entries: BTreeMap::from([("a".to_owned(), entry(2.0, "2026-01-01T10:00:00Z"))]),
        };
        let mut data = ledger.to_data();
        assert_eq!(Ledger::from_data(Some(&data)), ledger);
        data.insert("b".into(), "{not json".into());
        assert_eq!(Ledger::from_data(Some(&data)), ledger);
        assert_eq!(Ledger::from_data(None), Ledger::default());
    }

    #[test]
    fn entries_count_until_their_time_and_writing_one_drops_the_expired() {
        let now: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let ledger = Ledger {
            entries: BTreeMap::from([
                ("old".to_owned(), entry(1.0, "2026-01-01T09:59:59Z")),
                ("edge".to_owned(), entry(1.0, "2026-01-01T10:00:00Z")),
                ("new".to_owned(), entry(1.0, "2026-01-01T10:01:00Z")),
            ]),
        };
        assert_eq!(ledger.live(now).entries.keys().collect::<Vec<_>>(), ["new"]);
        let written = ledger.with(now, "mine", Some(entry(3.0, "2026-01-01T10:01:30Z")));
        assert_eq!(written.entries.keys().collect::<Vec<_>>(), ["mine", "new"]);
        assert_eq!(
            written.with(now, "new", None).entries.keys().collect::<Vec<_>>(),
            ["mine"]
        );
    }

    #[test]
    fn the_larger_counts_field_by_field() {
        let a = Usage {
            deployments: 1,
            cpu: 4.0,
            memory: 1.0,
            gpus: 0,
            storage: 10.0,
        };
        let b = entry(2.0, "2026-01-01T10:00:00Z").usage();
        assert_eq!(
            max(a, b),
            Usage {
                deployments: 1,
                cpu: 4.0,
                memory: 1.0,
                gpus: 1,
                storage: 10.0
            }
        );
        let more = GpuCounts::from([(GpuName::Full, 2), (GpuName::Mig1g10gb, 1)]);
        assert_eq!(max_gpus(&entry(1.0, "2026-01-01T10:00:00Z").gpus, &more), more);
    }
}
