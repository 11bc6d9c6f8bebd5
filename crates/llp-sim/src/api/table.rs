//! The `meta.k8s.io/v1` Table that `kubectl get` asks for: the columns a real cluster prints
//! for the kinds the simulator serves.

use serde_json::{Value, json};

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| first.contains("as=Table"))
}

/// A Table of `objects` of `kind`.
pub fn render(kind: &str, objects: &[std::sync::Arc<Value>], revision: u64, now: jiff::Timestamp) -> Value {
    let columns = columns(kind);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|(name, ty)| {
            json!({"name": name, "type": ty, "format": if *name == "Name" { "name" } else { "" }, "description": "", "priority": 0})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            json!({
                "cells": cells(kind, o, now),
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]},
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": revision.to_string()},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn columns(kind: &str) -> Vec<(&'static str, &'static str)> {
    match kind {
        "Pod" => vec![
            ("Name", "string"),
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "string"),
            ("Age", "string"),
        ],
        "StatefulSet" => vec![("Name", "string"), ("Ready", "string"), ("Age", "string")],
        "Job" => vec![
            ("Name", "string"),
            ("Status", "string"),
            ("Completions", "string"),
            ("Duration", "string"),
            ("Age", "string"),
        ],
        "Service" => vec![
            ("Name", "string"),
            ("Type", "string"),
            ("Cluster-IP", "string"),
            ("External-IP", "string"),
            ("Port(s)", "string"),
            ("Age", "string"),
        ],
        "PersistentVolumeClaim" => {
            vec![
                ("Name", "string"),
                ("Status", "string"),
                ("Volume", "string"),
                ("Capacity", "string"),
                ("Access Modes", "string"),
                ("StorageClass", "string"),
                ("VolumeAttributesClass", "string"),
                ("Age", "string"),
            ]
        }
        "Node" => vec![
            ("Name", "string"),
            ("Status", "string"),
            ("Roles", "string"),
            ("Age", "string"),
            ("Version", "string"),
        ],
        "Namespace" => vec![("Name", "string"), ("Status", "string"), ("Age", "string")],
        "Event" => vec![
            ("Last Seen", "string"),
            ("Type", "string"),
            ("Reason", "string"),
            ("Object", "string"),
            ("Message", "string"),
        ],
        _ => vec![("Name", "string"), ("Age", "string")],
    }
}

fn cells(kind: &str, o: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = json!(o["metadata"]["name"]);
    let created = json!(age(o["metadata"]["creationTimestamp"].as_str(), now));
    match kind {
        "Pod" => {
            let statuses = o["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|s| s["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|s| s["restartCount"].as_i64().unwrap_or(0)).sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(o)),
                json!(restarts.to_string()),
                created,
            ]
        }
        "Job" => {
            let condition = |kind: &str| {
                o["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == kind && c["status"] == "True"))
            };
            let status = ["Complete", "Failed", "Suspended"]
                .into_iter()
                .find(|kind| condition(kind))
                .unwrap_or("Running");
            let succeeded = o["status"]["succeeded"].as_i64().unwrap_or(0);
            let completions = match o["spec"]["completions"].as_i64() {
                Some(c) => format!("{succeeded}/{c}"),
                None => format!("{succeeded}/1 of {}", o["spec"]["parallelism"].as_i64().unwrap_or(1)),
            };
            // From the start to the completion, or to now while it runs.
            let duration = match (
                o["status"]["startTime"].as_str(),
                o["status"]["completionTime"].as_str(),
            ) {
                (Some(start), Some(end)) => age(Some(start), end.parse().unwrap_or(now)),
                (Some(start), None) => age(Some(start), now),
                _ => String::new(),
            };
            vec![name, json!(status), json!(completions), json!(duration), created]
        }
        "StatefulSet" => {
            let ready = o["status"]["readyReplicas"].as_i64().unwrap_or(0);
            let wanted = o["spec"]["replicas"].as_i64().unwrap_or(1);
            vec![name, json!(format!("{ready}/{wanted}")), created]
        }
        "Service" => {
            let ports: Vec<String> = o["spec"]["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                        .collect()
                })
                .unwrap_or_default();
            let ty = o["spec"]["type"].as_str().unwrap_or("ClusterIP");
            let ip = o["spec"]["clusterIP"].as_str().unwrap_or("<none>");
            let external = o["spec"]["externalIPs"]
                .as_array()
                .filter(|ips| !ips.is_empty())
                .map_or_else(
                    || "<none>".to_owned(),
                    |ips| ips.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
                );
            vec![
                name,
                json!(ty),
                json!(ip),
                json!(external),
                json!(ports.join(",")),
                created,
            ]
        }
        "PersistentVolumeClaim" => {
            let capacity = o["status"]["capacity"]["storage"].as_str().unwrap_or("");
            let modes: Vec<&str> = o["status"]["accessModes"]
                .as_array()
                .map(|m| m.iter().filter_map(Value::as_str).map(short_access_mode).collect())
                .unwrap_or_default();
            let unset = |v: &Value| json!(v.as_str().unwrap_or("<unset>"));
            vec![
                name,
                json!(o["status"]["phase"].as_str().unwrap_or("Pending")),
                json!(o["spec"]["volumeName"].as_str().unwrap_or("")),
                json!(capacity),
                json!(modes.join(",")),
                unset(&o["spec"]["storageClassName"]),
                unset(&o["spec"]["volumeAttributesClassName"]),
                created,
            ]
        }
        "Namespace" => vec![name, json!(o["status"]["phase"].as_str().unwrap_or("Active")), created],
        "Node" => {
            let ready = o["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            // kubectl's ROLES: the `node-role.kubernetes.io/<role>` labels.
            let roles: Vec<&str> = o["metadata"]["labels"]
                .as_object()
                .map(|labels| {
                    labels
                        .keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect()
                })
                .unwrap_or_default();
            let roles = if roles.is_empty() {
                "<none>".to_owned()
            } else {
                roles.join(",")
            };
            let version = o["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap_or("");
            vec![
                name,
                json!(if ready { "Ready" } else { "NotReady" }),
                json!(roles),
                created,
                json!(version),
            ]
        }
        "Event" => {
            let seen = o["lastTimestamp"]
                .as_str()
                .or(o["eventTime"].as_str())
                .or(o["metadata"]["creationTimestamp"].as_str());
            let object = format!(
                "{}/{}",
                o["involvedObject"]["kind"].as_str().unwrap_or("").to_lowercase(),
                o["involvedObject"]["name"].as_str().unwrap_or("")
            );
            vec![
                json!(age(seen, now)),
                json!(o["type"]),
                json!(o["reason"]),
                json!(object),
                json!(o["message"]),
            ]
        }
        _ => vec![name, created],
    }
}

