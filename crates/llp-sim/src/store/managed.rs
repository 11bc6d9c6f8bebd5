//! Field ownership, as the API server keeps it in `metadata.managedFields` (FieldsV1): which
//! manager set which field. It decides what a server-side apply removes (the fields its
//! manager set before and no longer applies, unless another manager set them too) and when
//! an apply conflicts (it would change a value another manager set). A create or update
//! without apply makes its manager owner of every field it changed, defaults included; that
//! is why an object created with POST keeps a container a later apply drops.
//!
//! Kept simpler than the real one: `status` is not tracked, and the API server's take-over of
//! fields from a client-side apply's `last-applied-configuration` is not modelled.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// One step of a field path, as FieldsV1 spells it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// `f:<name>`: a field of a map or struct.
    Field(String),
    /// `k:<json>`: the item of a keyed list (containers by name, ports by number and protocol).
    Key(String),
    /// `.`: the keyed item itself (owning it keeps it when an apply drops it).
    Itself,
}

pub type Path = Vec<Step>;

/// A set of owned field paths.
pub type FieldSet = BTreeSet<Path>;

/// Metadata the server sets: never owned.
const SERVER_METADATA: [&str; 9] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
];

/// The key fields of the items of a list that merges by key (`x-kubernetes-list-map-keys`);
/// `None` for an atomic list, which one manager owns whole.
fn list_keys(field: &str, item: &Value) -> Option<&'static [&'static str]> {
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "imagePullSecrets" => {
            Some(&["name"])
        }
        "volumeMounts" => Some(&["mountPath"]),
        "ports" if item.get("containerPort").is_some() => Some(&["containerPort", "protocol"]),
        "ports" => Some(&["port", "protocol"]),
        "ownerReferences" => Some(&["uid"]),
        _ => None,
    }
}

/// The `k:` key of a list item, e.g. `{"containerPort":80,"protocol":"TCP"}`; `None` when the
/// list is atomic or the item lacks its key.
fn item_key(field: &str, item: &Value) -> Option<String> {
    let keys = list_keys(field, item)?;
    let mut parts = Vec::with_capacity(keys.len());
    for key in keys {
        let value = match (item.get(*key), *key) {
            (Some(v), _) => v.clone(),
            (None, "protocol") => json!("TCP"), // the default, part of the key on a real server
            (None, _) => return None,
        };
        parts.push(format!("{}:{value}", Value::String((*key).to_owned())));
    }
    Some(format!("{{{}}}", parts.join(",")))
}

fn keyed(field: &str, items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| item_key(field, i).is_some())
}

/// A map that is owned whole (`x-kubernetes-map-type: atomic`): label selectors.
fn atomic_map(field: &str, value: &Value) -> bool {
    field == "selector" && (value.get("matchLabels").is_some() || value.get("matchExpressions").is_some())
}

/// Every field path set in `object`, leaves and keyed items.
pub fn fields_of(object: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    let Value::Object(map) = object else { return set };
    let mut path = Path::new();
    for (name, value) in map {
        match name.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                let Value::Object(meta) = value else { continue };
                path.push(Step::Field(name.clone()));
                for (field, value) in meta.iter().filter(|(f, _)| !SERVER_METADATA.contains(&f.as_str())) {
                    walk_field(field, value, &mut path, &mut set);
                }
                path.pop();
            }
            _ => walk_field(name, value, &mut path, &mut set),
        }
    }
    set
}

fn walk_field(name: &str, value: &Value, path: &mut Path, set: &mut FieldSet) {
    if value.is_null() {
        return; // an unset field, as Go's omitempty leaves it out
    }
    path.push(Step::Field(name.to_owned()));
    match value {
        Value::Object(map) if !map.is_empty() && !atomic_map(name, value) => {
            for (field, child) in map {
                walk_field(field, child, path, set);
            }
        }
        Value::Array(items) if keyed(name, items) => {
            for item in items {
                path.push(Step::Key(item_key(name, item).unwrap_or_default()));
                path.push(Step::Itself);
                set.insert(path.clone());
                path.pop();
                for (field, child) in item.as_object().into_iter().flatten() {
                    walk_field(field, child, path, set);
                }
                path.pop();
            }
        }
        _ => {
            set.insert(path.clone());
        }
    }
    path.pop();
}

