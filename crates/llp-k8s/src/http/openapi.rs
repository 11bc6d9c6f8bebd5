//! `GET /openapi.json`: the OpenAPI 3.1 document of the service, generated from the handlers
//! themselves (each carries `#[utoipa::path]` and is registered through `utoipa-axum`, so a
//! route cannot exist without its documentation, nor the reverse). The deployment YAML's
//! schema comes from the same types as `/schema/deployment.json`.

use llp_spec::ErrorBody;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's frame: title, security schemes, tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "llp-k8s",
        description = "Self-service Kubernetes deployments for the LLP: deploy a record of the \
            `deployments` collection, read its status, logs and events, scale, restart and delete \
            it. Every `/kubernetes` route needs the caller's LLP token. Errors use the Directus \
            shape `{\"errors\": [{\"message\", \"extensions\": {\"code\", \"field\"}}]}`."
    ),
    modifiers(&Security),
    security(("token" = []), ("access_token" = [])),
    tags(
        (name = "deployments", description = "Deploy a record and read its status"),
        (name = "actions", description = "Scale, restart, delete; a pod's logs and events"),
        (name = "data", description = "Key/value data for `fromSecret` and `fromConfig`"),
        (name = "cluster", description = "What the cluster offers"),
        (name = "records", description = "The embedded record source (Directus item API shape); only without a real LLP API"),
        (name = "reservations", description = "GPU bookings of the embedded record source (Directus item API shape): admins write, users read their own"),
        (name = "operations", description = "Health, readiness, metrics, schemas")
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The user's LLP token"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "access_token",
                "The user's LLP token as a query parameter (the Directus convention)",
            ))),
        );
    }
}

/// The failures every authenticated route may answer with.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its documentation is used.
pub enum CommonErrors {
    /// No token, or one the record source does not know.
    #[response(status = 401, description = "No or invalid token (`INVALID_CREDENTIALS`)")]
    Unauthorized(ErrorBody),
    /// The LLP API refuses the record (it says the same for one that does not exist).
    #[response(
        status = 403,
        description = "The LLP API does not let the caller read this record (`FORBIDDEN`)"
    )]
    Forbidden(ErrorBody),
    /// Unknown, someone else's (embedded source), not deployed yet, or a pod of another deployment.
    #[response(
        status = 404,
        description = "Unknown, not the caller's, or not deployed yet (`NOT_FOUND`)"
    )]
    NotFound(ErrorBody),
    /// The LLP API is unreachable or failed.
    #[response(
        status = 502,
        description = "The LLP API is unreachable or failed; the message names it"
    )]
    BadGateway(ErrorBody),
    /// The cluster or a record source failed.
    #[response(
        status = 503,
        description = "The cluster or the record source is unavailable; the message names which"
    )]
    Unavailable(ErrorBody),
    /// A dependency was too slow.
    #[response(status = 504, description = "The cluster or the LLP API did not answer in time")]
    Timeout(ErrorBody),
}

/// The `{id}` path parameter.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only its documentation is used.
pub struct DeploymentId {
    /// The record's id in the `deployments` collection (a UUID or an integer).
    pub id: String,
}

/// The `{id}` and `{pod}` path parameters.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only its documentation is used.
pub struct PodPath {
    /// The record's id in the `deployments` collection.
    pub id: String,
    /// One of the deployment's pods, as `GET /kubernetes/deployments/{id}` lists them.
    pub pod: String,
}

/// Adds what utoipa does not generate: the deployment YAML's schema (from the same types as
/// `/schema/deployment.json`) and the `/openapi.json` route itself.
pub fn finish(openapi: utoipa::openapi::OpenApi) -> Value {
    let mut document = serde_json::to_value(&openapi).unwrap_or_default();
    let mut spec = llp_spec::deployment_schema();
    let definitions = spec.as_object_mut().and_then(|o| o.remove("$defs")).unwrap_or_default();
    if let Some(object) = spec.as_object_mut() {
        object.remove("$schema");
    }
    let schemas = &mut document["components"]["schemas"];
    if let Value::Object(definitions) = definitions {
        for (name, schema) in definitions {
            schemas[format!("DeploymentSpec.{name}")] = schema;
        }
    }
    schemas["DeploymentSpec"] = spec;
    // What `parse_pairs` accepts: an object of scalar values under Kubernetes data keys, or a
    // YAML mapping of them as one JSON string.
    schemas["KeyValues"] = serde_json::json!({
        "description": "Keys and values for `fromSecret`/`fromConfig`; values are stringified",
        "oneOf": [
            {"type": "object",
             "propertyNames": {"pattern": "^[-._a-zA-Z0-9]{1,253}$"},
             "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
            {"type": "string", "description": "A YAML mapping of the same keys and values"}
        ]
    });
    // utoipa-axum lists a route's path parameters, and so does each handler's `params(…)`:
    // keep one of each (the documented one, which comes first).
    if let Some(paths) = document["paths"].as_object_mut() {
        for operation in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|i| i.values_mut())
        {
            if let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) {
                let mut seen = std::collections::BTreeSet::new();
                parameters.retain(|p| seen.insert((p["name"].to_string(), p["in"].to_string())));
            }
        }
    }
    // One handler serving two methods (restart: GET and POST) gives both its operationId,
    // which must be unique: such ids get their method appended.
    if let Some(paths) = document["paths"].as_object_mut() {
        let mut seen: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        for item in paths.values().filter_map(Value::as_object) {
            for operation in item.values() {
                if let Some(id) = operation["operationId"].as_str() {
                    *seen.entry(id.to_owned()).or_default() += 1;
                }
            }
        }
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for (method, operation) in item.iter_mut() {
                let id = operation["operationId"].as_str().map(str::to_owned);
                if let Some(id) = id.filter(|id| seen.get(id).is_some_and(|n| *n > 1)) {
                    operation["operationId"] = Value::String(format!("{id}_{method}"));
                }
            }
        }
    }
    // The schema's own references point into `$defs`; here they live in the components.
    let text = document
        .to_string()
        .replace("\"#/$defs/", "\"#/components/schemas/DeploymentSpec.");
    let mut document: Value = serde_json::from_str(&text).unwrap_or_default();
    document["paths"]["/openapi.json"] = serde_json::json!({"get": {
        "tags": ["operations"],
        "summary": "This document",
        "security": [],
        "responses": {"200": {"description": "The OpenAPI 3.1 document", "content": {"application/json": {}}}}
    }});
    document
}
