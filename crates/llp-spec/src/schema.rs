//! The JSON Schema of the deployment YAML, generated from the types the parser reads
//! ([`crate::raw`]), for editors' autocompletion and `GET /schema/deployment.json`.
//!
//! The schema states the default group's limits; members of a group with larger maxima may
//! exceed them, and the service's validation (not the schema) is the authority.

use crate::raw::RawSpec;
use schemars::generate::SchemaSettings;

/// The JSON Schema (draft 2020-12) of the deployment YAML.
pub fn deployment_schema() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<RawSpec>();
    let mut value = schema.to_value();
    if let Some(object) = value.as_object_mut() {
        object.insert("required".into(), serde_json::json!(["containers"]));
    }
    value
}
