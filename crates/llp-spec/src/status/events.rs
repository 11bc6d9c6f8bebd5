//! A pod's events as the events route answers them: `[{creationTimestamp, note, reason,
//! type, count}]`, oldest first. Events reach the core API in two shapes: the kubelet's and
//! controllers' `core/v1` ones (`firstTimestamp`, `lastTimestamp`, `count`), and those written
//! through `events.k8s.io/v1` (the scheduler's: null first/last timestamps, an `eventTime`,
//! repeats counted in `series`). Both are placed at the second they last happened; within a
//! second (core events carry no finer time) the order they were written in decides.

use k8s_openapi::api::core::v1::Event;
use serde::Serialize;

/// One event, as the LLP frontend shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EventEntry {
    /// When it last happened (RFC 3339).
    pub creation_timestamp: Option<String>,
    /// What happened.
    pub note: Option<String>,
    /// Short machine-readable reason (`Scheduled`, `FailedScheduling`, `BackOff`, …).
    pub reason: Option<String>,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// How often it happened.
    pub count: i32,
}

/// The entries of `events`, oldest first.
pub fn from_events(events: &[Event]) -> Vec<EventEntry> {
    let mut entries: Vec<((i64, u64), EventEntry)> = events
        .iter()
        .map(|e| {
            let when = last_happened(e);
            // The resourceVersion only breaks ties within a second: it grows with each write.
            let written = e
                .metadata
                .resource_version
                .as_deref()
                .and_then(|rv| rv.parse().ok())
                .unwrap_or(0);
            ((when.map_or(0, |t| t.as_second()), written), entry(e))
        })
        .collect();
    entries.sort_by_key(|(order, _)| *order);
    entries.into_iter().map(|(_, entry)| entry).collect()
}

/// One event as the events route answers it.
pub fn entry(e: &Event) -> EventEntry {
    EventEntry {
        creation_timestamp: last_happened(e).map(|t| t.to_string()),
        note: e.message.clone(),
        reason: e.reason.clone(),
        kind: e.type_.clone(),
        count: e.series.as_ref().and_then(|s| s.count).or(e.count).unwrap_or(1).max(1),
    }
}

/// The last time an event happened: a repeat's `series.lastObservedTime`, else
/// `lastTimestamp`, else `eventTime`, else `firstTimestamp`, else when it was stored.
fn last_happened(e: &Event) -> Option<jiff::Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: serde_json::Value) -> Event {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn both_shapes_are_ordered_by_when_they_last_happened() {
        let kubelet = event(json!({
            "metadata": {"name": "a", "creationTimestamp": "2026-01-01T10:00:00Z"},
            "involvedObject": {}, "reason": "Started", "message": "Started container web", "type": "Normal",
            "firstTimestamp": "2026-01-01T10:00:05Z", "lastTimestamp": "2026-01-01T10:00:05Z", "count": 1,
        }));
        let scheduler = event(json!({
            "metadata": {"name": "b", "creationTimestamp": "2026-01-01T10:00:00Z"},
            "involvedObject": {}, "reason": "Scheduled", "message": "Successfully assigned", "type": "Normal",
            "firstTimestamp": null, "lastTimestamp": null, "eventTime": "2026-01-01T10:00:01.500000Z",
            "reportingComponent": "default-scheduler",
        }));
        let repeated = event(json!({
            "metadata": {"name": "c", "creationTimestamp": "2026-01-01T09:59:00Z"},
            "involvedObject": {}, "reason": "FailedScheduling", "message": "0/4 nodes are available", "type": "Warning",
            "eventTime": "2026-01-01T09:59:00.000000Z",
            "series": {"count": 3, "lastObservedTime": "2026-01-01T10:00:00.000000Z"},
        }));
        let entries = from_events(&[kubelet, scheduler, repeated]);
        let reasons: Vec<_> = entries.iter().map(|e| e.reason.as_deref().unwrap()).collect();
        assert_eq!(reasons, ["FailedScheduling", "Scheduled", "Started"]);
        assert_eq!(entries[0].count, 3);
        assert_eq!(entries[0].creation_timestamp.as_deref(), Some("2026-01-01T10:00:00Z"));
        assert_eq!(entries[1].creation_timestamp.as_deref(), Some("2026-01-01T10:00:01.5Z"));
        assert_eq!(entries[2].count, 1);
    }

    #[test]
    fn within_one_second_the_order_of_writing_decides() {
        let at = |name: &str, rv: &str, reason: &str, when: serde_json::Value| {
            let mut e =
                json!({"metadata": {"name": name, "resourceVersion": rv}, "involvedObject": {}, "reason": reason});
            e.as_object_mut().unwrap().extend(when.as_object().unwrap().clone());
            event(e)
        };
        let scheduled = at(
            "s",
            "100",
            "Scheduled",
            json!({"eventTime": "2026-01-01T10:00:01.900000Z"}),
        );
        let pulling = at("p", "101", "Pulling", json!({"lastTimestamp": "2026-01-01T10:00:01Z"}));
        let reasons: Vec<_> = from_events(&[pulling, scheduled])
            .into_iter()
            .map(|e| e.reason.unwrap())
            .collect();
        assert_eq!(reasons, ["Scheduled", "Pulling"]);
    }
}
