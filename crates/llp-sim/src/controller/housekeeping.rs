//! The small controllers: claims bind at once to a volume of the requested size and grow
//! when asked for more (in two passes, `Resizing` between, as a resizer does), Services
//! get a cluster IP, a claim being deleted goes once no pod uses it (pvc-protection), and an
//! owner deleted in the foreground goes once its dependents are gone, and Events expire.

use crate::resources::ids;
use crate::store::defaults::PVC_PROTECTION;
use crate::store::patch::PatchKind;
use crate::store::selector::{FieldSelector, LabelSelector};
use crate::store::{FOREGROUND, ObjectKey, Store};
use serde_json::json;

/// Binds every pending claim.
pub fn bind_claims(store: &mut Store) {
    let pending = store.list(
        ids::claims(),
        None,
        &LabelSelector::default(),
        &FieldSelector::default(),
    );
    for claim in pending.iter().filter(|c| c["status"]["phase"] != "Bound") {
        let meta = &claim["metadata"];
        let key = ObjectKey::new(
            ids::claims(),
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
        );
        let volume = format!("pvc-{}", meta["uid"].as_str().unwrap_or_default());
        let _ = store.patch(&key, PatchKind::Merge, &json!({"spec": {"volumeName": volume}}), false);
        let status = json!({
            "phase": "Bound",
            "accessModes": claim["spec"]["accessModes"],
            "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
        });
        let _ = store.replace_status(&key, status);
    }
}

