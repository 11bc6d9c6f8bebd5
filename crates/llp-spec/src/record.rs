//! The deployment record of the LLP API and its validation as a whole: the YAML in `data`
//! plus the `exposed_*` fields, which must point into that YAML.

use crate::error::{FieldError, Rule};
use crate::limits::Limits;
use crate::spec::Spec;
use crate::validate::{did_you_mean, is_dns_label};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A record id: Directus allows UUIDs (text) and integers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum RecordId {
    /// An integer id.
    Int(i64),
    /// A text id, usually a UUID.
    Text(String),
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordId::Int(n) => write!(f, "{n}"),
            RecordId::Text(s) => f.write_str(s),
        }
    }
}

/// A record of the `deployments` collection, as the LLP API returns it. Fields this service
/// does not use (dates, `user_updated`, …) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Record {
    /// The record id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RecordId>,
    /// Display title.
    #[serde(default)]
    pub title: Option<String>,
    /// The deployment YAML.
    #[serde(default)]
    pub data: Option<String>,
    /// Container that the hostname exposes.
    #[serde(default)]
    pub exposed_service: Option<String>,
    /// Port of that container that the hostname exposes.
    #[serde(default)]
    pub exposed_port: Option<serde_json::Value>,
    /// DNS label under the ingress domain.
    #[serde(default)]
    pub exposed_hostname: Option<String>,
    /// The owner's user id.
    #[serde(default)]
    pub user_created: Option<String>,
    /// When the record was made (if the collection records it). Objects are stamped with it,
    /// so that a later record given the same id never takes over an earlier one's objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<String>,
}

/// Where the deployment is reachable from outside the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exposure {
    /// The app container that serves it.
    pub service: String,
    /// The port of that container.
    pub port: u16,
    /// The host label, if the deployment gets an Ingress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// A record that validated: its spec and its exposure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    /// The validated YAML, normalised.
    #[serde(flatten)]
    pub spec: Spec,
    /// `exposed_*`, checked against the spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expose: Option<Exposure>,
}

impl Deployment {
    /// The hostname label of the Ingress, if any.
    pub fn hostname(&self) -> Option<&str> {
        self.expose.as_ref()?.hostname.as_deref()
    }
}

/// Validates a whole record (YAML and `exposed_*`) for a user with `limits`.
pub fn validate_record(record: &Record, limits: &Limits) -> Result<Deployment, Vec<FieldError>> {
    validate_record_with(record, limits, &|_| false)
}

/// [`validate_record`], where a mount may also name one of the owner's existing claims
/// (`own_claim` says which names are), as upstream allowed: `<volume>-sd-<id>-<ordinal>`.
pub fn validate_record_with(
    record: &Record,
    limits: &Limits,
    own_claim: &dyn Fn(&str) -> bool,
) -> Result<Deployment, Vec<FieldError>> {
    let Some(yaml) = record.data.as_deref().filter(|d| !d.trim().is_empty()) else {
        return Err(vec![FieldError::new(
            "data",
            Rule::Required,
            "is required: the record's `data` must hold the deployment YAML.",
        )]);
    };
    let spec = crate::validate::validate_yaml_with(yaml, limits, own_claim);
    let expose = match &spec {
        Ok(spec) => check_exposure(record, spec),
        // Without a valid spec, only the fields' own form can be checked.
        Err(_) => check_exposure_form(record).map(|_| None),
    };
    match (spec, expose) {
        (Ok(spec), Ok(expose)) => Ok(Deployment { spec, expose }),
        (spec, expose) => Err(spec
            .err()
            .into_iter()
            .flatten()
            .chain(expose.err().into_iter().flatten())
            .collect()),
    }
}

/// The `exposed_*` fields, read and checked for their own form. Empty text counts as absent
/// (Directus forms store cleared inputs as "").
struct ExposureFields<'a> {
    service: Option<&'a str>,
    port: Option<u16>,
    hostname: Option<&'a str>,
}

/// The text of an optional field, with "" as absent.
fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

fn check_exposure_form(record: &Record) -> Result<ExposureFields<'_>, Vec<FieldError>> {
    let mut problems = Vec::new();
    let port = match &record.exposed_port {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => match value.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|n| *n > 0) {
            Some(port) => Some(port),
            None => {
                // Text like "80" is the wrong type, not a number out of range.
                let (rule, hint) = match value {
                    serde_json::Value::Number(_) => (Rule::OutOfRange, ""),
                    serde_json::Value::String(_) => (Rule::WrongType, " Write the number without quotes."),
                    _ => (Rule::WrongType, ""),
                };
                problems.push(FieldError::new(
                    "exposed_port",
                    rule,
                    format!(
                        "must be a port number from 1 to 65535, not {}.{hint}",
                        crate::validate::describe(value)
                    ),
                ));
                None
            }
        },
    };
    let hostname = text(&record.exposed_hostname);
    if let Some(host) = hostname
        && !is_dns_label(host)
    {
        let message = format!(
            "`{host}` is not a valid hostname: use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit (like `my-app`)."
        );
        problems.push(FieldError::new("exposed_hostname", Rule::InvalidFormat, message));
    }
    let fields = ExposureFields {
        service: text(&record.exposed_service),
        port,
        hostname,
    };
    if problems.is_empty() { Ok(fields) } else { Err(problems) }
}

fn check_exposure(record: &Record, spec: &Spec) -> Result<Option<Exposure>, Vec<FieldError>> {
    let fields = check_exposure_form(record)?;
    let mut problems = Vec::new();
    let mut require = |present: bool, field: &str, what: &str| {
        if !present {
            problems.push(FieldError::new(
                field,
                Rule::Required,
                format!("is required to expose the deployment: {what}."),
            ));
        }
    };
    if fields.hostname.is_some() || fields.port.is_some() || record.exposed_port.as_ref().is_some_and(|v| !v.is_null())
    {
        require(
            fields.service.is_some(),
            "exposed_service",
            "name the container that serves it",
        );
    }
    if fields.hostname.is_some() || fields.service.is_some() {
        require(
            fields.port.is_some(),
            "exposed_port",
            "give one of that container's ports",
        );
    }
    let (Some(service), Some(port)) = (fields.service, fields.port) else {
        return if problems.is_empty() { Ok(None) } else { Err(problems) };
    };
    let Some(container) = spec.container(service) else {
        let hint = did_you_mean(service, spec.containers.iter().map(|c| c.name.as_str()));
        problems.push(FieldError::new(
            "exposed_service",
            Rule::UnknownReference,
            format!("`{service}` is not a container of this deployment.{hint}"),
        ));
        return Err(problems);
    };
    if !container.ports.iter().any(|p| p.port == port) {
        let ports: Vec<String> = container.ports.iter().map(|p| p.port.to_string()).collect();
        let has = if ports.is_empty() {
            "declares no ports".to_owned()
        } else {
            format!("declares ports {}", ports.join(", "))
        };
        let message = format!(
            "{port} is not a port of container `{service}`, which {has}: add it under its `ports` or pick one of those."
        );
        problems.push(FieldError::new("exposed_port", Rule::UnknownReference, message));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Some(Exposure {
        service: service.to_owned(),
        port,
        hostname: fields.hostname.map(str::to_owned),
    }))
}
