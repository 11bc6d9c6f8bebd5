//! Get, list, create, update, patch and delete of objects, and routing to the subresources.

use super::path::Target;
use super::status::ApiError;
use super::{ApiState, Params, events_v1, logs, scale, table, watch};
use crate::resources::RESOURCES;
use crate::store::patch::PatchKind;
use crate::store::selector::{FieldSelector, LabelSelector};
use crate::store::{ObjectKey, Propagation, resource_name};
use axum::Json;
use axum::body::Bytes;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request, as the handlers need it.
pub struct Request<'a> {
    pub state: &'a ApiState,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub params: &'a Params,
    pub body: &'a Bytes,
}

impl Request<'_> {
    /// The store, locked; with `?dryRun=All` its writes are checked but not kept.
    pub fn store(&self) -> StoreGuard<'_> {
        let mut store = self.state.store.lock().expect("store lock");
        store.set_dry_run(self.param("dryRun") == Some("All"));
        store.set_author(self.author());
        StoreGuard(store)
    }

    /// Who writes: the field manager, named by the request or by its User-Agent's product
    /// (`kubectl/v1.33.0 (linux/amd64) …` writes as `kubectl`), as the API server names it.
    pub fn author(&self) -> crate::store::Author {
        let user_agent = self
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|a| a.to_str().ok())
            .and_then(|a| a.split('/').next())
            .filter(|product| !product.is_empty())
            .map(str::to_owned);
        crate::store::Author {
            field_manager: self.param("fieldManager").map(str::to_owned),
            user_agent: Some(user_agent.unwrap_or_else(|| "unknown".into())),
            force: self.flag("force"),
            subresource: None,
        }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true" | "1"))
    }

    fn wants_table(&self) -> bool {
        self.headers
            .get(ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(table::wants_table)
    }

    /// Whether the Accept header asks for metadata only (`as=PartialObjectMetadata[List]`,
    /// what kube-rs's `list_metadata` and controllers' metadata informers ask for).
    fn wants_metadata(&self) -> bool {
        self.headers
            .get(ACCEPT)
            .and_then(|a| a.to_str().ok())
            .and_then(|accept| accept.split(',').next())
            .is_some_and(|first| first.contains("as=PartialObjectMetadata"))
    }

    /// The kind of patch the Content-Type names.
    pub fn patch_kind(&self) -> Option<PatchKind> {
        let content_type = self.headers.get(CONTENT_TYPE).and_then(|c| c.to_str().ok());
        PatchKind::from_content_type(content_type.unwrap_or(""))
    }

    /// The body as JSON (or YAML, for server-side apply).
    pub fn json_body(&self) -> Result<Value, ApiError> {
        let content_type = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .unwrap_or("");
        if content_type.starts_with(super::protobuf::CONTENT_TYPE) {
            return super::protobuf::decode(self.body);
        }
        if content_type.contains("yaml") {
            let text = std::str::from_utf8(self.body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            return serde_saphyr::from_str(text).map_err(|e| ApiError::bad_request(format!("invalid YAML body: {e}")));
        }
        serde_json::from_slice(self.body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }

    /// The label and field selectors, with field paths as stored for `resource`.
    pub fn selectors(&self, resource: usize) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = LabelSelector::parse(self.param("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = events_v1::storage_field_selector(resource, self.param("fieldSelector").unwrap_or(""));
        let fields = FieldSelector::parse(&fields).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let kind = crate::resources::RESOURCES[events_v1::storage(resource)].kind;
        if let Some(field) = fields.unsupported(kind) {
            return Err(ApiError::bad_request(format!("field label not supported: {field}")));
        }
        Ok((labels, fields))
    }
}

/// The locked store of one request; a dry run ends with it.
pub struct StoreGuard<'a>(std::sync::MutexGuard<'a, crate::store::Store>);

impl std::ops::Deref for StoreGuard<'_> {
    type Target = crate::store::Store;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        self.0.set_dry_run(false);
        self.0.set_author(crate::store::Author::default());
    }
}

