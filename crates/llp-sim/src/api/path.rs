//! Reading a request path the way the API server routes it.

use crate::resources::{RESOURCES, ResourceId, find};

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiPath {
    /// `/version`.
    Version,
    /// `/api`.
    CoreGroup,
    /// `/apis`.
    Groups,
    /// `/api/v1`, `/apis/apps/v1`.
    GroupVersion { group: String, version: String },
    /// A collection, an object or a subresource.
    Resource(Target),
    /// Anything else.
    Unknown,
}

/// A collection, object or subresource of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The kind.
    pub resource: ResourceId,
    /// Namespace from the path; `None` for cluster-scoped kinds and all-namespace lists.
    pub namespace: Option<String>,
    /// Object name; `None` for the collection.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `log`).
    pub sub: Option<String>,
}

/// Parses a URL path.
pub fn parse(path: &str) -> ApiPath {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => ApiPath::Version,
        ["api"] => ApiPath::CoreGroup,
        ["apis"] => ApiPath::Groups,
        ["api", version] => ApiPath::GroupVersion {
            group: String::new(),
            version: (*version).into(),
        },
        ["apis", group, version] => ApiPath::GroupVersion {
            group: (*group).into(),
            version: (*version).into(),
        },
        ["api", version, rest @ ..] => target("", version, rest),
        ["apis", group, version, rest @ ..] => target(group, version, rest),
        _ => ApiPath::Unknown,
    }
}

fn target(group: &str, version: &str, rest: &[&str]) -> ApiPath {
    let namespaced = match rest {
        ["namespaces", namespace, plural, tail @ ..] if tail.len() <= 2 => find(group, version, plural)
            .filter(|r| RESOURCES[*r].namespaced)
            .map(|r| (r, Some(*namespace), tail)),
        _ => None,
    };
    let (resource, namespace, tail) = match namespaced {
        Some(found) => found,
        // `namespaces/{name}/{x}` names a namespace's own subresource, or else a kind this
        // server does not serve: kube-apiserver answers the latter 404, not 405.
        None if matches!(rest, ["namespaces", _, sub, ..] if !matches!(*sub, "status" | "finalize")) => {
            return ApiPath::Unknown;
        }
        None => match rest {
            [plural, tail @ ..] if tail.len() <= 2 => match find(group, version, plural) {
                Some(r) => (r, None, tail),
                None => return ApiPath::Unknown,
            },
            _ => return ApiPath::Unknown,
        },
    };
    ApiPath::Resource(Target {
        resource,
        namespace: namespace.map(str::to_owned),
        name: tail.first().map(|s| (*s).to_owned()),
        sub: tail.get(1).map(|s| (*s).to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ids;

    fn t(resource: ResourceId, ns: Option<&str>, name: Option<&str>, sub: Option<&str>) -> ApiPath {
        ApiPath::Resource(Target {
            resource,
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            sub: sub.map(Into::into),
        })
    }

    #[test]
    fn an_unknown_kind_in_a_namespace_is_no_route() {
        assert_eq!(parse("/api/v1/namespaces/x/widgets"), ApiPath::Unknown);
        assert_eq!(parse("/api/v1/namespaces/x/widgets/w"), ApiPath::Unknown);
        assert_eq!(
            parse("/api/v1/namespaces/x/status"),
            t(ids::namespaces(), None, Some("x"), Some("status"))
        );
    }

    #[test]
    fn paths_route_like_the_api_server() {
        assert_eq!(
            parse("/api/v1/namespaces/x/pods"),
            t(ids::pods(), Some("x"), None, None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/x/pods/p/log"),
            t(ids::pods(), Some("x"), Some("p"), Some("log"))
        );
        assert_eq!(parse("/api/v1/pods"), t(ids::pods(), None, None, None));
        assert_eq!(
            parse("/api/v1/namespaces/x"),
            t(ids::namespaces(), None, Some("x"), None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/x/status"),
            t(ids::namespaces(), None, Some("x"), Some("status"))
        );
        assert_eq!(parse("/api/v1/nodes/n1"), t(ids::nodes(), None, Some("n1"), None));
        assert_eq!(
            parse("/apis/apps/v1/namespaces/x/statefulsets/s/scale"),
            t(ids::stateful_sets(), Some("x"), Some("s"), Some("scale"))
        );
        assert_eq!(
            parse("/apis/apps/v1"),
            ApiPath::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        assert_eq!(parse("/apis/nope/v1/things"), ApiPath::Unknown);
        assert_eq!(parse("/version"), ApiPath::Version);
    }
}
