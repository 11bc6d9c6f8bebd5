//! The key/value data of a deployment that `fromSecret` and `fromConfig` read, kept in its
//! Secret and ConfigMap. A body is a JSON object or a YAML mapping (as a JSON string), either
//! possibly in the Directus envelope the extension this service replaces used; values are
//! stringified; keys and sizes are checked as Kubernetes checks them.

use super::{Error, Operations};
use crate::records::{Purpose, Session};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams};
use llp_spec::names::{DEPLOYMENT_LABEL, MANAGED_BY, OWNER_LABEL, label_value};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Most bytes of keys and values in one Secret or ConfigMap, as the API server allows.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Key/value pairs from the body: a JSON object, or a JSON string holding a YAML mapping
/// (parsed with the deployment YAML's limits), either possibly in the extension's envelope.
/// Keys and sizes are checked as Kubernetes checks them, so the cluster never refuses them.
/// CPU-bound: call it off the async threads.
pub fn parse_pairs(body: &[u8]) -> Result<BTreeMap<String, String>, Error> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::invalid("body", format!("must be a JSON object of keys and values: {e}")))?;
    let object = match unwrap_envelope(value)? {
        Value::Object(map) => map,
        _ => return Err(Error::invalid("body", "must be a JSON object of keys and values")),
    };
    let pairs: BTreeMap<String, String> = object
        .into_iter()
        .map(|(key, value)| {
            check_key(&key)?;
            let text = match value {
                Value::String(s) => s,
                Value::Null => String::new(),
                Value::Object(_) | Value::Array(_) => {
                    return Err(Error::invalid(
                        "body",
                        format!(
                            "the value of `{key}` is a list or mapping: values must be text, numbers or true/false"
                        ),
                    ));
                }
                other => other.to_string(),
            };
            Ok((key, text))
        })
        .collect::<Result<_, _>>()?;
    let size: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_DATA_BYTES {
        return Err(Error::invalid(
            "body",
            format!(
                "holds {size} bytes of keys and values; Kubernetes keeps at most {MAX_DATA_BYTES} (1 MiB) in one Secret or ConfigMap. Put large files in a volume instead."
            ),
        ));
    }
    Ok(pairs)
}

/// A key as Kubernetes allows it in a Secret or ConfigMap (`IsConfigMapKey`).
fn check_key(key: &str) -> Result<(), Error> {
    let problem = if key.is_empty() || key.len() > 253 {
        Some("keys must be 1 to 253 characters long")
    } else if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        Some("keys may hold letters, digits, `-`, `_` and `.`")
    } else if key == "." || key == ".." || key.starts_with("..") {
        Some("a key may not be `.` or `..`, nor start with `..`")
    } else {
        None
    };
    match problem {
        // The field is the body; the message names the key (a value the user chose).
        Some(message) => Err(Error::invalid("body", format!("`{key}`: {message}"))),
        None => Ok(()),
    }
}

/// The body's pairs as a JSON value: a JSON object; or the extension's `{"data": {…}}` or
/// `{"data": "<YAML mapping>"}`; or a YAML mapping as a JSON string. A lone key `data` whose
/// value is plain text (not a mapping) stays a key of that name.
fn unwrap_envelope(value: Value) -> Result<Value, Error> {
    let yaml = |text: &str| -> Result<Value, Error> {
        if text.trim().is_empty() {
            // An empty YAML document is an empty mapping: no keys.
            return Ok(Value::Object(serde_json::Map::new()));
        }
        let value = llp_spec::parse::parse_yaml_value(text, "body").map_err(|e| Error::Validation(vec![e]))?;
        match value {
            Value::Object(_) => Ok(value),
            _ => Err(Error::invalid(
                "body",
                "a string body must be a YAML mapping of keys and values",
            )),
        }
    };
    match value {
        Value::String(text) => yaml(&text),
        Value::Object(map) if map.len() == 1 && map.contains_key("data") => match &map["data"] {
            Value::Object(inner) => Ok(Value::Object(inner.clone())),
            // Plain text stays the value of a key named `data`.
            Value::String(text) => yaml(text).or(Ok(Value::Object(map))),
            _ => Ok(Value::Object(map)),
        },
        other => Ok(other),
    }
}

fn labels(id: &str, owner: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (DEPLOYMENT_LABEL.to_owned(), label_value(id)),
        (OWNER_LABEL.to_owned(), label_value(owner)),
    ])
}

/// Which of the two key/value stores a request is about.
#[derive(Clone, Copy)]
pub enum Store {
    /// The Secret, read by `fromSecret`.
    Secret,
    /// The ConfigMap, read by `fromConfig`.
    Config,
}

/// Replaces the pairs of deployment `id`'s `store` with those of `body` (see [`parse_pairs`]);
/// answers the pairs stored.
pub async fn write(
    ops: &Operations<'_>,
    caller: &Session,
    id: &str,
    body: impl AsRef<[u8]> + Send + 'static,
    store: Store,
) -> Result<BTreeMap<String, String>, Error> {
    // Off the async threads, a few at a time (see `parsing`).
    let pairs = super::parsing::parse(move || parse_pairs(body.as_ref())).await??;
    let target = ops.resolve(caller, id, Purpose::Act).await?;
    let labels = labels(id, target.record.user_created.as_deref().unwrap_or_default());
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
    .map_err(Error::cluster)?;
    Ok(pairs)
}

/// The pairs of deployment `id`'s `store` (none when it has none).
pub async fn read(
    ops: &Operations<'_>,
    caller: &Session,
    id: &str,
    store: Store,
) -> Result<BTreeMap<String, String>, Error> {
    let target = ops.resolve(caller, id, Purpose::Act).await?;
    let pairs = match store {
        Store::Secret => target
            .cluster
            .api::<Secret>()
            .get_opt(target.names.secret())
            .await
            .map_err(Error::cluster)?
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
            .map_err(Error::cluster)?
            .and_then(|c| c.data)
            .unwrap_or_default(),
    };
    Ok(pairs)
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
    fn keys_and_sizes_are_checked_as_kubernetes_checks_them() {
        for key in [".", "..", "..hidden", "", &"k".repeat(254)] {
            let body = serde_json::to_vec(&serde_json::json!({ key: "x" })).unwrap();
            assert!(parse_pairs(&body).is_err(), "{key:?}");
        }
        assert!(parse_pairs(br#"{".env": "x", "a..b": "y"}"#).is_ok());
        let big = "x".repeat(super::MAX_DATA_BYTES);
        let body = serde_json::to_vec(&serde_json::json!({"A": big})).unwrap();
        assert!(parse_pairs(&body).is_err(), "over 1 MiB with its key");
    }

    #[test]
    fn a_yaml_body_has_the_deployment_yamls_limits() {
        // A billion laughs: refused by the alias budget, not expanded.
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for level in ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'] {
            let prev = char::from(level as u8 - 1);
            bomb.push_str(&format!("{level}: &{level} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let body = serde_json::to_vec(&serde_json::Value::String(bomb)).unwrap();
        match parse_pairs(&body) {
            Err(super::Error::Validation(problems)) => {
                assert_eq!(problems[0].field, "body");
                assert!(problems[0].message.contains("alias"), "{}", problems[0].message);
            }
            other => panic!("refused by the alias budget, not expanded: {other:?}"),
        }
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