/// Grows bound claims that ask for more than their capacity: one pass marks the claim
/// `Resizing` (with `allocatedResources`), the next reports the new capacity, so a client sees
/// the request and the capacity differ for a moment, as with a real resizer.
pub fn expand_claims(store: &mut Store) {
    let claims = store.list(
        ids::claims(),
        None,
        &LabelSelector::default(),
        &FieldSelector::default(),
    );
    let parse = |q: &serde_json::Value| q.as_str().and_then(super::quantity::parse);
    for claim in claims.iter().filter(|c| c["status"]["phase"] == "Bound") {
        let requested = &claim["spec"]["resources"]["requests"]["storage"];
        let capacity = &claim["status"]["capacity"]["storage"];
        if !matches!((parse(requested), parse(capacity)), (Some(r), Some(c)) if r > c) {
            continue;
        }
        let meta = &claim["metadata"];
        let key = ObjectKey::new(
            ids::claims(),
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
        );
        let resizing = claim["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Resizing"));
        let mut status = claim["status"].clone();
        if resizing {
            status["capacity"]["storage"] = requested.clone();
            status.as_object_mut().map(|s| s.remove("conditions"));
        } else {
            status["allocatedResources"] = json!({"storage": requested});
            status["conditions"] = json!([{
                "type": "Resizing", "status": "True",
                "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }]);
        }
        let _ = store.replace_status(&key, status);
    }
}

/// Releases claims being deleted that no pod uses any more (the pvc-protection controller).
pub fn release_unused_claims(store: &mut Store) {
    let everything = (LabelSelector::default(), FieldSelector::default());
    let claims = store.list(ids::claims(), None, &everything.0, &everything.1);
    let doomed: Vec<_> = claims
        .iter()
        .filter(|c| c["metadata"]["deletionTimestamp"].is_string())
        .collect();
    if doomed.is_empty() {
        return;
    }
    let pods = store.list(ids::pods(), None, &everything.0, &everything.1);
    for claim in doomed {
        let (namespace, name) = (
            claim["metadata"]["namespace"].as_str().unwrap_or_default(),
            claim["metadata"]["name"].as_str().unwrap_or_default(),
        );
        let in_use = pods.iter().any(|pod| {
            pod["metadata"]["namespace"] == namespace
                && pod["spec"]["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| v["persistentVolumeClaim"]["claimName"] == name)
        });
        if !in_use {
            let _ = store.remove_finalizer(&ObjectKey::new(ids::claims(), namespace, name), PVC_PROTECTION);
        }
    }
}

/// Removes StatefulSets deleted in the foreground once they own nothing (the garbage collector).
pub fn finish_foreground_deletions(store: &mut Store) {
    let everything = (LabelSelector::default(), FieldSelector::default());
    // The kinds that own pods.
    for resource in [ids::stateful_sets(), ids::jobs()] {
        for owner in store.list(resource, None, &everything.0, &everything.1) {
            let waiting = owner["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == FOREGROUND));
            let uid = owner["metadata"]["uid"].as_str().unwrap_or_default();
            if waiting && owner["metadata"]["deletionTimestamp"].is_string() && !store.has_dependents(uid) {
                let key = ObjectKey::new(
                    resource,
                    owner["metadata"]["namespace"].as_str().unwrap_or_default(),
                    owner["metadata"]["name"].as_str().unwrap_or_default(),
                );
                let _ = store.remove_finalizer(&key, FOREGROUND);
            }
        }
    }
}

/// Removes namespaces deleted a second ago or more once their last object is gone (the
/// namespace controller, which takes seconds on kube-apiserver: meanwhile the namespace is
/// `Terminating` and refuses new objects).
pub fn finish_namespace_deletions(store: &mut Store, now: jiff::Timestamp) {
    let second_ago = now - jiff::SignedDuration::from_secs(1);
    store.finish_terminated_namespaces(&second_ago.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
}

/// Removes Events whose last write is older than `ttl` at `now`, as the API server's event
/// TTL does (an update renews it). The last write is the latest of the timestamps either
/// event shape carries.
pub fn expire_events(store: &mut Store, ttl: std::time::Duration, now: jiff::Timestamp) {
    let events = store.list(
        ids::events(),
        None,
        &LabelSelector::default(),
        &FieldSelector::default(),
    );
    let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
    for event in events {
        let written = [
            &event["metadata"]["creationTimestamp"],
            &event["lastTimestamp"],
            &event["eventTime"],
            &event["series"]["lastObservedTime"],
        ]
        .into_iter()
        .filter_map(|t| t.as_str()?.parse::<jiff::Timestamp>().ok())
        .max();
        if written.is_some_and(|written| now.duration_since(written) > ttl) {
            let meta = &event["metadata"];
            let key = ObjectKey::new(
                ids::events(),
                meta["namespace"].as_str().unwrap_or_default(),
                meta["name"].as_str().unwrap_or_default(),
            );
            let _ = store.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn events_expire_an_hour_after_their_last_write() {
        let mut store = Store::new(100);
        store.set_clock(|| "2026-01-01T10:00:00Z".into());
        store
            .create(ids::namespaces(), "", json!({"metadata": {"name": "ns"}}))
            .unwrap();
        let core = json!({"metadata": {"name": "core"}, "involvedObject": {"name": "p"}, "reason": "Pulled",
            "firstTimestamp": "2026-01-01T10:00:00Z", "lastTimestamp": "2026-01-01T10:30:00Z"});
        let series = json!({"metadata": {"name": "series"}, "involvedObject": {"name": "p"}, "reason": "FailedScheduling",
            "eventTime": "2026-01-01T10:00:00.000000Z", "series": {"count": 3, "lastObservedTime": "2026-01-01T10:45:00.000000Z"}});
        store.create(ids::events(), "ns", core).unwrap();
        store.create(ids::events(), "ns", series).unwrap();
        let names = |store: &Store| -> Vec<String> {
            store
                .list(
                    ids::events(),
                    None,
                    &LabelSelector::default(),
                    &FieldSelector::default(),
                )
                .iter()
                .map(|e| e["metadata"]["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let hour = Duration::from_secs(3600);
        let at = |time: &str| time.parse::<jiff::Timestamp>().unwrap();
        expire_events(&mut store, hour, at("2026-01-01T11:30:00Z"));
        assert_eq!(names(&store), ["core", "series"], "both written within the hour");
        expire_events(&mut store, hour, at("2026-01-01T11:30:01Z"));
        assert_eq!(names(&store), ["series"], "the core event was last written at 10:30");
        expire_events(&mut store, hour, at("2026-01-01T11:45:01Z"));
        assert!(names(&store).is_empty(), "the series was last observed at 10:45");
    }
}
