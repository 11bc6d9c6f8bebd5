//! Objects an earlier record left under a name a new record now has. Names derive from the
//! record id, so a record made later with the same id (a restored backup, an id chosen by
//! hand) would otherwise take over the StatefulSet and, worse, mount the earlier record's
//! volumes. They are told apart by the owner label and by the `record-created` stamp.

use super::cache::Caches;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use llp_spec::names::{OWNER_LABEL, RECORD_CREATED_ANNOTATION};

/// The record being deployed, as its objects would be labelled and stamped.
#[derive(Debug, Clone, Copy)]
pub struct Incarnation<'a> {
    /// The owner label of the record's `user_created`, when the record has one.
    pub owner_label: Option<&'a str>,
    /// Its `date_created`, when the collection records it.
    pub created: Option<&'a str>,
}

/// Why `meta` belongs to another record than `record`, if it does. Objects from before the
/// stamp existed have none and count as the record's own: only a difference proves anything.
pub fn earlier(meta: &ObjectMeta, record: Incarnation<'_>) -> Option<String> {
    let differs = |theirs: Option<&String>, ours: Option<&str>| match (theirs, ours) {
        (Some(theirs), Some(ours)) if theirs != ours => Some(theirs.clone()),
        _ => None,
    };
    let name = meta.name.as_deref().unwrap_or_default();
    if let Some(owner) = differs(
        meta.labels.as_ref().and_then(|l| l.get(OWNER_LABEL)),
        record.owner_label,
    ) {
        return Some(format!("{name} belongs to another user ({owner})"));
    }
    differs(
        meta.annotations.as_ref().and_then(|a| a.get(RECORD_CREATED_ANNOTATION)),
        record.created,
    )
    .map(|created| format!("{name} was made for an earlier record with this id, created {created}"))
}

/// Why the objects named `base` in the caches were left by another record, if they were: its
/// StatefulSet or Job, or any of its claims.
pub fn left_by_another_record(caches: &Caches, base: &str, record: Incarnation<'_>) -> Option<String> {
    let deployed = caches.deployed(base);
    let workload = deployed.as_ref().and_then(|d| earlier(d.meta(), record));
    workload.or_else(|| {
        let (_, claims) = caches.members(base);
        claims.iter().find_map(|c| earlier(&c.metadata, record))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(owner: Option<&str>, created: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("sd-7".into()),
            labels: owner.map(|o| BTreeMap::from([(OWNER_LABEL.to_owned(), o.to_owned())])),
            annotations: created.map(|c| BTreeMap::from([(RECORD_CREATED_ANNOTATION.to_owned(), c.to_owned())])),
            ..ObjectMeta::default()
        }
    }

    const RECORD: Incarnation<'static> = Incarnation {
        owner_label: Some("alice"),
        created: Some("2026-11-26T10:00:00.000Z"),
    };

    #[test]
    fn the_records_own_objects_are_not_left_over() {
        assert_eq!(
            earlier(&meta(Some("alice"), Some("2026-11-26T10:00:00.000Z")), RECORD),
            None
        );
    }

    #[test]
    fn another_owner_or_another_creation_time_is_an_earlier_record() {
        let other_owner = earlier(&meta(Some("bob"), None), RECORD).unwrap();
        assert!(other_owner.contains("another user (bob)"), "{other_owner}");
        let older = earlier(&meta(Some("alice"), Some("2026-01-01T00:00:00.000Z")), RECORD).unwrap();
        assert!(older.contains("created 2026-01-01"), "{older}");
    }

    #[test]
    fn without_a_stamp_on_either_side_nothing_is_proven() {
        assert_eq!(earlier(&meta(Some("alice"), None), RECORD), None);
        let unstamped_record = Incarnation {
            owner_label: None,
            created: None,
        };
        assert_eq!(earlier(&meta(Some("bob"), Some("2020-01-01")), unstamped_record), None);
    }
}
