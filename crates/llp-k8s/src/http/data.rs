//! `PUT`/`GET /kubernetes/deployments/{id}/secret` and `/config`: the key/value data that
//! `fromSecret` and `fromConfig` read, kept in the deployment's Secret and ConfigMap.
//! The body is a JSON object or a YAML mapping (as a JSON string); values are stringified.
//! The Directus extension this service replaces took and gave the same wrapped in the
//! Directus envelope (`{"data": …}`); both forms are accepted and GET answers in the envelope
//! (docs/compatibility.md).

use super::AppState;
use super::auth::Caller;
use super::deployments::resolve;
use super::error::{ApiError, Body};
use super::openapi::{CommonErrors, DeploymentId};
use crate::records::{Purpose, Session};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams};
use llp_spec::ErrorBody;
use llp_spec::names::{DEPLOYMENT_LABEL, MANAGED_BY, OWNER_LABEL, label_value};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read_secret, write_secret))
        .routes(routes!(read_config, write_config))
}

/// Key/value pairs from the body: a JSON object, or a JSON string holding a YAML mapping.
pub fn parse_pairs(body: &[u8]) -> Result<BTreeMap<String, String>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_field("body", format!("must be a JSON object of keys and values: {e}")))?;
    let object = match unwrap_envelope(value) {
        Value::Object(map) => map,
        // An empty YAML document is an empty mapping: no keys.
        Value::String(yaml) if yaml.trim().is_empty() => serde_json::Map::new(),
        Value::String(yaml) => match serde_saphyr::from_str::<Value>(&yaml) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(ApiError::bad_field(
                    "body",
                    "a string body must be a YAML mapping of keys and values",
                ));
            }
        },
        _ => return Err(ApiError::bad_field("body", "must be a JSON object of keys and values")),
    };
    object
        .into_iter()
        .map(|(key, value)| {
            let valid = !key.is_empty()
                && key.len() <= 253
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid {
                return Err(ApiError::bad_field(
                    &key,
                    "keys may hold letters, digits, `-`, `_` and `.`",
                ));
            }
            let text = match value {
                Value::String(s) => s,
                Value::Null => String::new(),
                Value::Object(_) | Value::Array(_) => {
                    return Err(ApiError::bad_field(&key, "values must be text, numbers or true/false"));
                }
                other => other.to_string(),
            };
            Ok((key, text))
        })
        .collect()
}

/// The extension's `{"data": {…}}` or `{"data": "<YAML mapping>"}`: the pairs inside. A
/// lone key `data` whose value is plain text (not a mapping) stays a key of that name.
fn unwrap_envelope(value: Value) -> Value {
    let Value::Object(map) = &value else { return value };
    let [(key, inner)] = map.iter().collect::<Vec<_>>()[..] else {
        return value;
    };
    let wrapped = match inner {
        Value::Object(_) => true,
        Value::String(text) => {
            text.trim().is_empty() || matches!(serde_saphyr::from_str::<Value>(text), Ok(Value::Object(_)))
        }
        _ => false,
    };
    if key == "data" && wrapped { inner.clone() } else { value }
}

fn labels(id: &str, owner: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (DEPLOYMENT_LABEL.to_owned(), label_value(id)),
        (OWNER_LABEL.to_owned(), label_value(owner)),
    ])
}

/// Which of the two key/value stores a route is about.
#[derive(Clone, Copy)]
enum Store {
    /// The Secret, read by `fromSecret`.
    Secret,
    /// The ConfigMap, read by `fromConfig`.
    Config,
}

async fn write(state: AppState, caller: Session, id: String, body: &[u8], store: Store) -> Result<Response, ApiError> {
    let pairs = parse_pairs(body)?;
    let target = resolve(&state, &caller, &id, Purpose::Act).await?;
    let labels = labels(&id, target.record.user_created.as_deref().unwrap_or_default());
    let params = PatchParams::apply("llp-k8s").force();
    match store {
        Store::Secret => {
            let name = target.names.secret();
            let data: BTreeMap<&String, ByteString> = pairs.iter().map(|(k, v)| (k, ByteString(v.clone().into_bytes()))).collect();
            let object = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name, "labels": labels}, "data": data});
            target.cluster.api::<Secret>().patch(name, &params, &Patch::Apply(object)).await.map(drop)
        }
        Store::Config => {
            let name = target.names.config_map();
            let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": pairs});
            target.cluster.api::<ConfigMap>().patch(name, &params, &Patch::Apply(object)).await.map(drop)
        }
    }
    .map_err(ApiError::cluster)?;
    Ok(Json(pairs.keys().collect::<Vec<_>>()).into_response())
}

