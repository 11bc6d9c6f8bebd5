//! Label selectors (equality- and set-based) and field selectors, as the API server parses
//! them from `?labelSelector=` and `?fieldSelector=`.

use serde_json::Value;
use std::collections::BTreeMap;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// A parsed field selector: `path=value` and `path!=value` terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// A selector that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

impl LabelSelector {
    /// Parses `app=web,tier!=db,env in (a,b),!legacy`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        split_terms(text)
            .into_iter()
            .map(|t| parse_requirement(&t))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|key| labels.get(key).map(String::as_str))
    }

    /// Whether it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy the selector (read in place: this runs
    /// for every object of every list and watch).
    pub fn matches_object(&self, object: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let labels = &object["metadata"]["labels"];
        self.matches_with(|key| labels.get(key).and_then(Value::as_str))
    }

    fn matches_with<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        })
    }
}

/// The `metadata.labels` of an object.
pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Commas split terms, except inside `( … )`.
fn split_terms(text: &str) -> Vec<String> {
    let (mut terms, mut current, mut depth) = (Vec::new(), String::new(), 0);
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    terms.push(current);
    terms
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether `text` may be a label's value: empty, or at most 63 letters, digits, `-`, `_`
/// and `.`, beginning and ending with a letter or digit (`IsValidLabelValue`).
pub fn is_label_value(text: &str) -> bool {
    text.is_empty() || is_name_part(text)
}

/// Whether `key` may be a label's key: an optional DNS subdomain prefix and `/`, then a name
/// part as for a value, not empty (`IsQualifiedName`).
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    });
    prefix_ok && is_name_part(name)
}

fn is_name_part(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && text.as_bytes()[0].is_ascii_alphanumeric()
        && text.as_bytes()[text.len() - 1].is_ascii_alphanumeric()
}

/// The fields a field selector may name for objects of `kind`, beside `metadata.name` and
/// `metadata.namespace` (kube-apiserver's field label conversions).
fn selectable_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Namespace" => &["status.phase"],
        "Secret" => &["type"],
        "Node" => &["spec.unschedulable"],
        "ReplicaSet" | "ReplicationController" => &["status.replicas"],
        "Job" => &["status.successful"],
        _ => &[],
    }
}

fn parse_requirement(term: &str) -> Result<Requirement, SelectorError> {
    let requirement = parse_term(term)?;
    let (key, values): (&String, Vec<&String>) = match &requirement {
        Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, vec![v]),
        Requirement::In(k, vs) | Requirement::NotIn(k, vs) => (k, vs.iter().collect()),
        Requirement::Exists(k) | Requirement::NotExists(k) => (k, Vec::new()),
    };
    if !is_label_key(key) || !values.iter().all(|v| is_label_value(v)) {
        return Err(SelectorError(term.to_owned()));
    }
    Ok(requirement)
}

fn parse_term(term: &str) -> Result<Requirement, SelectorError> {
    let bad = || SelectorError(term.to_owned());
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::NotExists(key.trim().to_owned()));
    }
    for (op, set) in [(" notin ", false), (" in ", true)] {
        if let Some((key, values)) = term.split_once(op) {
            let values = values
                .trim()
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(bad)?;
            let values = values
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            let key = key.trim().to_owned();
            return Ok(if set {
                Requirement::In(key, values)
            } else {
                Requirement::NotIn(key, values)
            });
        }
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(key.trim().into(), value.trim().into()));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(key.trim().into(), value.trim().into()));
    }
    if term.contains(|c: char| c.is_whitespace() || c == '(' || c == ')') {
        return Err(bad());
    }
    Ok(Requirement::Exists(term.to_owned()))
}

impl FieldSelector {
    /// Parses `metadata.name=x,status.phase!=Running`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        text.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|term| {
                if let Some((k, v)) = term.split_once("!=") {
                    Ok((k.trim().to_owned(), false, v.trim().to_owned()))
                } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                    Ok((k.trim().to_owned(), true, v.trim().to_owned()))
                } else {
                    Err(SelectorError(term.to_owned()))
                }
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The first field it names that objects of `kind` cannot be selected by, if any.
    pub fn unsupported(&self, kind: &str) -> Option<&str> {
        self.0.iter().map(|(path, _, _)| path.as_str()).find(|path| {
            !["metadata.name", "metadata.namespace"].contains(path) && !selectable_fields(kind).contains(path)
        })
    }

    /// Whether the object's fields match; a missing field reads as "".
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let actual = path.split('.').fold(object, |v, key| &v[key]);
            let actual = match actual {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }

    /// Whether it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value an equality term requires of `path`, if any (used to narrow lists cheaply).
    pub fn required(&self, path: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(p, eq, _)| p == path && *eq)
            .map(|(_, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn equality_and_set_based_requirements() {
        let s = LabelSelector::parse("app=web,tier!=db,env in (prod, staging),!legacy,owner").unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod"), ("owner", "a")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev"), ("owner", "a")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("owner", "a"),
            ("legacy", "1")
        ])));
        assert!(
            !s.matches(&labels(&[("app", "web"), ("env", "prod")])),
            "owner must exist"
        );
        let notin = LabelSelector::parse("env notin (prod)").unwrap();
        assert!(notin.matches(&labels(&[])) && !notin.matches(&labels(&[("env", "prod")])));
        assert!(LabelSelector::parse("").unwrap().matches(&labels(&[])));
        assert!(LabelSelector::parse("a in b").is_err());
    }

    #[test]
    fn label_selectors_hold_valid_keys_and_values_and_fields_are_kind_by_kind() {
        for bad in ["env=pro d", "bad key=x", "env=-x", "env in (a, b c)"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
        assert!(LabelSelector::parse("app.kubernetes.io/name=web,env in (a,b),!x").is_ok());
        let fields = FieldSelector::parse("spec.nodeName=n,metadata.name=p").unwrap();
        assert_eq!(
            (fields.unsupported("Pod"), fields.unsupported("Service")),
            (None, Some("spec.nodeName"))
        );
        assert_eq!(
            FieldSelector::parse("message=x").unwrap().unsupported("Event"),
            Some("message")
        );
    }

    #[test]
    fn field_selectors_read_nested_fields() {
        let event = json!({"metadata": {"name": "e1"}, "involvedObject": {"name": "p-0", "kind": "Pod"}});
        assert!(
            FieldSelector::parse("involvedObject.name=p-0,involvedObject.kind=Pod")
                .unwrap()
                .matches(&event)
        );
        assert!(
            !FieldSelector::parse("involvedObject.name!=p-0")
                .unwrap()
                .matches(&event)
        );
        assert!(
            FieldSelector::parse("spec.nodeName=").unwrap().matches(&event),
            "missing reads as empty"
        );
    }
}
