//! Validation problems and the Directus-shaped error body they are reported in.
//!
//! Every problem names the field it is about (`containers[1].ports[0].port`), the rule it broke
//! and a sentence a student can act on. The body is the one the LLP frontend already parses:
//! `{"errors": [{"message", "extensions": {"code", "field", "type"}}]}`.

use serde::Serialize;
use std::fmt;

/// The Directus error code of every validation problem.
pub const VALIDATION_FAILED: &str = "VALIDATION_FAILED";

/// Which rule a value broke; stable strings, reported as `extensions.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The YAML could not be read at all (syntax, size, depth, several documents).
    Syntax,
    /// A required field is missing.
    Required,
    /// A key that the deployment format does not know.
    UnknownField,
    /// The value has the wrong type (text where a number belongs, …).
    WrongType,
    /// A number outside its allowed range, or a list with too many or too few items.
    OutOfRange,
    /// Text that does not have the required form (names, paths, sizes).
    InvalidFormat,
    /// A name used twice where it must be unique.
    Duplicate,
    /// A reference to something that is not declared (a volume, a container, a port).
    UnknownReference,
    /// Two settings that cannot be combined.
    Conflict,
}

impl Rule {
    /// The stable name of the rule, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Syntax => "syntax",
            Rule::Required => "required",
            Rule::UnknownField => "unknown_field",
            Rule::WrongType => "wrong_type",
            Rule::OutOfRange => "out_of_range",
            Rule::InvalidFormat => "invalid_format",
            Rule::Duplicate => "duplicate",
            Rule::UnknownReference => "unknown_reference",
            Rule::Conflict => "conflict",
        }
    }
}

/// One problem with a deployment: where it is, which rule it broke, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending value: `containers[0].cpu`, `exposed_port`, or `data` for the
    /// YAML document as a whole.
    pub field: String,
    /// The rule that was broken.
    pub rule: Rule,
    /// A sentence that says what is wrong and how to fix it.
    pub message: String,
}

impl FieldError {
    /// A problem with the value at `field`.
    pub fn new(field: impl Into<String>, rule: Rule, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule,
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The Directus error body: `{"errors": [...]}`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// One entry per problem.
    pub errors: Vec<ErrorEntry>,
}

/// One entry of [`ErrorBody`].
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorEntry {
    /// The human-readable message, prefixed with the field path.
    pub message: String,
    /// Machine-readable details.
    pub extensions: ErrorExtensions,
}

/// The `extensions` object of an [`ErrorEntry`].
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorExtensions {
    /// The Directus error code, e.g. `VALIDATION_FAILED`.
    pub code: &'static str,
    /// The field path, when the error is about one field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The broken rule, when the error is a validation problem.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    /// The translation key the LLP frontend shows for this error, as the extension it was
    /// written against sent it (`api_errors.not_enough_resources`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl ErrorBody {
    /// The body reporting every validation problem at once.
    pub fn validation(problems: &[FieldError]) -> Self {
        let errors = problems
            .iter()
            .map(|p| ErrorEntry {
                message: p.to_string(),
                extensions: ErrorExtensions {
                    code: VALIDATION_FAILED,
                    field: Some(p.field.clone()),
                    rule: Some(p.rule),
                    reason: None,
                },
            })
            .collect();
        Self { errors }
    }

    /// A body with one error that is not about a field (not found, forbidden, …).
    pub fn single(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            errors: vec![ErrorEntry {
                message: message.into(),
                extensions: ErrorExtensions {
                    code,
                    field: None,
                    rule: None,
                    reason: None,
                },
            }],
        }
    }
}