/// The value at `path` in `object`.
fn value_at<'a>(object: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut current = object;
    let mut field = "";
    for step in path {
        current = match step {
            Step::Field(name) => {
                field = name;
                current.get(name)?
            }
            Step::Key(key) => current
                .as_array()?
                .iter()
                .find(|item| item_key(field, item).as_deref() == Some(key))?,
            Step::Itself => current,
        };
    }
    Some(current)
}

/// Removes the field (or keyed item) at `path` from `object`, if there.
fn remove_at(object: &mut Value, path: &[Step]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    match last {
        Step::Itself => {
            let Some((Step::Key(key), list_path)) = parent.split_last() else {
                return;
            };
            let field = match list_path.last() {
                Some(Step::Field(f)) => f.clone(),
                _ => return,
            };
            if let Some(items) = value_at_mut(object, list_path).and_then(Value::as_array_mut) {
                items.retain(|item| item_key(&field, item).as_deref() != Some(key));
            }
        }
        Step::Field(name) => {
            if let Some(map) = value_at_mut(object, parent).and_then(Value::as_object_mut) {
                map.remove(name);
            }
        }
        Step::Key(_) => {}
    }
}

fn value_at_mut<'a>(object: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut current = object;
    let mut field = String::new();
    for step in path {
        current = match step {
            Step::Field(name) => {
                field.clone_from(name);
                current.get_mut(name)?
            }
            Step::Key(key) => current
                .as_array_mut()?
                .iter_mut()
                .find(|item| item_key(&field, item).as_deref() == Some(key))?,
            Step::Itself => current,
        };
    }
    Some(current)
}

/// How a manager wrote its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update or any other patch.
    Update,
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: Operation,
    /// `scale` for writes through the scale subresource.
    pub subresource: Option<String>,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: Operation, subresource: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == subresource
    }
}

/// An object's entries, read from its `metadata.managedFields`.
pub fn entries_of(object: &Value) -> Vec<Entry> {
    let Some(list) = object["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            Some(Entry {
                manager: e["manager"].as_str()?.to_owned(),
                operation: if e["operation"] == "Apply" {
                    Operation::Apply
                } else {
                    Operation::Update
                },
                subresource: e["subresource"].as_str().map(str::to_owned),
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
                time: e["time"].as_str().unwrap_or_default().to_owned(),
                fields: parse_fields_v1(&e["fieldsV1"]),
            })
        })
        .collect()
}

/// Writes `entries` into the object's `metadata.managedFields` (removed when there are none).
pub fn set_entries(object: &mut Value, entries: &[Entry]) {
    let Some(meta) = object["metadata"].as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
        return;
    }
    let list = entries
        .iter()
        .map(|e| {
            let mut entry = json!({
                "manager": e.manager,
                "operation": if e.operation == Operation::Apply { "Apply" } else { "Update" },
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(&e.fields),
            });
            if let Some(sub) = &e.subresource {
                entry["subresource"] = json!(sub);
            }
            entry
        })
        .collect();
    meta.insert("managedFields".into(), Value::Array(list));
}

fn fields_v1(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for step in path {
            let name = match step {
                Step::Field(f) => format!("f:{f}"),
                Step::Key(k) => format!("k:{k}"),
                Step::Itself => ".".to_owned(),
            };
            node = node
                .entry(name)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("FieldsV1 nodes are objects");
        }
    }
    Value::Object(root)
}

fn parse_fields_v1(value: &Value) -> FieldSet {
    fn walk(node: &Map<String, Value>, path: &mut Path, set: &mut FieldSet) {
        for (name, child) in node {
            let step = match name.split_at_checked(2) {
                _ if name == "." => Step::Itself,
                Some(("f:", f)) => Step::Field(f.to_owned()),
                Some(("k:", k)) => Step::Key(k.to_owned()),
                _ => continue, // `v:` (sets of values) and `i:` are not tracked here
            };
            path.push(step);
            match child.as_object() {
                Some(children) if !children.is_empty() => walk(children, path, set),
                _ => {
                    set.insert(path.clone());
                }
            }
            path.pop();
        }
    }
    let mut set = FieldSet::new();
    if let Some(root) = value.as_object() {
        walk(root, &mut Path::new(), &mut set);
    }
    set
}

/// Who writes, for ownership.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub subresource: Option<&'a str>,
    pub api_version: &'a str,
    pub time: &'a str,
}

