//! Small building blocks of validation: the problem list, field paths, typed reads of
//! [`Lenient`] fields and the format rules of Kubernetes names.

use crate::error::{FieldError, Rule};
use crate::raw::{Field, Lenient, UnknownKeys};
use crate::validate::suggest::did_you_mean;
use schemars::JsonSchema;
use serde_json::Value;
use std::ops::RangeInclusive;

/// The problems found so far.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    /// Records a problem.
    pub fn add(&mut self, field: impl Into<String>, rule: Rule, message: impl Into<String>) {
        self.0.push(FieldError::new(field, rule, message));
    }
}

/// `parent.key`, or `key` at the top.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Says what a YAML value is, for "must be a number, not …" messages.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => format!("the number {}", readable(x)),
            _ => format!("the number {n}"),
        },
        Value::String(s) if s.chars().count() > 40 => "a long text".into(),
        Value::String(s) => format!("the text \"{s}\""),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// A number as a student reads it: `0.5`, `16`, and `1e-300` rather than three hundred zeros.
pub fn readable(x: f64) -> String {
    let plain = format!("{x}");
    if plain.len() <= 16 { plain } else { format!("{x:e}") }
}

/// Reports every key of `unknown` (a mapping of type `T`) as an unknown field.
pub fn unknown_keys<T: JsonSchema>(p: &mut Problems, path: &str, unknown: &UnknownKeys) {
    if unknown.is_empty() {
        return;
    }
    let known = field_names::<T>();
    for key in unknown.keys() {
        let hint = format!(
            "{}{}",
            belongs_elsewhere(path, key),
            did_you_mean(key, known.iter().map(String::as_str))
        );
        let hint = if hint.is_empty() {
            format!(" Known fields here: {}.", known.join(", "))
        } else {
            hint
        };
        p.add(
            join(path, key),
            Rule::UnknownField,
            format!("unknown field `{key}`.{hint}"),
        );
    }
}

/// A hint for a field written at the wrong indentation: a container's field at the top, or a
/// top-level field inside a container (the most common YAML mistake after tabs).
fn belongs_elsewhere(path: &str, key: &str) -> String {
    let in_container = ["containers[", "initContainers["]
        .iter()
        .any(|list| path.starts_with(list) && path.ends_with(']') && !path[list.len()..].contains('.'));
    if path.is_empty() && field_names::<crate::raw::RawContainer>().iter().any(|f| f == key) {
        format!(" `{key}` belongs to a container: indent it under an entry of `containers`, level with its `name`.")
    } else if in_container && field_names::<crate::raw::RawSpec>().iter().any(|f| f == key) {
        format!(" `{key}` belongs at the top of the YAML, level with `containers`: indent it less.")
    } else {
        String::new()
    }
}

/// The property names of `T`'s JSON Schema: the keys the format accepts in that mapping.
fn field_names<T: JsonSchema>() -> Vec<String> {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default()
}

/// Reads a field that must be of type `T`; a value of another type is reported with `expected`
/// ("a whole number of CPU cores, like 4").
pub fn typed<'a, T>(p: &mut Problems, path: &str, field: &'a Field<T>, expected: &str) -> Option<&'a T> {
    match field.as_ref()? {
        Lenient::Valid(v) => Some(v),
        Lenient::Invalid(value) => {
            p.add(path, Rule::WrongType, wrong_type_message(expected, value));
            None
        }
    }
}

/// Reads a field that must be one of a few words: an unknown word breaks
/// [`Rule::InvalidFormat`], a value that is not text [`Rule::WrongType`].
pub fn choice<'a, T>(p: &mut Problems, path: &str, field: &'a Field<T>, options: &str) -> Option<&'a T> {
    match field.as_ref()? {
        Lenient::Valid(v) => Some(v),
        Lenient::Invalid(Value::String(word)) => {
            let names: Vec<&str> = options.split('`').skip(1).step_by(2).collect();
            let hint = did_you_mean(word, names);
            p.add(
                path,
                Rule::InvalidFormat,
                format!("`{word}` is not allowed here: use {options}.{hint}"),
            );
            None
        }
        Lenient::Invalid(value) => {
            p.add(path, Rule::WrongType, wrong_type_message(options, value));
            None
        }
    }
}

/// Like [`typed`], but a missing value is a problem too.
pub fn required<'a, T>(p: &mut Problems, path: &str, field: &'a Field<T>, expected: &str) -> Option<&'a T> {
    if field.is_none() {
        p.add(path, Rule::Required, format!("is required: give {expected}."));
    }
    typed(p, path, field, expected)
}

fn wrong_type_message(expected: &str, value: &Value) -> String {
    let quoted_number = matches!(value, Value::String(s) if s.trim().parse::<f64>().is_ok());
    let hint = if quoted_number {
        " Write the number without quotes."
    } else {
        ""
    };
    format!("must be {expected}, not {}.{hint}", describe(value))
}

/// Reads an integer field and checks its range; `what` says what it is ("a whole number of
/// CPU cores"), the range is appended.
pub fn int_in(p: &mut Problems, path: &str, field: &Field<i64>, range: RangeInclusive<i64>, what: &str) -> Option<i64> {
    let expected = format!("{what} from {} to {}", range.start(), range.end());
    let value = *typed(p, path, field, &expected)?;
    if range.contains(&value) {
        Some(value)
    } else {
        p.add(path, Rule::OutOfRange, format!("is {value}, but must be {expected}."));
        None
    }
}

/// Reads a list field, reporting items that are not of the item type. Returns the valid items
/// with their index.
pub fn list_items<'a, T>(
    p: &mut Problems,
    path: &str,
    field: &'a Option<Lenient<Vec<Lenient<T>>>>,
    item: &str,
) -> Vec<(usize, &'a T)> {
    let Some(items) = typed(p, path, field, &format!("a list of {item}")) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| match it {
            Lenient::Valid(v) => Some((i, v)),
            Lenient::Invalid(value) => {
                p.add(index(path, i), Rule::WrongType, wrong_type_message(item, value));
                None
            }
        })
        .collect()
}

/// A DNS-1123 label: at most 63 lowercase letters, digits and `-`, alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks a name that must be a DNS-1123 label.
pub fn dns_label(p: &mut Problems, path: &str, name: &str) -> bool {
    let ok = is_dns_label(name);
    if !ok {
        p.add(
            path,
            Rule::InvalidFormat,
            format!("`{name}` is not a valid name: use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit (like `my-app`)."),
        );
    }
    ok
}

/// An IANA service name, as Kubernetes requires of port names: at most 15 lowercase letters,
/// digits and single `-`, with at least one letter.
pub fn is_port_name(s: &str) -> bool {
    is_dns_label(s) && s.len() <= 15 && !s.contains("--") && s.bytes().any(|b| b.is_ascii_lowercase())
}

/// A name Kubernetes accepts for an environment variable.
pub fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b'-' || b == b'.')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// A key of a Secret or ConfigMap.
pub fn is_data_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "nginx", "my-app-2", "0abc", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "../../etc", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn port_names() {
        assert!(is_port_name("default"));
        assert!(is_port_name("http-2"));
        assert!(!is_port_name("80"), "needs a letter");
        assert!(!is_port_name("a--b"));
        assert!(!is_port_name("a-very-long-port-name"));
    }

    #[test]
    fn env_names_and_data_keys() {
        assert!(is_env_name("MY_VAR") && is_env_name("_x") && is_env_name("a.b-c"));
        assert!(!is_env_name("1X") && !is_env_name("A=B") && !is_env_name(""));
        assert!(is_data_key("api.key-1") && !is_data_key("a/b") && !is_data_key(""));
    }
}
