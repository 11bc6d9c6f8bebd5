//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! which kubectl 1.32 and later send for built-in kinds (`kubectl create namespace`,
//! `create configmap`, `create secret`, `create service`): the `k8s\0` magic, a
//! `runtime.Unknown` envelope naming the kind, and the typed message. Decoded with the
//! upstream `.proto` types (k8s-pb) into the JSON the store keeps, for the kinds the
//! simulator serves; any other kind is refused as the API server refuses an unknown encoding.

use super::status::ApiError;
use axum::http::StatusCode;
use base64::Engine;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The Content-Type of a protobuf body.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// The object a protobuf body holds, as JSON with `apiVersion` and `kind`.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| ApiError::bad_request("protobuf body without the k8s magic prefix"))?;
    let unknown = Unknown::decode(envelope).map_err(invalid)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let (api_version, kind) = (
        type_meta.api_version.unwrap_or_default(),
        type_meta.kind.unwrap_or_default(),
    );
    let raw = unknown.raw.unwrap_or_default();
    let mut object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => namespace(core::Namespace::decode(raw.as_slice()).map_err(invalid)?),
        ("v1", "ConfigMap") => config_map(core::ConfigMap::decode(raw.as_slice()).map_err(invalid)?),
        ("v1", "Secret") => secret(core::Secret::decode(raw.as_slice()).map_err(invalid)?),
        ("v1", "Service") => service(core::Service::decode(raw.as_slice()).map_err(invalid)?),
        // client-go's leader election writes its Lease in protobuf.
        ("coordination.k8s.io/v1", "Lease") => lease(coordination::Lease::decode(raw.as_slice()).map_err(invalid)?),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "the simulator reads protobuf bodies of Namespace, ConfigMap, Secret, Service and Lease only, not {api_version} {kind}; send JSON"
                ),
            ));
        }
    };
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

fn invalid(error: prost::DecodeError) -> ApiError {
    ApiError::bad_request(format!("invalid protobuf body: {error}"))
}

fn namespace(ns: core::Namespace) -> Value {
    let mut object = json!({"metadata": metadata(ns.metadata.unwrap_or_default())});
    if let Some(finalizers) = ns.spec.map(|s| s.finalizers).filter(|f| !f.is_empty()) {
        object["spec"] = json!({"finalizers": finalizers});
    }
    object
}

fn config_map(cm: core::ConfigMap) -> Value {
    let mut object = json!({"metadata": metadata(cm.metadata.unwrap_or_default())});
    set_map(&mut object, "data", cm.data.into_iter().map(|(k, v)| (k, json!(v))));
    set_map(
        &mut object,
        "binaryData",
        cm.binary_data.into_iter().map(|(k, v)| (k, json!(base64(&v)))),
    );
    if let Some(immutable) = cm.immutable {
        object["immutable"] = json!(immutable);
    }
    object
}

fn secret(secret: core::Secret) -> Value {
    let mut object = json!({"metadata": metadata(secret.metadata.unwrap_or_default())});
    set_map(
        &mut object,
        "data",
        secret.data.into_iter().map(|(k, v)| (k, json!(base64(&v)))),
    );
    set_map(
        &mut object,
        "stringData",
        secret.string_data.into_iter().map(|(k, v)| (k, json!(v))),
    );
    if let Some(kind) = secret.r#type {
        object["type"] = json!(kind);
    }
    if let Some(immutable) = secret.immutable {
        object["immutable"] = json!(immutable);
    }
    object
}

fn service(service: core::Service) -> Value {
    let spec = service.spec.unwrap_or_default();
    let mut out = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            out.insert(key.to_owned(), value);
        }
    };
    put("type", spec.r#type.map(Value::from));
    put("clusterIP", spec.cluster_ip.map(Value::from));
    put("externalName", spec.external_name.map(Value::from));
    put("sessionAffinity", spec.session_affinity.map(Value::from));
    if !spec.selector.is_empty() {
        put(
            "selector",
            Some(json!(spec.selector.into_iter().collect::<BTreeMap<_, _>>())),
        );
    }
    if !spec.ports.is_empty() {
        let ports = spec.ports.into_iter().map(service_port).collect::<Vec<_>>();
        put("ports", Some(Value::Array(ports)));
    }
    json!({"metadata": metadata(service.metadata.unwrap_or_default()), "spec": out})
}

fn lease(lease: coordination::Lease) -> Value {
    let spec = lease.spec.unwrap_or_default();
    let mut out = Map::new();
    let fields = [
        ("holderIdentity", spec.holder_identity.map(Value::from)),
        ("leaseDurationSeconds", spec.lease_duration_seconds.map(Value::from)),
        ("acquireTime", spec.acquire_time.map(micro_time)),
        ("renewTime", spec.renew_time.map(micro_time)),
        ("leaseTransitions", spec.lease_transitions.map(Value::from)),
        ("strategy", spec.strategy.map(Value::from)),
        ("preferredHolder", spec.preferred_holder.map(Value::from)),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            out.insert(key.to_owned(), value);
        }
    }
    json!({"metadata": metadata(lease.metadata.unwrap_or_default()), "spec": out})
}