/// Answers a request for a collection, an object or a subresource.
pub async fn handle(request: Request<'_>, target: Target) -> Result<Response, ApiError> {
    match request.param("dryRun") {
        None | Some("All") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other}; the only supported value is All"
            )));
        }
    }
    let rt = &RESOURCES[target.resource];
    if rt.namespaced && target.name.is_some() && target.namespace.is_none() {
        return Err(ApiError::no_route(rt.plural));
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    if target.resource == events_v1::id() && request.method != Method::GET {
        return events_v1::write(&request, &target);
    }
    match (request.method.clone(), target.name.clone(), target.sub.as_deref()) {
        (Method::GET, None, None) if request.flag("watch") => watch::serve(&request, &target).await,
        (Method::GET, None, None) => {
            wait_for_version(&request).await?;
            list(&request, &target)
        }
        (Method::POST, None, None) => create(&request, &target, &namespace),
        (Method::DELETE, None, None) => delete_collection(&request, &target),
        (method, Some(name), sub) => {
            let key = ObjectKey::new(target.resource, if rt.namespaced { &namespace } else { "" }, &name);
            match (method, sub) {
                (Method::GET, None) => get(&request, &key),
                (Method::PUT, None | Some("status")) => update(&request, &key, sub.is_some()),
                (Method::PATCH, None | Some("status")) => patch(&request, &key, sub.is_some()),
                (Method::DELETE, None) => delete(&request, &key),
                (Method::GET, Some("status")) => get(&request, &key),
                (Method::GET, Some("log")) if rt.kind == "Pod" => logs::serve(&request, &key).await,
                (Method::GET | Method::POST, Some("exec")) if rt.kind == "Pod" => exec(&request, &target, &key),
                (method, Some("scale")) if rt.kind == "StatefulSet" => scale::handle(&request, &key, &method),
                (method, _) => Err(ApiError::method_not_allowed(method.as_str())),
            }
        }
        (method, None, _) => Err(ApiError::method_not_allowed(method.as_str())),
    }
}

/// A command in a pod's container: kube-apiserver authorizes a WebSocket exec (a GET) as
/// `create` on `pods/exec` too (Kubernetes 1.35 on); the simulator's nodes run no containers,
/// so the pod's existence is all it can check before it refuses.
fn exec(request: &Request<'_>, target: &Target, key: &ObjectKey) -> Result<Response, ApiError> {
    if *request.method == Method::GET {
        let create = super::rbac::Attributes::of(&Method::POST, target, false);
        super::authorize(request.state, &create)?;
    }
    let exists = request.state.store.lock().expect("store lock").get(key).is_some();
    if !exists {
        return Err(not_found(key));
    }
    Err(ApiError::bad_request(format!(
        "pod {}: the simulator's nodes run no containers, so no command can run in them",
        key.name
    )))
}

/// The `resourceVersion` a request names, if any but "0" (any version).
fn requested_version(request: &Request<'_>) -> Result<Option<u64>, ApiError> {
    match request.param("resourceVersion").filter(|v| !v.is_empty() && *v != "0") {
        None => Ok(None),
        Some(version) => version.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resourceVersion {version:?}: a version a list or watch answered"
            ))
        }),
    }
}

/// A list at a version the store has not reached waits for it, up to 3 s, then answers 504
/// as kube-apiserver does ("Too large resource version").
async fn wait_for_version(request: &Request<'_>) -> Result<(), ApiError> {
    let Some(wanted) = requested_version(request)? else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let current = request.state.store.lock().expect("store lock").revision();
        if wanted <= current {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let mut error = ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Timeout",
                format!("Timeout: Too large resource version: {wanted}, current: {current}"),
            );
            error.details = json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1});
            return Err(error);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn list(request: &Request<'_>, target: &Target) -> Result<Response, ApiError> {
    let (labels, fields) = request.selectors(target.resource)?;
    let rt = &RESOURCES[target.resource];
    // Later pages are read at the first page's version, and so is an exact version.
    let exact = request.param("resourceVersionMatch") == Some("Exact");
    let at =
        super::paging::token_revision(request.param("continue"))?.or(requested_version(request)?.filter(|_| exact));
    let (items, revision) = {
        let store = request.state.store.lock().expect("store lock");
        let (resource, namespace) = (events_v1::storage(target.resource), target.namespace.as_deref());
        let stored = match at {
            Some(revision) if revision < store.revision() => {
                store.list_at(resource, namespace, &labels, &fields, revision)?
            }
            _ => store.list(resource, namespace, &labels, &fields),
        };
        (stored, at.unwrap_or(store.revision()))
    };
    let page = super::paging::cut(items, revision, request.param("limit"), request.param("continue"))?;
    let mut items = events_v1::present_all(target.resource, page.items);
    // kube-apiserver counts what is left only of an unfiltered list.
    let filtered = !labels.is_empty() || !fields.is_empty();
    let more = page.next.map(|token| (token, (!filtered).then_some(page.remaining)));
    if request.wants_table() {
        let mut table = table::render(rt.kind, &items, page.revision, jiff::Timestamp::now());
        if let Some((token, remaining)) = more {
            table["metadata"]["continue"] = token.into();
            if let Some(remaining) = remaining {
                table["metadata"]["remainingItemCount"] = remaining.into();
            }
        }
        return Ok(Json(table).into_response());
    }
    if request.wants_metadata() {
        items = items.iter().map(|o| std::sync::Arc::new(metadata_only(o))).collect();
        return Ok(list_response(
            "PartialObjectMetadataList",
            "meta.k8s.io/v1",
            page.revision,
            more,
            items,
        ));
    }
    Ok(list_response(
        &format!("{}List", rt.kind),
        &rt.api_version(),
        page.revision,
        more,
        items,
    ))
}

