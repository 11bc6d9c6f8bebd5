//! Recording core/v1 Events the way kubelet and the scheduler do: one object per distinct
//! (object, reason, message), its `count` and `lastTimestamp` bumped when it repeats.

use crate::resources::ids;
use crate::store::patch::PatchKind;
use crate::store::{ObjectKey, Store, now};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Remembers which Event object records which occurrence.
#[derive(Default)]
pub struct Recorder {
    names: HashMap<(String, String, String), String>,
    created: std::collections::VecDeque<((String, String, String), String, String)>,
    counter: u64,
}

/// Events kept at most; the oldest go first. Besides the hour they live (`Timings::event_ttl`),
/// a cap keeps the simulator's memory flat under the benchmark's 8,000 pods.
pub const MAX_EVENTS: usize = 10_000;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Routine.
    Normal,
    /// Something the user should look at.
    Warning,
}

impl Recorder {
    /// Records that `reason` happened to `object` (a Pod or StatefulSet), from `component`.
    pub fn record(
        &mut self,
        store: &mut Store,
        object: &Value,
        severity: Severity,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let meta = &object["metadata"];
        let namespace = meta["namespace"].as_str().unwrap_or("default").to_owned();
        let uid = meta["uid"].as_str().unwrap_or_default().to_owned();
        let dedupe = (uid.clone(), reason.to_owned(), message.to_owned());
        let time = now();
        if let Some(name) = self.names.get(&dedupe) {
            let key = ObjectKey::new(ids::events(), &namespace, name);
            if let Some(existing) = store.get(&key) {
                let count = existing["count"].as_i64().unwrap_or(1) + 1;
                let _ = store.patch(
                    &key,
                    PatchKind::Merge,
                    &json!({"count": count, "lastTimestamp": time}),
                    false,
                );
                return;
            }
        }
        self.counter += 1;
        let name = format!("{}.{:016x}", meta["name"].as_str().unwrap_or("object"), self.counter);
        let event = json!({
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "kind": object["kind"], "apiVersion": object["apiVersion"], "name": meta["name"],
                "namespace": namespace, "uid": uid, "resourceVersion": meta["resourceVersion"],
            },
            "reason": reason,
            "message": message,
            "type": match severity { Severity::Normal => "Normal", Severity::Warning => "Warning" },
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": "llp-sim",
            "firstTimestamp": time,
            "lastTimestamp": time,
            "count": 1,
        });
        if store.create(ids::events(), &namespace, event).is_ok() {
            self.names.insert(dedupe.clone(), name.clone());
            self.created.push_back((dedupe, namespace, name));
        }
        while self.created.len() > MAX_EVENTS {
            let Some((dedupe, namespace, name)) = self.created.pop_front() else {
                break;
            };
            self.names.remove(&dedupe);
            let _ = store.delete(
                &ObjectKey::new(ids::events(), &namespace, &name),
                crate::store::Propagation::Background,
            );
        }
    }
}