async fn read(state: AppState, caller: Session, id: String, store: Store) -> Result<Response, ApiError> {
    let target = resolve(&state, &caller, &id, Purpose::Act).await?;
    let pairs: BTreeMap<String, String> = match store {
        Store::Secret => target
            .cluster
            .api::<Secret>()
            .get_opt(target.names.secret())
            .await
            .map_err(ApiError::cluster)?
            .and_then(|s| s.data)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect(),
        Store::Config => target
            .cluster
            .api::<ConfigMap>()
            .get_opt(target.names.config_map())
            .await
            .map_err(ApiError::cluster)?
            .and_then(|c| c.data)
            .unwrap_or_default(),
    };
    // The Directus envelope, as the extension answered.
    Ok(Json(json!({"data": pairs})).into_response())
}

/// Replace the data `fromSecret` reads (a JSON object, or a YAML mapping as a JSON string).
#[utoipa::path(
    put,
    path = "/kubernetes/deployments/{id}/secret",
    tag = "data",
    params(DeploymentId),
    request_body(content = ref("#/components/schemas/KeyValues"), description = "Keys and values; values are stringified"),
    responses(
        (status = 200, description = "The stored pairs", body = BTreeMap<String, String>),
        (status = 400, description = "Not an object, a nested value, or a bad key (`field` names it)", body = ErrorBody),
        CommonErrors
    )
)]
async fn write_secret(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    write(state, caller, id, &body, Store::Secret).await
}

/// The data `fromSecret` reads.
#[utoipa::path(
    get,
    path = "/kubernetes/deployments/{id}/secret",
    tag = "data",
    params(DeploymentId),
    responses((status = 200, description = "`{\"data\": {key: value}}` (empty when none), the Directus envelope", body = Object), CommonErrors)
)]
async fn read_secret(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    read(state, caller, id, Store::Secret).await
}

/// Replace the data `fromConfig` reads (a JSON object, or a YAML mapping as a JSON string).
#[utoipa::path(
    put,
    path = "/kubernetes/deployments/{id}/config",
    tag = "data",
    params(DeploymentId),
    request_body(content = ref("#/components/schemas/KeyValues"), description = "Keys and values; values are stringified"),
    responses(
        (status = 200, description = "The stored pairs", body = BTreeMap<String, String>),
        (status = 400, description = "Not an object, a nested value, or a bad key (`field` names it)", body = ErrorBody),
        CommonErrors
    )
)]
async fn write_config(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    write(state, caller, id, &body, Store::Config).await
}

/// The data `fromConfig` reads.
#[utoipa::path(
    get,
    path = "/kubernetes/deployments/{id}/config",
    tag = "data",
    params(DeploymentId),
    responses((status = 200, description = "`{\"data\": {key: value}}` (empty when none), the Directus envelope", body = Object), CommonErrors)
)]
async fn read_config(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    read(state, caller, id, Store::Config).await
}

#[cfg(test)]
mod tests {
    use super::parse_pairs;

    #[test]
    fn pairs_come_from_json_or_yaml_and_values_are_stringified() {
        let pairs = parse_pairs(br#"{"A": "x", "PORT": 8080, "ON": true, "EMPTY": null}"#).unwrap();
        assert_eq!(pairs["PORT"], "8080");
        assert_eq!(pairs["ON"], "true");
        assert_eq!(pairs["EMPTY"], "");
        let yaml = parse_pairs(br#""KEY: value\nN: 3\n""#).unwrap();
        assert!(parse_pairs(b"\"\"").unwrap().is_empty());
        assert_eq!((yaml["KEY"].as_str(), yaml["N"].as_str()), ("value", "3"));
    }

    #[test]
    fn bad_keys_and_nested_values_are_refused() {
        assert!(parse_pairs(br#"{"a/b": "x"}"#).is_err());
        assert!(parse_pairs(br#"{"a": {"b": 1}}"#).is_err());
        assert!(parse_pairs(br#"[1, 2]"#).is_err());
        assert!(parse_pairs(br#""just text""#).is_err());
    }

    #[test]
    fn the_extensions_envelope_is_unwrapped_and_a_plain_data_key_kept() {
        let object = parse_pairs(br#"{"data": {"A": "x", "N": 1}}"#).unwrap();
        assert_eq!((object["A"].as_str(), object["N"].as_str()), ("x", "1"));
        let yaml = parse_pairs(br#"{"data": "A: x\n"}"#).unwrap();
        assert_eq!(yaml["A"], "x");
        assert!(parse_pairs(br#"{"data": ""}"#).unwrap().is_empty());
        let plain = parse_pairs(br#"{"data": "just text"}"#).unwrap();
        assert_eq!(plain["data"], "just text");
        let two = parse_pairs(br#"{"data": {"A": "x"}, "B": "y"}"#);
        assert!(
            two.is_err(),
            "data with other keys is a key like any other, and nested values are refused"
        );
    }
}
