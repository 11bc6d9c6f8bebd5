//! RBAC, as far as a least-privilege Role needs proving: every resource request is turned
//! into the API server's authorization attributes (verb, API group, resource with
//! subresource, namespace, name), recorded, and — when the simulator is given rules — refused
//! with the API server's 403 unless a Role (in that namespace) or ClusterRole rule allows it.
//! Discovery (`/api`, `/apis`, `/version`) is open to everyone, as `system:discovery` is.

use super::path::Target;
use crate::resources::RESOURCES;
use axum::http::Method;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use std::collections::BTreeSet;

/// What a request asks, in RBAC terms.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'static str,
    /// API group (`""` for the core group).
    pub group: String,
    /// Resource, with `/subresource` when there is one (`pods/log`).
    pub resource: String,
    /// Namespace, for namespaced requests.
    pub namespace: Option<String>,
    /// Object name, for requests on one object.
    pub name: Option<String>,
}

impl Attributes {
    /// The attributes of `method` on `target` (`watch` when `watch=true`).
    pub fn of(method: &Method, target: &Target, watch: bool) -> Self {
        let one = target.name.is_some();
        let verb = match (method.as_str(), one) {
            ("GET", _) if watch => "watch",
            ("GET" | "HEAD", true) => "get",
            ("GET" | "HEAD", false) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => "unknown",
        };
        let kind = &RESOURCES[target.resource];
        let resource = match &target.sub {
            Some(sub) => format!("{}/{sub}", kind.plural),
            None => kind.plural.to_owned(),
        };
        Self {
            verb,
            group: kind.group.to_owned(),
            resource,
            namespace: target.namespace.clone(),
            name: target.name.clone(),
        }
    }

    /// The API server's words for a refusal.
    pub fn forbidden_message(&self, user: &str) -> String {
        let object = match &self.name {
            Some(name) => format!("{} \"{name}\"", self.resource),
            None => self.resource.clone(),
        };
        let scope = match &self.namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_owned(),
        };
        format!(
            "{object} is forbidden: User \"{user}\" cannot {} resource \"{}\" in API group \"{}\"{scope}",
            self.verb, self.resource, self.group
        )
    }
}

/// Rules granted to the simulator's token: Roles (one namespace each) and ClusterRoles.
#[derive(Debug, Clone, Default)]
pub struct Rbac {
    /// The user the token stands for, in refusals.
    pub user: String,
    grants: Vec<(Option<String>, PolicyRule)>,
}

impl Rbac {
    /// No rules yet (everything refused), for `user`.
    pub fn new(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            grants: Vec::new(),
        }
    }

    /// Adds a Role's rules, valid in its namespace.
    pub fn role(mut self, role: &Role) -> Self {
        let namespace = role.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        for rule in role.rules.iter().flatten() {
            self.grants.push((Some(namespace.clone()), rule.clone()));
        }
        self
    }

    /// Adds a ClusterRole's rules, valid everywhere.
    pub fn cluster_role(mut self, role: &ClusterRole) -> Self {
        for rule in role.rules.iter().flatten() {
            self.grants.push((None, rule.clone()));
        }
        self
    }

    /// Whether some rule allows `request`.
    pub fn allows(&self, request: &Attributes) -> bool {
        self.grants.iter().any(|(namespace, rule)| {
            let in_scope = namespace.is_none() || namespace == &request.namespace;
            in_scope && rule_allows(rule, request)
        })
    }
}

fn matches(list: &[String], value: &str) -> bool {
    list.iter().any(|item| item == "*" || item == value)
}

fn rule_allows(rule: &PolicyRule, request: &Attributes) -> bool {
    let names_ok = match (&rule.resource_names, &request.name) {
        (Some(names), Some(name)) if !names.is_empty() => names.contains(name),
        (Some(names), None) if !names.is_empty() => false,
        _ => true,
    };
    matches(&rule.verbs, request.verb)
        && matches(rule.api_groups.as_deref().unwrap_or_default(), &request.group)
        && matches(rule.resources.as_deref().unwrap_or_default(), &request.resource)
        && names_ok
}