/// The STATUS column of `kubectl get pods`: the first waiting or terminated reason of a
/// container, else the phase.
pub fn pod_status(pod: &Value) -> String {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".into();
    }
    let statuses = pod["status"]["initContainerStatuses"]
        .as_array()
        .into_iter()
        .chain(pod["status"]["containerStatuses"].as_array())
        .flatten();
    for status in statuses {
        if let Some(reason) = status["state"]["waiting"]["reason"].as_str() {
            return reason.into();
        }
        if let Some(reason) = status["state"]["terminated"]["reason"].as_str() {
            return reason.into();
        }
    }
    pod["status"]["phase"].as_str().unwrap_or("Pending").into()
}

fn short_access_mode(mode: &str) -> &str {
    match mode {
        "ReadWriteOnce" => "RWO",
        "ReadWriteMany" => "RWX",
        "ReadOnlyMany" => "ROX",
        other => other,
    }
}

/// kubectl's short human duration: `45s`, `3m12s`, `2h5m`, `3d`.
pub fn age(timestamp: Option<&str>, now: jiff::Timestamp) -> String {
    let Some(then) = timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let seconds = (now.as_second() - then.as_second()).max(0);
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86400);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 600 && s % 60 != 0 => format!("{minutes}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{minutes}m"),
        s if s < 8 * 3600 && minutes % 60 != 0 => format!("{hours}h{}m", minutes % 60),
        s if s < 48 * 3600 => format!("{hours}h"),
        s if s < 8 * 86400 && hours % 24 != 0 => format!("{days}d{}h", hours % 24),
        _ => format!("{days}d"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let now: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        assert_eq!(age(Some("2026-01-01T11:59:15Z"), now), "45s");
        assert_eq!(age(Some("2026-01-01T11:56:48Z"), now), "3m12s");
        assert_eq!(age(Some("2026-01-01T09:55:00Z"), now), "125m");
        assert_eq!(age(Some("2026-01-01T07:55:00Z"), now), "4h5m");
        assert_eq!(age(Some("2025-12-29T12:00:00Z"), now), "3d");
    }

    #[test]
    fn a_job_row_has_kubectls_status_completions_and_duration() {
        let now: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let job = json!({"metadata": {"name": "train", "creationTimestamp": "2026-01-01T11:59:00Z"},
            "spec": {"completions": 2, "parallelism": 2},
            "status": {"succeeded": 2, "startTime": "2026-01-01T11:59:00Z", "completionTime": "2026-01-01T11:59:07Z",
                "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            cells("Job", &job, now),
            [
                json!("train"),
                json!("Complete"),
                json!("2/2"),
                json!("7s"),
                json!("60s")
            ]
        );
    }

    #[test]
    fn pod_status_prefers_a_waiting_reason() {
        let pod = json!({"status": {"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(pod_status(&pod), "CrashLoopBackOff");
        assert_eq!(pod_status(&json!({"status": {"phase": "Running"}})), "Running");
    }
}