/// Ownership after a create (`old` = `None`) or update by `writer`: it owns what it changed,
/// which no other manager owns any longer; fields gone from the object are owned by nobody.
pub fn record_update(entries: &mut Vec<Entry>, writer: Writer<'_>, old: Option<&Value>, new: &Value) {
    let now = fields_of(new);
    let changed: FieldSet = match old {
        None => now.clone(),
        Some(old) => {
            let before = fields_of(old);
            now.iter()
                .filter(|p| !before.contains(*p) || value_at(old, p) != value_at(new, p))
                .cloned()
                .collect()
        }
    };
    for entry in entries.iter_mut() {
        entry.fields.retain(|p| now.contains(p) && !changed.contains(p));
    }
    gain(entries, writer, Operation::Update, changed, false);
}

fn gain(entries: &mut Vec<Entry>, writer: Writer<'_>, operation: Operation, fields: FieldSet, replace: bool) {
    match entries
        .iter_mut()
        .find(|e| e.is(writer.manager, operation, writer.subresource))
    {
        Some(entry) => {
            if replace {
                entry.fields = fields;
            } else {
                entry.fields.extend(fields);
            }
            entry.time = writer.time.to_owned();
        }
        None if !fields.is_empty() => entries.push(Entry {
            manager: writer.manager.to_owned(),
            operation,
            subresource: writer.subresource.map(str::to_owned),
            api_version: writer.api_version.to_owned(),
            time: writer.time.to_owned(),
            fields,
        }),
        None => {}
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// A controller's write of an object's `status` (through the status subresource): its
/// manager owns the status fields it wrote, as kube-apiserver records a kubelet's or
/// kube-controller-manager's status updates.
pub fn record_status(entries: &mut Vec<Entry>, writer: Writer<'_>, status: &Value) {
    let mut fields = FieldSet::new();
    walk_field("status", status, &mut Path::new(), &mut fields);
    gain(entries, writer, Operation::Update, fields, true);
}

/// A field an apply would change while another manager owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// The field as the API server names it: `.spec.volumeClaimTemplates`,
    /// `.spec.template.spec.containers[name="web"].image`.
    pub field: String,
}

/// Server-side apply of `applied` by `writer` to `live`: conflicts unless `force`; otherwise
/// the object with the fields only this manager set and no longer applies removed and the
/// applied ones merged in (keyed lists item by item), and `entries` updated.
pub fn apply(
    live: &Value,
    applied: &Value,
    entries: &mut Vec<Entry>,
    writer: Writer<'_>,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let wanted = fields_of(applied);
    let mine = |e: &Entry| e.is(writer.manager, Operation::Apply, writer.subresource);
    let mut conflicts = Vec::new();
    let mut taken = FieldSet::new();
    for entry in entries.iter().filter(|e| !mine(e) && e.manager != writer.manager) {
        for path in entry.fields.intersection(&wanted) {
            let differs = path.last() != Some(&Step::Itself) && value_at(live, path) != value_at(applied, path);
            if differs {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    field: display(path),
                });
                taken.insert(path.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for entry in entries.iter_mut() {
        entry.fields.retain(|p| !taken.contains(p));
    }
    let previous = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut result = live.clone();
    let dropped: Vec<&Path> = previous.difference(&wanted).collect();
    for path in dropped {
        let owned_below = others.iter().any(|o| o.starts_with(path_of_item(path)));
        let kept = others.contains(path) || (path.last() == Some(&Step::Itself) && owned_below);
        if !kept {
            remove_at(&mut result, path);
        }
    }
    merge(&mut result, applied, "");
    gain(entries, writer, Operation::Apply, wanted, true);
    Ok(result)
}

/// For a keyed item's `.` path, the item's path (its fields start with it).
fn path_of_item(path: &[Step]) -> &[Step] {
    match path.split_last() {
        Some((Step::Itself, item)) => item,
        _ => path,
    }
}

/// Merges an applied configuration in: maps field by field, keyed lists item by item,
/// anything else replaced.
fn merge(live: &mut Value, applied: &Value, field: &str) {
    match (live, applied) {
        (Value::Object(live), Value::Object(applied)) if !atomic_map(field, &Value::Object(applied.clone())) => {
            for (name, value) in applied {
                match live.get_mut(name) {
                    Some(existing) => merge(existing, value, name),
                    None => {
                        live.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(items), Value::Array(applied_items)) if keyed(field, applied_items) && keyed(field, items) => {
            for applied_item in applied_items {
                let key = item_key(field, applied_item);
                match items.iter_mut().find(|i| item_key(field, i) == key) {
                    Some(existing) => merge(existing, applied_item, ""),
                    None => items.push(applied_item.clone()),
                }
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

/// A path as conflict messages name it.
fn display(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                text.push('.');
                text.push_str(f);
            }
            Step::Key(k) => {
                let fields: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let inner: Vec<String> = fields.iter().map(|(n, v)| format!("{n}={v}")).collect();
                text.push_str(&format!("[{}]", inner.join(",")));
            }
            Step::Itself => {}
        }
    }
    text
}

/// The API server's message for conflicts.
pub fn conflict_message(conflicts: &[Conflict], api_version: &str) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {api_version}: {}",
            only.manager, only.field
        );
    }
    let mut text = format!("Apply failed with {} conflicts:", conflicts.len());
    for c in conflicts {
        text.push_str(&format!(
            " conflict with \"{}\" using {api_version}: {}",
            c.manager, c.field
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIME: &str = "2026-01-01T00:00:00Z";

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            subresource: None,
            api_version: "apps/v1",
            time: TIME,
        }
    }

    fn sts(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "uid": "u"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn fields_are_spelled_as_fields_v1_and_read_back() {
        let object = sts(json!([{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {}}]));
        let fields = fields_of(&object);
        let v1 = fields_v1(&fields);
        assert_eq!(v1["f:spec"]["f:selector"], json!({}), "label selectors are atomic");
        assert!(v1["f:metadata"].is_null(), "server metadata is nobody's");
        let web = &v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"];
        assert_eq!(web["."], json!({}));
        assert_eq!(web["f:resources"], json!({}));
        assert!(web["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]["f:containerPort"].is_object());
        assert_eq!(parse_fields_v1(&v1), fields);
    }

    #[test]
    fn an_apply_removes_only_what_its_manager_alone_set() {
        let two = sts(json!([{"name": "web", "image": "nginx"}, {"name": "side", "image": "busybox"}]));
        let one = sts(json!([{"name": "web", "image": "nginx"}]));
        let mut entries = Vec::new();
        let live = apply(&Value::Null, &two, &mut entries, writer("llp"), false).unwrap();
        let live = apply(&live, &one, &mut entries, writer("llp"), false).unwrap();
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "nginx"}])
        );

        // Created with a plain POST, the creator co-owns every field: the apply cannot drop them.
        let mut entries = Vec::new();
        record_update(&mut entries, writer("llp"), None, &two);
        let live = apply(&two, &two, &mut entries, writer("llp"), true).unwrap();
        let live = apply(&live, &one, &mut entries, writer("llp"), true).unwrap();
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn an_apply_changing_another_managers_value_conflicts_unless_forced() {
        let mut entries = Vec::new();
        let created = sts(json!([{"name": "web", "image": "nginx"}]));
        record_update(&mut entries, writer("kubectl-client-side-apply"), None, &created);
        let same = apply(&created, &created, &mut entries.clone(), writer("kubectl"), false);
        assert!(same.is_ok(), "equal values are co-owned: {same:?}");
        let newer = sts(json!([{"name": "web", "image": "nginx:2"}]));
        let conflicts = apply(&created, &newer, &mut entries.clone(), writer("kubectl"), false).unwrap_err();
        assert_eq!(
            conflict_message(&conflicts, "apps/v1"),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.template.spec.containers[name=\"web\"].image"
        );
        let forced = apply(&created, &newer, &mut entries, writer("kubectl"), true).unwrap();
        assert_eq!(forced["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:2");
        let old_owner = entries
            .iter()
            .find(|e| e.manager == "kubectl-client-side-apply")
            .unwrap();
        assert!(
            !fields_v1(&old_owner.fields).to_string().contains("f:image"),
            "the forced field changed hands"
        );
    }

    #[test]
    fn an_update_takes_the_fields_it_changes() {
        let mut entries = Vec::new();
        let created = sts(json!([{"name": "web", "image": "nginx"}]));
        apply(&Value::Null, &created, &mut entries, writer("llp"), false).unwrap();
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        let scale = Writer {
            subresource: Some("scale"),
            ..writer("kubectl")
        };
        record_update(&mut entries, scale, Some(&created), &scaled);
        let applier = &entries[0];
        assert!(
            !applier
                .fields
                .contains(&vec![Step::Field("spec".into()), Step::Field("replicas".into())])
        );
        assert_eq!(entries[1].subresource.as_deref(), Some("scale"));
        assert_eq!(fields_v1(&entries[1].fields), json!({"f:spec": {"f:replicas": {}}}));
    }
}