/// The distinct (group, resource, verb) triples of `requests`: what a Role must grant.
pub fn triples(requests: &[Attributes]) -> BTreeSet<(String, String, String)> {
    requests
        .iter()
        .map(|a| (a.group.clone(), a.resource.clone(), a.verb.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::path::{ApiPath, parse};

    fn attributes(method: Method, path: &str, watch: bool) -> Attributes {
        let ApiPath::Resource(target) = parse(path) else {
            panic!("{path} is not a resource path")
        };
        Attributes::of(&method, &target, watch)
    }

    fn rbac() -> Rbac {
        let role: Role = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r", "namespace": "services"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["apps"], "resources": ["statefulsets/scale"], "verbs": ["patch"]},
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["only-this"], "verbs": ["get"]}
            ]
        }))
        .unwrap();
        let nodes: ClusterRole = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]
        }))
        .unwrap();
        Rbac::new("system:serviceaccount:llp-system:llp-k8s")
            .role(&role)
            .cluster_role(&nodes)
    }

    #[test]
    fn requests_become_the_api_servers_verbs() {
        let cases = [
            (Method::GET, "/api/v1/namespaces/s/pods/p", false, "get", "pods"),
            (Method::GET, "/api/v1/namespaces/s/pods", false, "list", "pods"),
            (Method::GET, "/api/v1/namespaces/s/pods", true, "watch", "pods"),
            (Method::GET, "/api/v1/namespaces/s/pods/p/log", false, "get", "pods/log"),
            (
                Method::POST,
                "/apis/apps/v1/namespaces/s/statefulsets",
                false,
                "create",
                "statefulsets",
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/s/statefulsets/a/scale",
                false,
                "patch",
                "statefulsets/scale",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/s/persistentvolumeclaims",
                false,
                "deletecollection",
                "persistentvolumeclaims",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/s/services/x",
                false,
                "delete",
                "services",
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/s/configmaps/x",
                false,
                "update",
                "configmaps",
            ),
        ];
        for (method, path, watch, verb, resource) in cases {
            let a = attributes(method, path, watch);
            assert_eq!((a.verb, a.resource.as_str()), (verb, resource), "{path}");
        }
    }

    #[test]
    fn a_role_allows_only_its_namespace_verbs_resources_and_names() {
        let rbac = rbac();
        assert!(rbac.allows(&attributes(Method::GET, "/api/v1/namespaces/services/pods", true)));
        assert!(rbac.allows(&attributes(
            Method::GET,
            "/api/v1/namespaces/services/pods/p/log",
            false
        )));
        assert!(!rbac.allows(&attributes(Method::GET, "/api/v1/namespaces/other/pods", false)));
        assert!(!rbac.allows(&attributes(Method::DELETE, "/api/v1/namespaces/services/pods/p", false)));
        assert!(!rbac.allows(&attributes(
            Method::PATCH,
            "/apis/apps/v1/namespaces/services/statefulsets/a",
            false
        )));
        assert!(rbac.allows(&attributes(
            Method::GET,
            "/api/v1/namespaces/services/secrets/only-this",
            false
        )));
        assert!(!rbac.allows(&attributes(
            Method::GET,
            "/api/v1/namespaces/services/secrets/other",
            false
        )));
        assert!(!rbac.allows(&attributes(Method::GET, "/api/v1/namespaces/services/secrets", false)));
        assert!(rbac.allows(&attributes(Method::GET, "/api/v1/nodes", false)));
        assert!(!rbac.allows(&attributes(Method::GET, "/api/v1/nodes/n1", false)));
    }

    #[test]
    fn a_refusal_reads_like_the_api_servers() {
        let a = attributes(Method::DELETE, "/api/v1/namespaces/services/pods/web-0", false);
        assert_eq!(
            a.forbidden_message("system:serviceaccount:llp-system:llp-k8s"),
            "pods \"web-0\" is forbidden: User \"system:serviceaccount:llp-system:llp-k8s\" cannot delete resource \"pods\" in API group \"\" in the namespace \"services\""
        );
    }
}