/// An object as kube-apiserver answers a metadata-only request: its metadata, nothing else.
fn metadata_only(object: &Value) -> Value {
    serde_json::json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
}

/// A list, streamed in chunks: 8,000 pods are never one 30 MB buffer, nor a deep copy.
fn list_response(
    kind: &str,
    api_version: &str,
    revision: u64,
    more: Option<(String, Option<usize>)>,
    items: Vec<std::sync::Arc<Value>>,
) -> Response {
    const CHUNK: usize = 256;
    let more = more.map_or(String::new(), |(token, remaining)| match remaining {
        Some(remaining) => format!(r#","continue":"{token}","remainingItemCount":{remaining}"#),
        None => format!(r#","continue":"{token}""#),
    });
    let head = format!(
        r#"{{"kind":"{kind}","apiVersion":"{api_version}","metadata":{{"resourceVersion":"{revision}"{more}}},"items":["#
    );
    let chunks: Vec<Vec<std::sync::Arc<Value>>> = items.chunks(CHUNK).map(<[_]>::to_vec).collect();
    let body = futures::stream::iter(
        std::iter::once(head)
            .chain(chunks.into_iter().enumerate().map(|(i, chunk)| {
                let mut text = String::new();
                for (j, item) in chunk.iter().enumerate() {
                    if i > 0 || j > 0 {
                        text.push(',');
                    }
                    text.push_str(&item.to_string());
                }
                text
            }))
            .chain(std::iter::once("]}".to_owned()))
            .map(|text| Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(text))),
    );
    (
        [(CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

fn get(request: &Request<'_>, key: &ObjectKey) -> Result<Response, ApiError> {
    let store = request.state.store.lock().expect("store lock");
    let stored = ObjectKey {
        resource: events_v1::storage(key.resource),
        ..key.clone()
    };
    let object = std::sync::Arc::new(events_v1::present(
        key.resource,
        &*store.get(&stored).ok_or_else(|| not_found(key))?,
    ));
    if request.wants_table() {
        let revision = store.revision();
        return Ok(Json(table::render(
            RESOURCES[key.resource].kind,
            &[object],
            revision,
            jiff::Timestamp::now(),
        ))
        .into_response());
    }
    if request.wants_metadata() {
        return Ok(Json(metadata_only(&object)).into_response());
    }
    Ok(Json(&*object).into_response())
}

fn create(request: &Request<'_>, target: &Target, namespace: &str) -> Result<Response, ApiError> {
    let mut object = request.json_body()?;
    let rt = &RESOURCES[target.resource];
    check_kind(&object, target)?;
    if rt.namespaced {
        let in_body = object["metadata"]["namespace"].as_str().filter(|ns| !ns.is_empty());
        if let Some(ns) = in_body.filter(|ns| *ns != namespace) {
            return Err(ApiError::bad_request(format!(
                "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({namespace})"
            )));
        }
    }
    if let Some(m) = object["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("uid");
    }
    let created = request.store().create(target.resource, namespace, object)?;
    Ok((StatusCode::CREATED, Json(&*created)).into_response())
}

fn update(request: &Request<'_>, key: &ObjectKey, status_only: bool) -> Result<Response, ApiError> {
    let object = request.json_body()?;
    let updated = request.store().update(key, object, status_only)?;
    Ok(Json(&*updated).into_response())
}

fn patch(request: &Request<'_>, key: &ObjectKey, status_only: bool) -> Result<Response, ApiError> {
    let content_type = request
        .headers
        .get(CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
    let kind = PatchKind::from_content_type(content_type)
        .ok_or_else(|| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type})")))?;
    let body = request.json_body()?;
    let mut store = request.store();
    let existed = store.get(key).is_some();
    if !existed && kind == PatchKind::Apply {
        // A server-side apply that creates is authorized as a create too, as the API server does.
        let create = super::rbac::Attributes {
            verb: "create",
            group: RESOURCES[key.resource].group.to_owned(),
            resource: RESOURCES[key.resource].plural.to_owned(),
            namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
            name: Some(key.name.clone()),
        };
        super::authorize(request.state, &create)?;
    }
    let patched = store.patch(key, kind, &body, status_only)?;
    let code = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((code, Json(&*patched)).into_response())
}

fn delete(request: &Request<'_>, key: &ObjectKey) -> Result<Response, ApiError> {
    let propagation = propagation(request)?;
    let (deleted, remains) = {
        let mut store = request.store();
        if let Some(current) = store.get(key) {
            check_preconditions(request, key, &current)?;
        }
        let deleted = store.delete(key, propagation)?;
        (deleted, store.get(key).is_some())
    };
    let kind = RESOURCES[key.resource].kind;
    if kind == "Pod" && !remains && request.param("dryRun").is_none() {
        request.state.logs.remove_pod(&key.namespace, &key.name);
    }
    // Marked for deletion (terminating, or waiting for finalizers, even if they went at
    // once), or a kind whose registry returns what it deleted (kube-apiserver's
    // `ReturnDeletedObject`: pods and Services): the API server answers with the object, as
    // kubectl's `-o` then prints it.
    let marked = deleted["metadata"]["deletionTimestamp"].is_string();
    if remains || marked || matches!(kind, "Pod" | "Service") {
        return Ok(Json(&*deleted).into_response());
    }
    Ok(Json(json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": key.name, "kind": RESOURCES[key.resource].plural, "uid": deleted["metadata"]["uid"]},
    }))
    .into_response())
}

fn delete_collection(request: &Request<'_>, target: &Target) -> Result<Response, ApiError> {
    let (labels, fields) = request.selectors(target.resource)?;
    let propagation = propagation(request)?;
    let rt = &RESOURCES[target.resource];
    let mut store = request.store();
    let doomed = store.list(target.resource, target.namespace.as_deref(), &labels, &fields);
    let mut deleted = Vec::new();
    for object in doomed {
        let key = ObjectKey::new(
            target.resource,
            object["metadata"]["namespace"].as_str().unwrap_or(""),
            object["metadata"]["name"].as_str().unwrap_or(""),
        );
        if let Ok(gone) = store.delete(&key, propagation) {
            deleted.push(gone);
        }
    }
    Ok(list_response(
        &format!("{}List", rt.kind),
        &rt.api_version(),
        store.revision(),
        None,
        deleted,
    ))
}

/// A delete's `preconditions`: the object must still have this uid and resourceVersion, or
/// the delete is a 409 as the API server answers it (a read-then-delete that lost a race).
fn check_preconditions(request: &Request<'_>, key: &ObjectKey, current: &Value) -> Result<(), ApiError> {
    let Some(body) = (!request.body.is_empty()).then(|| request.json_body().ok()).flatten() else {
        return Ok(());
    };
    let checks = [
        ("uid", "UID", "recreated"),
        ("resourceVersion", "ResourceVersion", "modified"),
    ];
    for (field, title, what) in checks {
        let Some(wanted) = body["preconditions"][field].as_str() else {
            continue;
        };
        let actual = current["metadata"][field].as_str().unwrap_or_default();
        if wanted != actual {
            return Err(crate::store::StoreError::Conflict {
                resource: resource_name(&RESOURCES[key.resource]),
                name: key.name.clone(),
                message: format!(
                    "the {title} in the precondition ({wanted}) does not match the {title} in record ({actual}). The object might have been {what}."
                ),
            }
            .into());
        }
    }
    Ok(())
}

fn propagation(request: &Request<'_>) -> Result<Propagation, ApiError> {
    let from_body = if request.body.is_empty() {
        None
    } else {
        request.json_body().ok()
    };
    let policy = request
        .param("propagationPolicy")
        .map(str::to_owned)
        .or_else(|| from_body.and_then(|b| b["propagationPolicy"].as_str().map(str::to_owned)));
    match policy.as_deref() {
        None | Some("Background") => Ok(Propagation::Background),
        Some("Foreground") => Ok(Propagation::Foreground),
        Some("Orphan") => Ok(Propagation::Orphan),
        Some(other) => Err(ApiError::unprocessable(format!(
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        ))),
    }
}

fn check_kind(object: &Value, target: &Target) -> Result<(), ApiError> {
    let rt = &RESOURCES[target.resource];
    match object["kind"].as_str() {
        Some(kind) if kind != rt.kind => Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the URL ({})",
            rt.kind
        ))),
        _ => Ok(()),
    }
}

/// 404 for a missing object, worded like the API server.
pub fn not_found(key: &ObjectKey) -> ApiError {
    crate::store::StoreError::NotFound {
        resource: resource_name(&RESOURCES[key.resource]),
        name: key.name.clone(),
    }
    .into()
}