/// A `MicroTime` as JSON writes it: RFC 3339 with microseconds.
fn micro_time(time: meta::MicroTime) -> Value {
    let nanos = time.nanos.unwrap_or_default() / 1_000 * 1_000;
    let at = jiff::Timestamp::new(time.seconds.unwrap_or_default(), nanos).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    json!(at.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string())
}

fn service_port(port: core::ServicePort) -> Value {
    let mut out = Map::new();
    let fields = [
        ("name", port.name.map(Value::from)),
        ("protocol", port.protocol.map(Value::from)),
        ("appProtocol", port.app_protocol.map(Value::from)),
        ("port", port.port.map(Value::from)),
        ("targetPort", port.target_port.map(int_or_string)),
        ("nodePort", port.node_port.map(Value::from)),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            out.insert(key.to_owned(), value);
        }
    }
    Value::Object(out)
}

fn int_or_string(value: IntOrString) -> Value {
    match value.r#type {
        Some(1) => json!(value.str_val.unwrap_or_default()),
        _ => json!(value.int_val.unwrap_or_default()),
    }
}

/// The metadata a client may set on create (the server fills in the rest).
fn metadata(meta: meta::ObjectMeta) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            out.insert(key.to_owned(), value);
        }
    };
    put("name", meta.name.map(Value::from));
    put("generateName", meta.generate_name.map(Value::from));
    put("namespace", meta.namespace.map(Value::from));
    put("resourceVersion", meta.resource_version.map(Value::from));
    let labels: BTreeMap<_, _> = meta.labels.into_iter().collect();
    put("labels", (!labels.is_empty()).then(|| json!(labels)));
    let annotations: BTreeMap<_, _> = meta.annotations.into_iter().collect();
    put("annotations", (!annotations.is_empty()).then(|| json!(annotations)));
    put(
        "finalizers",
        (!meta.finalizers.is_empty()).then(|| json!(meta.finalizers)),
    );
    Value::Object(out)
}

fn set_map(object: &mut Value, key: &str, entries: impl Iterator<Item = (String, Value)>) {
    let map: Map<String, Value> = entries.collect();
    if !map.is_empty() {
        object[key] = Value::Object(map);
    }
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some("v1".into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC.to_vec(), unknown.encode_to_vec()].concat()
    }

    fn named(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        })
    }

    #[test]
    fn a_secret_keeps_its_bytes_as_base64_and_its_type() {
        let secret = core::Secret {
            metadata: named("creds"),
            data: [("key".to_owned(), b"s3cret".to_vec())].into(),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let object = decode(&envelope("Secret", secret.encode_to_vec())).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "data": {"key": "czNjcmV0"}, "type": "Opaque"})
        );
    }

    #[test]
    fn a_service_port_keeps_a_named_or_numbered_target() {
        let port = |target: IntOrString| core::ServicePort {
            port: Some(80),
            target_port: Some(target),
            ..Default::default()
        };
        let named = port(IntOrString {
            r#type: Some(1),
            int_val: None,
            str_val: Some("http".into()),
        });
        let numbered = port(IntOrString {
            r#type: Some(0),
            int_val: Some(8080),
            str_val: None,
        });
        assert_eq!(service_port(named)["targetPort"], "http");
        assert_eq!(service_port(numbered)["targetPort"], 8080);
    }

    #[test]
    fn a_lease_keeps_its_holder_and_times_in_microseconds() {
        let lease = coordination::Lease {
            metadata: named("leader"),
            spec: Some(coordination::LeaseSpec {
                holder_identity: Some("a".into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(meta::MicroTime {
                    seconds: Some(1_800_000_000),
                    nanos: Some(123_456_789),
                }),
                ..Default::default()
            }),
        };
        let mut body = envelope("Lease", lease.encode_to_vec());
        // The envelope's group version.
        let unknown = Unknown::decode(&body[MAGIC.len()..]).unwrap();
        let mut unknown = unknown;
        unknown.type_meta.as_mut().unwrap().api_version = Some("coordination.k8s.io/v1".into());
        body = [MAGIC.to_vec(), unknown.encode_to_vec()].concat();
        let object = decode(&body).unwrap();
        assert_eq!(
            object["spec"],
            json!({"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": "2027-01-15T08:00:00.123456Z"})
        );
        assert_eq!(object["apiVersion"], "coordination.k8s.io/v1");
    }

    #[test]
    fn a_kind_the_simulator_does_not_read_is_unsupported_and_a_bad_body_is_a_bad_request() {
        let pod = core::Pod {
            metadata: named("p"),
            ..Default::default()
        };
        assert_eq!(
            decode(&envelope("Pod", pod.encode_to_vec())).unwrap_err().code(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(decode(b"{}").unwrap_err().code(), StatusCode::BAD_REQUEST);
        assert_eq!(decode(b"k8s\0\xff\xff").unwrap_err().code(), StatusCode::BAD_REQUEST);
    }
}
