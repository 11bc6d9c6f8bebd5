//! Deployments whose record is gone. A record deleted through this service takes its
//! deployment along; one deleted in the LLP itself (or in a restored database) leaves objects
//! running that no one can see or stop. The reconciler ([`reconciler`]) finds them by
//! comparing the deployment labels in the cluster with the ids the record source lists (the
//! `directus` source reads them with the service token), and removes a deployment once its
//! record has been missing for a grace period. `GET /kubernetes/orphans` lists what it found
//! and when each will go, for admins; with `dry_run` nothing is removed.
//!
//! This module is the pure part: what counts as a deployment in the cluster, which of them
//! are orphans, and when they are due.

pub mod reconciler;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use llp_spec::names::{APP_LABEL, DEPLOYMENT_LABEL, OWNER_LABEL, SHARED_USER_PREFIX, label_value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

/// `[orphans]` in the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrphanSettings {
    /// Whether the reconciler runs (the listing answers either way).
    pub enabled: bool,
    /// List and log orphans, never remove them.
    pub dry_run: bool,
    /// How long a record must have been missing before its deployment is removed: a record
    /// the LLP API lists again in time (a restore, a permission fixed) keeps everything.
    pub grace_seconds: u64,
    /// How often the reconciler looks.
    pub check_seconds: u64,
    /// A look that finds more than this share of the deployments orphaned (and more than
    /// [`HELD_MINIMUM`]) removes nothing: that is a service token that lost its read access or
    /// a wrong collection, more likely than that many deletions. 1.0 switches the check off.
    pub hold_above_share: f64,
}

impl Default for OrphanSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            dry_run: false,
            grace_seconds: 600,
            check_seconds: 60,
            hold_above_share: 0.5,
        }
    }
}

/// Below this many orphans at once, the share check does not hold anything back (a lab with
/// three deployments may delete two records).
pub const HELD_MINIMUM: usize = 3;

/// The settings and what the reconciler has seen, shared with the listing route.
#[derive(Debug, Default)]
pub struct OrphanPolicy {
    /// `[orphans]`.
    pub settings: OrphanSettings,
    /// When each orphan was first seen without a record (deployment label → time).
    seen: Mutex<BTreeMap<String, Timestamp>>,
}

impl OrphanPolicy {
    /// A policy with nothing seen yet.
    pub fn new(settings: OrphanSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            seen: Mutex::default(),
        })
    }

    /// Judges `found` against the `records` at `now`; with `remember`, orphans seen for the
    /// first time start their grace period now (the reconciler), otherwise the listing only
    /// looks.
    pub fn judge(&self, found: &Found, records: &[String], now: Timestamp, remember: bool) -> Survey {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut view = seen.clone();
        let survey = judge(found, records, &mut view, now, &self.settings);
        if remember {
            *seen = view;
        }
        survey
    }
}

/// One deployment's objects in the cluster, by deployment label.
pub type Found = BTreeMap<String, Remains>;

/// What is in the cluster of one deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Remains {
    /// Its base name (the StatefulSet's, Job's, Secret's and ConfigMap's name), when an
    /// object says it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The owner label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `Kind name` of each object.
    pub objects: Vec<String>,
}

/// Collects `(kind, metadata)` of managed objects into deployments. A shared claim counts
/// for each deployment that declared it.
pub fn collect<'a>(objects: impl IntoIterator<Item = (&'a str, &'a ObjectMeta)>) -> Found {
    let mut found = Found::new();
    for (kind, meta) in objects {
        let Some(labels) = meta.labels.as_ref() else {
            continue;
        };
        let name = meta.name.as_deref().unwrap_or_default();
        let mut add = |deployment: &str, base: Option<&String>| {
            let remains = found.entry(deployment.to_owned()).or_default();
            if remains.base.is_none() {
                remains.base = base.cloned();
            }
            if remains.owner.is_none() {
                remains.owner = labels.get(OWNER_LABEL).cloned();
            }
            remains.objects.push(format!("{kind} {name}"));
        };
        if let Some(deployment) = labels.get(DEPLOYMENT_LABEL) {
            // Secrets and ConfigMaps carry no `app` label: their name is the base.
            let base = labels.get(APP_LABEL).cloned().or_else(|| match kind {
                "Secret" | "ConfigMap" | "StatefulSet" | "Job" => meta.name.clone(),
                _ => None,
            });
            add(deployment, base.as_ref());
        }
        for key in labels.keys() {
            if let Some(deployment) = key.strip_prefix(SHARED_USER_PREFIX) {
                add(deployment, None);
            }
        }
    }
    found
}

