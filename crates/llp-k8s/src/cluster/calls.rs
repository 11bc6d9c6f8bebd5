//! The kube client's layers: a deadline on every Kubernetes API request (for its answer to
//! begin: a watch's or a followed log's body streams on afterwards), and counting the
//! service's requests by verb and resource for `/metrics` (reflector lists and watches too).

use axum::http::{Method, Request};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Labels of one Kubernetes API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiCallLabels {
    /// The RBAC verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// The resource, with `/subresource` (`pods/log`); `discovery` for `/api`, `/apis`, `/version`.
    pub resource: String,
}

/// The counter family the layer feeds.
pub type ApiCalls = Family<ApiCallLabels, Counter>;

/// How long the Kubernetes API may take to begin answering a request, unless configured
/// (`cluster_request_seconds`).
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// A kube client for `config` whose every request is counted in `calls` and must begin to
/// be answered within `deadline` (else it fails with an error [`timed_out`] recognises).
pub fn counted_client(
    config: kube::Config,
    calls: ApiCalls,
    deadline: std::time::Duration,
) -> Result<kube::Client, kube::Error> {
    let count = tower::util::MapRequestLayer::new(move |request: Request<kube::client::Body>| {
        calls.get_or_create(&classify(&request)).inc();
        request
    });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&tower::timeout::TimeoutLayer::new(deadline))
        .with_layer(&count)
        .build())
}

/// Whether a request failed because the Kubernetes API did not answer within its deadline.
pub fn timed_out(error: &kube::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if error.is::<tower::timeout::error::Elapsed>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// The verb and resource of a request, as the API server's authorizer would name them.
pub fn classify<B>(request: &Request<B>) -> ApiCallLabels {
    let uri = request.uri();
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // After `/api/v1` or `/apis/{group}/{version}`: [namespaces/{ns}/]{plural}[/{name}[/{sub}]].
    let rest = match segments.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => &[][..],
    };
    let rest = match rest {
        ["namespaces", _, plural, tail @ ..] => Some((*plural, tail)),
        [plural, tail @ ..] => Some((*plural, tail)),
        [] => None,
    };
    let Some((plural, tail)) = rest else {
        return ApiCallLabels {
            verb: "get".into(),
            resource: "discovery".into(),
        };
    };
    let named = !tail.is_empty();
    let verb = match (request.method(), named) {
        (&Method::GET, _) if watch => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "other",
    };
    let resource = match tail.get(1) {
        Some(sub) => format!("{plural}/{sub}"),
        None => plural.to_owned(),
    };
    ApiCallLabels {
        verb: verb.into(),
        resource,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(method: Method, uri: &str) -> (String, String) {
        let request = Request::builder().method(method).uri(uri).body(()).unwrap();
        let l = classify(&request);
        (l.verb, l.resource)
    }

    #[test]
    fn requests_are_named_by_verb_and_resource() {
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/s/pods?watch=true&resourceVersion=5",
                "watch",
                "pods",
            ),
            (Method::GET, "/api/v1/namespaces/s/pods?labelSelector=a", "list", "pods"),
            (
                Method::GET,
                "/api/v1/namespaces/s/pods/p-0/log?follow=true",
                "get",
                "pods/log",
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/s/statefulsets/x?fieldManager=llp-k8s",
                "patch",
                "statefulsets",
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/s/statefulsets/x/scale",
                "patch",
                "statefulsets/scale",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/s/persistentvolumeclaims?labelSelector=a",
                "deletecollection",
                "persistentvolumeclaims",
            ),
            (
                Method::POST,
                "/apis/apps/v1/namespaces/s/statefulsets",
                "create",
                "statefulsets",
            ),
            (Method::GET, "/api/v1/nodes", "list", "nodes"),
            (Method::GET, "/apis", "get", "discovery"),
            (Method::GET, "/version", "get", "discovery"),
        ];
        for (method, uri, verb, resource) in cases {
            assert_eq!(labels(method, uri), (verb.to_owned(), resource.to_owned()), "{uri}");
        }
    }
}
