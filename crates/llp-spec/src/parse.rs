//! Reading the deployment YAML, with limits that make hostile input cheap to refuse.
//!
//! Takes the record's `data` text and returns a [`RawSpec`] or one [`FieldError`] on `data`.
//! Limits: at most [`MAX_YAML_BYTES`], one document, nesting at most [`MAX_DEPTH`] deep, and
//! a cap on nodes and alias replays so that an alias bomb ("billion laughs") is refused
//! after a few thousand events instead of expanding, and on the text it builds: at most
//! [`SCALAR_BYTES_PER_INPUT_BYTE`] times the input's size (aliases of a long string would
//! otherwise copy it thousands of times before anything is refused).

use crate::error::{FieldError, Rule};
use crate::raw::RawSpec;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::budget::BudgetBreach;

/// Largest deployment YAML accepted, in bytes.
pub const MAX_YAML_BYTES: usize = 64 * 1024;
/// Deepest nesting of lists and mappings (the format itself needs 4).
pub const MAX_DEPTH: usize = 12;
/// Most YAML nodes after alias expansion; a 64 KiB document without aliases has fewer.
const MAX_NODES: usize = 40_000;
/// Most text a document may build, per byte of it: its own scalars once, and a few short
/// values repeated through aliases.
pub const SCALAR_BYTES_PER_INPUT_BYTE: usize = 4;
/// Text any document may build, however short (a few aliases of a short value).
const MIN_SCALAR_BYTES: usize = 16 * 1024;

/// The field that parse errors are reported on: the record's YAML as a whole.
pub const DATA: &str = "data";

/// Parses the deployment YAML.
pub fn parse_yaml(yaml: &str) -> Result<RawSpec, FieldError> {
    if yaml.len() > MAX_YAML_BYTES {
        let message = format!(
            "is {} bytes long; a deployment may be at most {MAX_YAML_BYTES} bytes (64 KiB).",
            yaml.len()
        );
        return Err(FieldError::new(DATA, Rule::Syntax, message));
    }
    let value: Value = serde_saphyr::from_str_with_options(yaml, options(yaml.len()))
        .map_err(|e| syntax_error(e, yaml, DATA, "deployment"))?;
    match value {
        Value::Object(_) => RawSpec::deserialize(&value)
            .map_err(|e| FieldError::new(DATA, Rule::Syntax, format!("cannot be read: {e}."))),
        Value::Null => Err(FieldError::new(
            DATA,
            Rule::Required,
            "is empty: write a YAML mapping with a `containers` list.",
        )),
        other => Err(FieldError::new(
            DATA,
            Rule::WrongType,
            format!(
                "must be a YAML mapping with a `containers` list at the top, not {}.",
                crate::validate::describe(&other)
            ),
        )),
    }
}

/// Parses any YAML document (a secret's or config's key/value mapping, say) with the same
/// limits on documents, depth, nodes and aliases as the deployment YAML; a problem is
/// reported on `field`.
pub fn parse_yaml_value(yaml: &str, field: &str) -> Result<Value, FieldError> {
    serde_saphyr::from_str_with_options(yaml, options(yaml.len())).map_err(|e| syntax_error(e, yaml, field, "mapping"))
}

/// The parser's limits for a document of `len` bytes.
fn options(len: usize) -> serde_saphyr::Options {
    let scalar_bytes = len.saturating_mul(SCALAR_BYTES_PER_INPUT_BYTE).max(MIN_SCALAR_BYTES);
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = MAX_NODES;
    alias_limits.max_replay_stack_depth = MAX_DEPTH;
    alias_limits.max_alias_expansions_per_anchor = 1_000;
    serde_saphyr::options! {
        with_snippet: false,
        // `yes`/`no`/`on`/`off` stay text, as in YAML 1.2; only true/false are booleans.
        strict_booleans: true,
        budget: serde_saphyr::budget! {
            max_documents: 1,
            max_depth: MAX_DEPTH,
            max_nodes: MAX_NODES,
            max_events: 4 * MAX_NODES,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_total_scalar_bytes: scalar_bytes,
            max_recorded_anchor_bytes: scalar_bytes,
        },
        alias_limits: alias_limits,
    }
}

/// The first line (counted from 1) indented with a tab, which YAML forbids.
fn tab_indented_line(yaml: &str) -> Option<usize> {
    yaml.lines()
        .position(|line| line.chars().take_while(|c| *c == ' ' || *c == '\t').any(|c| c == '\t'))
        .map(|index| index + 1)
}

/// What went wrong, without the wrappers that say where an alias was defined and used.
fn innermost(mut error: &serde_saphyr::Error) -> &serde_saphyr::Error {
    while let serde_saphyr::Error::AliasError { error: inner, .. }
    | serde_saphyr::Error::WithSnippet { error: inner, .. } = error
    {
        error = inner;
    }
    error
}

/// The parse error of `yaml` as a problem on `field`, whose YAML holds one `thing`.
fn syntax_error(error: serde_saphyr::Error, yaml: &str, field: &str, thing: &str) -> FieldError {
    // The parser reports a tab where the value it was reading began, often a line early, and
    // in its own words: say what to do, on the tab's line.
    let cause = innermost(&error);
    if !matches!(cause, serde_saphyr::Error::Budget { .. })
        && let Some(line) = tab_indented_line(yaml)
    {
        return FieldError::new(
            field,
            Rule::Syntax,
            format!(
                "is not valid YAML: line {line} is indented with a tab; YAML indents with spaces only: replace the tab with spaces."
            ),
        );
    }
    let at = error
        .location()
        .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
        .unwrap_or_default();
    let message = match cause {
        serde_saphyr::Error::Budget { breach, .. } => match breach {
            BudgetBreach::Documents { .. } => {
                format!("holds more than one YAML document{at}: remove the `---` separator and keep one {thing}.")
            }
            BudgetBreach::Depth { .. } => {
                format!("is nested more than {MAX_DEPTH} levels deep{at}; a {thing} needs far fewer.")
            }
            _ => format!("is too large once its anchors and aliases are expanded{at}: write the values out instead."),
        },
        serde_saphyr::Error::MultipleDocuments { .. } => {
            format!("holds more than one YAML document{at}: remove the `---` separator and keep one {thing}.")
        }
        other => format!("is not valid YAML: {other}."),
    };
    FieldError::new(field, Rule::Syntax, message)
}