/// What one look found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Survey {
    /// Deployments in the cluster.
    pub deployments: usize,
    /// Records the source listed.
    pub records: usize,
    /// Deployments without a record, oldest first.
    pub orphans: Vec<Orphan>,
    /// Why nothing is removed this time, when the share check holds the removal back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

/// A deployment without a record.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    /// Its deployment label (the record id, or a hash of it).
    pub deployment: String,
    /// What is left of it.
    #[serde(flatten)]
    pub remains: Remains,
    /// When its record was first found missing (RFC 3339).
    #[schema(value_type = String)]
    pub missing_since: Timestamp,
    /// When it will be removed (RFC 3339), unless its record comes back.
    #[schema(value_type = String)]
    pub remove_after: Timestamp,
    /// Whether it is due now.
    pub due: bool,
}

/// Which of `found` have no record among `records`, given when each was first seen missing
/// (`seen`, updated: new orphans start now, deployments whose record is back are forgotten).
pub fn judge(
    found: &Found,
    records: &[String],
    seen: &mut BTreeMap<String, Timestamp>,
    now: Timestamp,
    settings: &OrphanSettings,
) -> Survey {
    let live: HashSet<String> = records.iter().map(|id| label_value(id)).collect();
    let grace = SignedDuration::from_secs(i64::try_from(settings.grace_seconds).unwrap_or(i64::MAX));
    seen.retain(|deployment, _| found.contains_key(deployment) && !live.contains(deployment));
    let mut orphans: Vec<Orphan> = found
        .iter()
        .filter(|(deployment, _)| !live.contains(*deployment))
        .map(|(deployment, remains)| {
            let since = *seen.entry(deployment.clone()).or_insert(now);
            let remove_after = since.saturating_add(grace).unwrap_or(Timestamp::MAX);
            Orphan {
                deployment: deployment.clone(),
                remains: remains.clone(),
                missing_since: since,
                remove_after,
                due: remove_after <= now,
            }
        })
        .collect();
    orphans.sort_by(|a, b| (a.missing_since, &a.deployment).cmp(&(b.missing_since, &b.deployment)));
    let share = orphans.len() as f64 / found.len().max(1) as f64;
    let held = (orphans.len() >= HELD_MINIMUM && share > settings.hold_above_share).then(|| {
        format!(
            "{} of {} deployments have no record: more than orphans.hold_above_share ({}) of them, so none is removed. \
             Check that the service token may read every deployment record; raise the setting if they were really deleted.",
            orphans.len(),
            found.len(),
            settings.hold_above_share
        )
    });
    if held.is_some() {
        for orphan in &mut orphans {
            orphan.due = false;
        }
    }
    Survey {
        deployments: found.len(),
        records: records.len(),
        orphans,
        held,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            ..ObjectMeta::default()
        }
    }

    fn found(deployments: &[&str]) -> Found {
        deployments
            .iter()
            .map(|d| ((*d).to_owned(), Remains::default()))
            .collect()
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn settings(grace_seconds: u64) -> OrphanSettings {
        OrphanSettings {
            grace_seconds,
            ..OrphanSettings::default()
        }
    }

    #[test]
    fn objects_are_grouped_by_deployment_and_shared_claims_count_for_each_user() {
        let set = meta(
            "sd-7",
            &[(DEPLOYMENT_LABEL, "7"), (APP_LABEL, "sd-7"), (OWNER_LABEL, "alice")],
        );
        let secret = meta("sd-7", &[(DEPLOYMENT_LABEL, "7"), (OWNER_LABEL, "alice")]);
        let lonely_secret = meta("sd-9", &[(DEPLOYMENT_LABEL, "9"), (OWNER_LABEL, "bob")]);
        let shared = meta(
            "sd-abc-data-shared",
            &[
                (OWNER_LABEL, "alice"),
                ("shared.llp.kitegg.de/7", "true"),
                ("shared.llp.kitegg.de/8", "true"),
            ],
        );
        let found = collect([
            ("StatefulSet", &set),
            ("Secret", &secret),
            ("Secret", &lonely_secret),
            ("PersistentVolumeClaim", &shared),
        ]);
        assert_eq!(found.len(), 3);
        assert_eq!(found["7"].base.as_deref(), Some("sd-7"));
        assert_eq!(
            found["7"].objects,
            [
                "StatefulSet sd-7",
                "Secret sd-7",
                "PersistentVolumeClaim sd-abc-data-shared"
            ]
        );
        assert_eq!(found["9"].base.as_deref(), Some("sd-9"), "a Secret's name is the base");
        assert_eq!(found["8"].base, None, "only a shared claim says nothing of the base");
        assert_eq!(found["8"].owner.as_deref(), Some("alice"));
    }

    #[test]
    fn an_orphan_is_due_after_the_grace_period_and_forgotten_when_its_record_is_back() {
        let found = found(&["1", "2", "3", "4"]);
        let records = ["1".to_owned(), "2".to_owned(), "3".to_owned()];
        let mut seen = BTreeMap::new();
        let first = judge(&found, &records, &mut seen, at(0), &settings(600));
        assert_eq!(first.orphans.len(), 1);
        assert_eq!(first.orphans[0].deployment, "4");
        assert_eq!(first.orphans[0].remove_after, at(600));
        assert!(!first.orphans[0].due);
        let later = judge(&found, &records, &mut seen, at(600), &settings(600));
        assert!(later.orphans[0].due);
        assert_eq!(
            later.orphans[0].missing_since,
            at(0),
            "the clock started at the first look"
        );
        // The record is listed again: the clock starts over if it goes missing later.
        let with_four = [records.to_vec(), vec!["4".to_owned()]].concat();
        assert!(
            judge(&found, &with_four, &mut seen, at(700), &settings(600))
                .orphans
                .is_empty()
        );
        let again = judge(&found, &records, &mut seen, at(800), &settings(600));
        assert_eq!(again.orphans[0].missing_since, at(800));
    }

    #[test]
    fn ids_that_are_not_label_values_match_their_hashed_label() {
        let id = "an id with spaces".to_owned();
        let found = found(&[&label_value(&id)]);
        let survey = judge(&found, &[id], &mut BTreeMap::new(), at(0), &settings(0));
        assert!(survey.orphans.is_empty());
    }

    #[test]
    fn most_deployments_missing_at_once_is_held_back() {
        let five = found(&["1", "2", "3", "4", "5"]);
        let survey = judge(&five, &["1".to_owned()], &mut BTreeMap::new(), at(0), &settings(0));
        assert_eq!(survey.orphans.len(), 4);
        assert!(survey.held.as_deref().unwrap().contains("4 of 5 deployments"));
        assert!(survey.orphans.iter().all(|o| !o.due), "none is removed while held");
        // Two of three is below the minimum: a small lab may delete most of its records.
        let small = judge(
            &found(&["1", "2", "3"]),
            &["1".to_owned()],
            &mut BTreeMap::new(),
            at(0),
            &settings(0),
        );
        assert!(small.held.is_none());
        assert!(small.orphans.iter().all(|o| o.due));
    }
}
