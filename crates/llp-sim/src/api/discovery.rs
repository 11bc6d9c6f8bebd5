//! Discovery: `/version`, `/api`, `/apis` and the group versions, in the aggregated format
//! (apidiscovery.k8s.io v2 or v2beta1) when the client asks for it, else the legacy lists.

use crate::resources::{RESOURCES, ResourceType};
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The Kubernetes version the simulator reports (kubectl picks a matching client by it).
pub const MINOR: &str = "32";

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": MINOR, "gitVersion": format!("v1.{MINOR}.0-llp-sim"),
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64",
    })
}

/// `GET /api` (core) or `GET /apis` (named groups).
pub fn groups(core: bool, headers: &HeaderMap) -> Response {
    let groups: Vec<&str> = group_names().into_iter().filter(|g| g.is_empty() == core).collect();
    if let Some(version) = aggregated_version(headers) {
        let items: Vec<Value> = groups.iter().map(|g| aggregated_group(g)).collect();
        let body = json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{version}"), "metadata": {}, "items": items});
        let content_type = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
        return ([(CONTENT_TYPE, content_type)], body.to_string()).into_response();
    }
    let body = if core {
        json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
    } else {
        let groups: Vec<Value> = groups
            .iter()
            .map(|g| {
                let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                json!({"name": g, "versions": [gv], "preferredVersion": gv})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    };
    axum::Json(body).into_response()
}

/// `GET /api/v1`, `GET /apis/apps/v1`: the legacy resource list.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&ResourceType> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for r in resources {
        list.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": r.verbs(), "shortNames": r.short_names,
        }));
        for sub in r.subresources {
            let (group, version) = sub.group_version.unwrap_or((r.group, r.version));
            let kind = if sub.kind.is_empty() { r.kind } else { sub.kind };
            list.push(json!({
                "name": format!("{}/{}", r.plural, sub.name), "singularName": "", "namespaced": r.namespaced,
                "kind": kind, "group": group, "version": version, "verbs": sub.verbs,
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list}))
}

fn group_names() -> BTreeSet<&'static str> {
    RESOURCES.iter().map(|r| r.group).collect()
}

/// `v2` or `v2beta1` when the Accept header asks for aggregated discovery.
fn aggregated_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(ACCEPT)?.to_str().ok()?;
    ["v2", "v2beta1"].into_iter().find(|v| {
        accept.split(',').any(|part| {
            part.contains("g=apidiscovery.k8s.io") && part.contains(&format!("v={v};"))
                || part.ends_with(&format!("v={v}"))
        })
    })
}

fn aggregated_group(group: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group)
        .map(|r| {
            let subresources: Vec<Value> = r
                .subresources
                .iter()
                .map(|s| {
                    let (g, v) = s.group_version.unwrap_or((r.group, r.version));
                    let kind = if s.kind.is_empty() { r.kind } else { s.kind };
                    json!({"subresource": s.name, "responseKind": {"group": g, "version": v, "kind": kind}, "verbs": s.verbs})
                })
                .collect();
            json!({
                "resource": r.plural,
                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": r.verbs(),
                "shortNames": r.short_names,
                "subresources": subresources,
            })
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})
}
