//! The object store: every object as JSON, one resourceVersion counter, a bounded history of
//! changes for watches, and the API server's rules for create, update, patch and delete
//! (optimistic concurrency, generation, status subresource, garbage collection).
//!
//! Synchronous and free of HTTP: the API layer holds it behind a mutex. Every change is
//! published on its kind's broadcast channel; [`Store::changes_since`] replays the kind's
//! history (kept per kind, like the API server's watch cache, so that a burst of Events
//! cannot push Pods out of it) so a watch
//! can resume from a resourceVersion, or learn that it is too old (`410 Gone`).

pub mod defaults;
pub mod managed;
pub mod patch;
pub mod schema;
pub mod selector;
pub mod validation;

use crate::resources::{RESOURCES, ResourceId, ResourceType};
use patch::PatchKind;
use selector::{FieldSelector, LabelSelector};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Its kind.
    pub resource: ResourceId,
    /// Its namespace, empty for cluster-scoped kinds.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `name` of kind `resource` in `namespace`.
    pub fn new(resource: ResourceId, namespace: &str, name: &str) -> Self {
        Self {
            resource,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Deleted.
    Deleted,
}

impl EventType {
    /// The watch event type.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug)]
pub struct Change {
    /// The resourceVersion the change produced.
    pub revision: u64,
    /// What happened.
    pub event: EventType,
    /// The object's kind.
    pub resource: ResourceId,
    /// The object after the change (before it, for a deletion).
    pub object: Arc<Value>,
    /// The object before a modification or deletion: a watch with a selector reports one
    /// that leaves the selection as DELETED and one that enters it as ADDED, as
    /// kube-apiserver does; a list at a past version undoes the change with it.
    pub previous: Option<Arc<Value>>,
    /// The watch event line, serialized once for every watch that sends it.
    pub line: std::sync::OnceLock<bytes::Bytes>,
}

impl Change {
    /// `{"type": …, "object": …}` and a newline.
    pub fn watch_line(&self) -> bytes::Bytes {
        self.line
            .get_or_init(|| {
                let mut text = serde_json::json!({"type": self.event.as_str(), "object": &*self.object}).to_string();
                text.push('\n');
                bytes::Bytes::from(text)
            })
            .clone()
    }
}

/// Why a store operation failed; the API layer turns each into a `Status`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The object (or its namespace) does not exist.
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    /// An object of that name exists.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    /// A stale resourceVersion.
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {message}")]
    Conflict {
        resource: String,
        name: String,
        message: String,
    },
    /// The object is not valid.
    #[error("{kind} \"{name}\" is invalid: {}", causes.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join(", "))]
    Invalid {
        kind: String,
        name: String,
        causes: Vec<(String, String)>,
    },
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but cannot be carried out (kube-apiserver: 422 Invalid).
    #[error("{0}")]
    Unprocessable(String),
    /// Admission refused the object (a ResourceQuota, say).
    #[error("{0}")]
    Forbidden(String),
    /// A server-side apply would change fields other managers own.
    #[error("{message}")]
    ApplyConflict {
        message: String,
        conflicts: Vec<managed::Conflict>,
        /// The version the apply was made in, which the messages name.
        api_version: String,
    },
    /// What kube-apiserver answers as an internal error (500): an applied configuration its
    /// typed conversion refuses.
    #[error("{0}")]
    Internal(String),
    /// The requested resourceVersion is older than the kept history.
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
}

/// How to treat an object's dependents on delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Delete dependents too (the default for most kinds).
    #[default]
    Background,
    /// The owner stays (finalizer `foregroundDeletion`) until its dependents are gone.
    Foreground,
    /// Keep dependents, removing their owner reference.
    Orphan,
}

/// Who writes, for field ownership (`managedFields`); the API layer sets it per request.
#[derive(Debug, Clone, Default)]
pub struct Author {
    /// `?fieldManager=`; server-side apply needs it.
    pub field_manager: Option<String>,
    /// The User-Agent's product (`kubectl`), the manager of other writes without one.
    pub user_agent: Option<String>,
    /// `?force=true`: an apply takes fields from other managers instead of conflicting.
    pub force: bool,
    /// `scale` for writes through that subresource.
    pub subresource: Option<&'static str>,
}

impl Author {
    /// The manager writes are recorded for; the simulator's own controllers without a request.
    fn manager(&self) -> &str {
        self.field_manager
            .as_deref()
            .or(self.user_agent.as_deref())
            .unwrap_or("kube-controller-manager")
    }
}

/// The objects and their history.
pub struct Store {
    objects: BTreeMap<ObjectKey, Arc<Value>>,
    revision: u64,
    history: Vec<VecDeque<Arc<Change>>>,
    history_limit: usize,
    /// The revision of each kind's last change.
    written: Vec<u64>,
    /// Owner uid → the objects that name it in their ownerReferences (garbage collection).
    dependents: HashMap<String, std::collections::HashSet<ObjectKey>>,
    changes: Vec<broadcast::Sender<Arc<Change>>>,
    clock: fn() -> String,
    /// Writes are checked, defaulted and answered, but not kept (`?dryRun=All`).
    dry_run: bool,
    /// The last cluster IP given to a Service, counted in 10.96.0.0/16.
    last_cluster_ip: u32,
    /// Versions before this one are compacted away, as etcd's: no watch or list reads them.
    compacted: u64,
    /// The version the next compaction compacts to (the present at the last one).
    compaction_mark: u64,
    author: Author,
}

/// The current time as Kubernetes writes it: `2024-04-17T09:05:33Z`.
pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Store {
    /// An empty store keeping the last `history_limit` changes of each kind for watches.
    pub fn new(history_limit: usize) -> Self {
        // Room for a burst of changes (8,000 pods starting) before a slow watch lags and has
        // to catch up from the history.
        let changes = RESOURCES.iter().map(|_| broadcast::channel(4_096).0).collect();
        Self {
            objects: BTreeMap::new(),
            revision: 1,
            history: RESOURCES.iter().map(|_| VecDeque::new()).collect(),
            history_limit,
            written: RESOURCES.iter().map(|_| 0).collect(),
            dependents: HashMap::new(),
            changes,
            clock: now,
            dry_run: false,
            last_cluster_ip: 0,
            compacted: 0,
            compaction_mark: 0,
            author: Author::default(),
        }
    }

    /// The current resourceVersion.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The revision of the last change to objects of `resource` (0: none yet), so that a
    /// controller can tell whether the kinds it follows changed without reading them.
    pub fn written(&self, resource: ResourceId) -> u64 {
        self.written[resource]
    }

    /// Live changes of a kind from now on.
    pub fn subscribe(&self, resource: ResourceId) -> broadcast::Receiver<Arc<Change>> {
        self.changes[resource].subscribe()
    }

    /// Compacts the history as kube-apiserver has etcd do every few minutes: to the version
    /// of the previous compaction, so that whatever is older than one interval to two goes.
    /// A watch or a list from before it is then 410 Gone, and its client lists again.
    pub fn compact(&mut self) {
        self.compacted = self.compaction_mark;
        self.compaction_mark = self.revision;
        for history in &mut self.history {
            while history.front().is_some_and(|c| c.revision < self.compacted) {
                history.pop_front();
            }
        }
    }

    /// The kept changes after `revision`, or `Gone` when some were already dropped.
    pub fn changes_since(&self, resource: ResourceId, revision: u64) -> Result<Vec<Arc<Change>>, StoreError> {
        if revision < self.compacted {
            return Err(StoreError::Gone {
                requested: revision,
                oldest: self.compacted,
            });
        }
        let history = &self.history[resource];
        let oldest = history.front().map_or(self.revision, |c| c.revision);
        if revision + 1 < oldest && history.len() >= self.history_limit {
            return Err(StoreError::Gone {
                requested: revision,
                oldest,
            });
        }
        let start = history.partition_point(|c| c.revision <= revision);
        Ok(history.range(start..).cloned().collect())
    }

    /// One object.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        self.objects.get(key).cloned()
    }

    /// The objects of a kind (in one namespace, or all), filtered by selectors.
    pub fn list(
        &self,
        resource: ResourceId,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Arc<Value>> {
        let start = ObjectKey::new(resource, namespace.unwrap_or(""), "");
        self.objects
            .range(start..)
            .take_while(|(k, _)| k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns))
            .filter(|(_, o)| labels.matches_object(o) && fields.matches(o))
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// The objects of a kind as they were at `revision` (a list's later pages, or
    /// `resourceVersionMatch=Exact`), rebuilt from the present by undoing the kind's kept
    /// changes since; `Gone` when some of those changes were already dropped.
    pub fn list_at(
        &self,
        resource: ResourceId,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        revision: u64,
    ) -> Result<Vec<Arc<Value>>, StoreError> {
        let everything = (LabelSelector::default(), FieldSelector::default());
        let later = self.changes_since(resource, revision)?;
        let place = |o: &Value| {
            let meta = &o["metadata"];
            (
                meta["namespace"].as_str().unwrap_or_default().to_owned(),
                meta["name"].as_str().unwrap_or_default().to_owned(),
            )
        };
        let mut objects: BTreeMap<(String, String), Arc<Value>> = self
            .list(resource, namespace, &everything.0, &everything.1)
            .into_iter()
            .map(|o| (place(&o), o))
            .collect();
        for change in later.iter().rev() {
            if namespace.is_some_and(|ns| change.object["metadata"]["namespace"] != ns) {
                continue;
            }
            let place = place(&change.object);
            match (change.event, &change.previous) {
                (EventType::Added, _) => drop(objects.remove(&place)),
                (_, Some(before)) => drop(objects.insert(place, before.clone())),
                (_, None) => {}
            }
        }
        Ok(objects
            .into_values()
            .filter(|o| labels.matches_object(o) && fields.matches(o))
            .collect())
    }

    /// How many objects of a kind exist.
    pub fn count(&self, resource: ResourceId) -> usize {
        let start = ObjectKey::new(resource, "", "");
        self.objects
            .range(start..)
            .take_while(|(k, _)| k.resource == resource)
            .count()
    }

    /// Whether writes are only checked (`?dryRun=All`), until set back.
    pub fn set_dry_run(&mut self, dry_run: bool) {
        self.dry_run = dry_run;
    }

    /// The clock that stamps creation, deletion and ownership times (tests fix it).
    pub fn set_clock(&mut self, clock: fn() -> String) {
        self.clock = clock;
    }

    /// Who the next writes are by, until set back (to the default: the simulator's controllers).
    pub fn set_author(&mut self, author: Author) {
        self.author = author;
    }

    fn ownership_writer<'a>(&'a self, api_version: &'a str, time: &'a str) -> managed::Writer<'a> {
        managed::Writer {
            manager: self.author.manager(),
            subresource: self.author.subresource,
            api_version,
            time,
        }
    }

    /// Creates an object; fills in uid, resourceVersion, creationTimestamp and generation.
    /// Its author owns every field, defaults included.
    pub fn create(&mut self, resource: ResourceId, namespace: &str, object: Value) -> Result<Arc<Value>, StoreError> {
        self.create_owned(resource, namespace, object, None)
    }

    /// [`Store::create`]; with `applied`, a server-side apply that creates: its manager owns
    /// the applied fields only.
    fn create_owned(
        &mut self,
        resource: ResourceId,
        namespace: &str,
        mut object: Value,
        applied: Option<&Value>,
    ) -> Result<Arc<Value>, StoreError> {
        let rt = &RESOURCES[resource];
        let name = self.name_for(&mut object)?;
        validate_name(rt, &name)?;
        if rt.namespaced {
            self.require_namespace(namespace)?;
        }
        let key = ObjectKey::new(resource, if rt.namespaced { namespace } else { "" }, &name);
        if self.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                resource: rt.plural.into(),
                name,
            });
        }
        object["apiVersion"] = json!(rt.api_version());
        object["kind"] = json!(rt.kind);
        let meta = &mut object["metadata"];
        if rt.namespaced {
            meta["namespace"] = json!(namespace);
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["creationTimestamp"] = json!((self.clock)());
        if let Some(m) = meta.as_object_mut() {
            m.remove("managedFields");
        }
        defaults::apply(rt.kind, &mut object);
        defaults::admit_new(rt.kind, &mut object);
        if rt.kind == "Service" {
            self.allocate_cluster_ip(&mut object);
        }
        validation::validate(rt.kind, &name, &object, None)?;
        if rt.kind == "Pod" {
            self.admit_pod_quota(namespace, &name)?;
        }
        if object.get("spec").is_some() {
            object["metadata"]["generation"] = json!(1);
        }
        let (api_version, time) = (rt.api_version(), (self.clock)());
        let writer = self.ownership_writer(&api_version, &time);
        let mut entries = Vec::new();
        match applied {
            Some(applied) => {
                let _ = managed::apply(&Value::Null, applied, &mut entries, writer, true);
            }
            None => managed::record_update(&mut entries, writer, None, &object),
        }
        managed::set_entries(&mut object, &entries);
        Ok(self.commit(key, object, EventType::Added))
    }

    /// Gives a new Service that asks for none a cluster IP from 10.96.0.0/16, as the API
    /// server's allocator does while creating it (headless and ExternalName Services get none).
    fn allocate_cluster_ip(&mut self, service: &mut Value) {
        let spec = &mut service["spec"];
        let wanted = spec["clusterIP"].as_str().unwrap_or_default();
        if !wanted.is_empty() || spec["type"] == "ExternalName" {
            if spec.get("clusterIPs").is_none() && !wanted.is_empty() {
                spec["clusterIPs"] = json!([wanted]);
            }
            return;
        }
        self.last_cluster_ip += 1;
        let next = self.last_cluster_ip;
        let ip = format!("10.96.{}.{}", (next >> 8) & 0xff, next & 0xff);
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
    }

    /// Replaces an object (PUT). A resourceVersion in the object must be current.
    pub fn update(&mut self, key: &ObjectKey, object: Value, status_only: bool) -> Result<Arc<Value>, StoreError> {
        let old = self.existing(key)?;
        if let Some(rv) = object["metadata"]["resourceVersion"]
            .as_str()
            .filter(|rv| !rv.is_empty())
            && rv != old["metadata"]["resourceVersion"].as_str().unwrap_or_default()
        {
            return Err(self.conflict(key));
        }
        let name = object["metadata"]["name"].as_str().unwrap_or(&key.name);
        if name != key.name {
            return Err(StoreError::BadRequest(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.name
            )));
        }
        let mut merged = self.carry_over(key, &old, object, status_only);
        if !status_only {
            self.record_update(key, &old, &mut merged);
        }
        if merged == *old {
            return Ok(old); // a no-op write keeps the resourceVersion, as the API server does
        }
        validation::validate(RESOURCES[key.resource].kind, &key.name, &merged, Some(&old))?;
        if finalized(&merged) {
            return self.remove(key);
        }
        Ok(self.commit(key.clone(), merged, EventType::Modified))
    }

    /// The author of an update owns what it changed (unless the write sets `managedFields`
    /// itself, as a migration of ownership does).
    fn record_update(&self, key: &ObjectKey, old: &Value, new: &mut Value) {
        if new["metadata"]["managedFields"] != old["metadata"]["managedFields"] {
            return;
        }
        let (api_version, time) = (RESOURCES[key.resource].api_version(), (self.clock)());
        let mut entries = managed::entries_of(old);
        managed::record_update(&mut entries, self.ownership_writer(&api_version, &time), Some(old), new);
        managed::set_entries(new, &entries);
    }

    /// Patches an object; for server-side apply (by the author's field manager), creates it
    /// when missing.
    pub fn patch(
        &mut self,
        key: &ObjectKey,
        kind: PatchKind,
        body: &Value,
        status_only: bool,
    ) -> Result<Arc<Value>, StoreError> {
        let mut body = body.clone();
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let body = &body;
        if kind == PatchKind::Apply && self.author.field_manager.is_none() {
            return Err(StoreError::Unprocessable(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
                    .into(),
            ));
        }
        if kind == PatchKind::Apply {
            check_applied(key, body)?;
        }
        let Some(old) = self.objects.get(key).cloned() else {
            if kind == PatchKind::Apply {
                return self.create_owned(key.resource, &key.namespace, body.clone(), Some(body));
            }
            return Err(self.not_found(key));
        };
        let mut patched = (*old).clone();
        match kind {
            PatchKind::Merge => patch::merge_patch(&mut patched, body),
            PatchKind::Strategic => patch::strategic_merge(&mut patched, body),
            PatchKind::Json => patch::json_patch(&mut patched, body).map_err(|error| match error {
                patch::JsonPatchError::Malformed(m) => StoreError::BadRequest(m),
                patch::JsonPatchError::NotApplicable(m) => StoreError::Unprocessable(m),
            })?,
            PatchKind::Apply => {
                let (api_version, time) = (RESOURCES[key.resource].api_version(), (self.clock)());
                let mut entries = managed::entries_of(&old);
                let writer = self.ownership_writer(&api_version, &time);
                patched = managed::apply(&old, body, &mut entries, writer, self.author.force).map_err(|conflicts| {
                    StoreError::ApplyConflict {
                        message: managed::conflict_message(&conflicts, &api_version),
                        conflicts,
                        api_version: api_version.clone(),
                    }
                })?;
                managed::set_entries(&mut patched, &entries);
            }
        }
        let rv_in_patch = patched["metadata"]["resourceVersion"].as_str().map(str::to_owned);
        let current = old["metadata"]["resourceVersion"].as_str().unwrap_or_default();
        if rv_in_patch.as_deref().is_some_and(|rv| rv != current) {
            return Err(self.conflict(key));
        }
        let mut merged = self.carry_over(key, &old, patched, status_only);
        if kind != PatchKind::Apply && !status_only {
            self.record_update(key, &old, &mut merged);
        }
        if merged != *old {
            validation::validate(RESOURCES[key.resource].kind, &key.name, &merged, Some(&old))?;
        }
        if merged == *old {
            return Ok(old); // a no-op write keeps the resourceVersion, as the API server does
        }
        if finalized(&merged) {
            return self.remove(key);
        }
        Ok(self.commit(key.clone(), merged, EventType::Modified))
    }

    /// Replaces an object's `status` (what controllers do through the status subresource).
    pub fn replace_status(&mut self, key: &ObjectKey, mut status: Value) -> Result<Arc<Value>, StoreError> {
        let old = self.existing(key)?;
        // A pod's QoS class is decided when it is made and never changes.
        if let Some(qos) = old["status"].get("qosClass")
            && status.is_object()
            && status.get("qosClass").is_none()
        {
            status["qosClass"] = qos.clone();
        }
        if old.get("status") == Some(&status) {
            return Ok(old);
        }
        let mut new = (*old).clone();
        new["status"] = status;
        let rt = &RESOURCES[key.resource];
        let (api_version, time) = (rt.api_version(), (self.clock)());
        let writer = managed::Writer {
            manager: if matches!(rt.kind, "Pod" | "Node") {
                "kubelet"
            } else {
                "kube-controller-manager"
            },
            subresource: Some("status"),
            api_version: &api_version,
            time: &time,
        };
        let mut entries = managed::entries_of(&new);
        managed::record_status(&mut entries, writer, &new["status"]);
        managed::set_entries(&mut new, &entries);
        Ok(self.commit(key.clone(), new, EventType::Modified))
    }

    /// Deletes an object as the API server does. An object that must wind down first is only
    /// marked (`deletionTimestamp`, a MODIFIED event) and returned: a scheduled, running pod
    /// (its kubelet stops it, then [`Store::remove`]s it), an object with finalizers (gone when
    /// the last is removed), and an owner deleted in the foreground (finalizer
    /// `foregroundDeletion` until its dependents are gone). Anything else is removed at once.
    /// Unless orphaned, what the object owns is deleted too.
    pub fn delete(&mut self, key: &ObjectKey, propagation: Propagation) -> Result<Arc<Value>, StoreError> {
        let old = self.existing(key)?;
        if self.dry_run || old["metadata"]["deletionTimestamp"].is_string() {
            return Ok(old);
        }
        if RESOURCES[key.resource].kind == "Namespace" {
            return Ok(self.terminate_namespace(key, &old));
        }
        let uid = old["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        // Both policies put a finalizer on the owner whether or not anything depends on it
        // (the API server does not know); the garbage collector removes it.
        let finalizer = match propagation {
            Propagation::Foreground => Some(FOREGROUND),
            Propagation::Orphan => Some(ORPHAN),
            Propagation::Background => None,
        };
        let has_finalizers = old["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if graceful(&old) || has_finalizers || finalizer.is_some() {
            let mut marked = (*old).clone();
            marked["metadata"]["deletionTimestamp"] = json!((self.clock)());
            if graceful(&old) {
                let grace = old["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
                marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            }
            if let Some(finalizer) = finalizer {
                let finalizers = &mut marked["metadata"]["finalizers"];
                match finalizers.as_array_mut() {
                    Some(list) => list.push(json!(finalizer)),
                    None => *finalizers = json!([finalizer]),
                }
            }
            let marked = self.commit(key.clone(), marked, EventType::Modified);
            self.collect_dependents(&uid, propagation);
            // The garbage collector's part: orphans are released at once; a foreground
            // deletion finishes once nothing depends on the owner any more.
            if let Some(finalizer) = finalizer
                && (propagation == Propagation::Orphan || !self.has_dependents(&uid))
            {
                let _ = self.remove_finalizer(key, finalizer);
            }
            return Ok(marked);
        }
        let deleted = self.remove(key)?;
        self.collect_dependents(&uid, propagation);
        Ok(deleted)
    }

    /// What deleting a namespace does: it turns `Terminating`, everything in it is deleted
    /// (the namespace controller's work; pods wind down on their nodes first), and it goes
    /// once empty ([`Store::finish_terminated_namespaces`]). Nothing new may be made in it
    /// meanwhile.
    fn terminate_namespace(&mut self, key: &ObjectKey, old: &Value) -> Arc<Value> {
        let mut marked = old.clone();
        marked["metadata"]["deletionTimestamp"] = json!((self.clock)());
        marked["status"]["phase"] = json!("Terminating");
        let marked = self.commit(key.clone(), marked, EventType::Modified);
        let contents: Vec<ObjectKey> = self
            .objects
            .keys()
            .filter(|k| RESOURCES[k.resource].namespaced && k.namespace == key.name)
            .cloned()
            .collect();
        for content in contents {
            let _ = self.delete(&content, Propagation::Background);
        }
        marked
    }

    /// Removes each namespace deleted at `deleted_by` or before (kube-apiserver's format,
    /// which sorts as time does) that holds nothing any more.
    pub fn finish_terminated_namespaces(&mut self, deleted_by: &str) {
        let namespaces = crate::resources::ids::namespaces();
        let terminating: Vec<ObjectKey> = self
            .objects
            .range(ObjectKey::new(namespaces, "", "")..)
            .take_while(|(k, _)| k.resource == namespaces)
            .filter(|(_, o)| {
                o["metadata"]["deletionTimestamp"]
                    .as_str()
                    .is_some_and(|at| at <= deleted_by)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in terminating {
            let empty = RESOURCES.iter().enumerate().all(|(resource, rt)| {
                !rt.namespaced
                    || self
                        .objects
                        .range(ObjectKey::new(resource, &key.name, "")..)
                        .next()
                        .is_none_or(|(k, _)| k.resource != resource || k.namespace != key.name)
            });
            if empty {
                let _ = self.remove(&key);
            }
        }
    }

    /// Removes an object now (what follows a finished graceful deletion or the last
    /// finalizer), publishing DELETED.
    pub fn remove(&mut self, key: &ObjectKey) -> Result<Arc<Value>, StoreError> {
        let old = self.existing(key)?;
        if self.dry_run {
            return Ok(old);
        }
        self.objects.remove(key);
        self.unindex_owners(key, &old);
        self.revision += 1;
        let mut deleted = (*old).clone();
        deleted["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        let deleted = Arc::new(deleted);
        self.publish(Change {
            revision: self.revision,
            event: EventType::Deleted,
            resource: key.resource,
            object: deleted.clone(),
            previous: Some(old),
            line: Default::default(),
        });
        Ok(deleted)
    }

    /// Removes `finalizer` from an object; an object being deleted goes with its last one.
    pub fn remove_finalizer(&mut self, key: &ObjectKey, finalizer: &str) -> Result<(), StoreError> {
        let old = self.existing(key)?;
        let mut new = (*old).clone();
        let Some(list) = new["metadata"]["finalizers"].as_array_mut() else {
            return Ok(());
        };
        list.retain(|f| f != finalizer);
        let empty = list.is_empty();
        if empty && new["metadata"]["deletionTimestamp"].is_string() && !graceful(&new) {
            self.remove(key)?;
        } else if new != *old {
            self.commit(key.clone(), new, EventType::Modified);
        }
        Ok(())
    }

    /// The ResourceQuota admission plugin, for the `pods` count: a new pod beyond a quota's
    /// `spec.hard.pods` is refused with the API server's words.
    fn admit_pod_quota(&self, namespace: &str, name: &str) -> Result<(), StoreError> {
        let none = (selector::LabelSelector::default(), selector::FieldSelector::default());
        let quotas = self.list(
            crate::resources::ids::resource_quotas(),
            Some(namespace),
            &none.0,
            &none.1,
        );
        if quotas.is_empty() {
            return Ok(());
        }
        let used = self
            .list(crate::resources::ids::pods(), Some(namespace), &none.0, &none.1)
            .len();
        for quota in quotas {
            let limit = quota["spec"]["hard"]["pods"]
                .as_str()
                .and_then(|p| p.parse::<usize>().ok());
            if let Some(limit) = limit.filter(|limit| used + 1 > *limit) {
                let quota_name = quota["metadata"]["name"].as_str().unwrap_or_default();
                return Err(StoreError::Forbidden(format!(
                    "pods \"{name}\" is forbidden: exceeded quota: {quota_name}, requested: pods=1, used: pods={used}, limited: pods={limit}"
                )));
            }
        }
        Ok(())
    }

    /// The objects of kind `resource` that name `owner_uid` as an owner, in key order (from
    /// the owner index: no scan of the kind).
    pub fn owned(&self, owner_uid: &str, resource: ResourceId) -> Vec<Arc<Value>> {
        let mut keys: Vec<&ObjectKey> = self
            .dependents
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter(|k| k.resource == resource)
            .collect();
        keys.sort();
        keys.into_iter().filter_map(|k| self.objects.get(k).cloned()).collect()
    }

    /// Whether anything still names `uid` as its owner.
    pub fn has_dependents(&self, uid: &str) -> bool {
        self.dependents.get(uid).is_some_and(|d| !d.is_empty())
    }

    fn collect_dependents(&mut self, owner_uid: &str, propagation: Propagation) {
        let dependents: Vec<ObjectKey> = self
            .dependents
            .get(owner_uid)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default();
        for key in dependents {
            if propagation == Propagation::Orphan {
                let Some(object) = self.objects.get(&key) else { continue };
                let mut object = (**object).clone();
                if let Some(refs) = object["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != owner_uid);
                }
                self.commit(key, object, EventType::Modified);
            } else {
                let _ = self.delete(&key, propagation);
            }
        }
    }

    fn unindex_owners(&mut self, key: &ObjectKey, object: &Value) {
        for uid in owner_uids(object) {
            if let Some(keys) = self.dependents.get_mut(uid) {
                keys.remove(key);
                if keys.is_empty() {
                    self.dependents.remove(uid);
                }
            }
        }
    }

    /// Writes a changed object, stamping a new resourceVersion and publishing the change.
    fn commit(&mut self, key: ObjectKey, mut object: Value, event: EventType) -> Arc<Value> {
        if self.dry_run {
            return Arc::new(object);
        }
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        omit_empty_metadata(&mut object);
        let object = Arc::new(object);
        let previous = self.objects.insert(key.clone(), object.clone());
        if let Some(old) = &previous {
            self.unindex_owners(&key, old);
        }
        for uid in owner_uids(&object) {
            self.dependents.entry(uid.to_owned()).or_default().insert(key.clone());
        }
        self.publish(Change {
            revision: self.revision,
            event,
            resource: key.resource,
            object: object.clone(),
            previous: previous.filter(|_| event == EventType::Modified),
            line: Default::default(),
        });
        object
    }

    fn publish(&mut self, change: Change) {
        let change = Arc::new(change);
        self.written[change.resource] = change.revision;
        let history = &mut self.history[change.resource];
        history.push_back(change.clone());
        while history.len() > self.history_limit {
            history.pop_front();
        }
        let _ = self.changes[change.resource].send(change); // no watcher is fine
    }

    /// The server-owned parts of the old object carried into a write: identity, timestamps,
    /// and the half of the object the write may not touch (status, or all but status).
    fn carry_over(&self, key: &ObjectKey, old: &Value, mut new: Value, status_only: bool) -> Value {
        let rt = &RESOURCES[key.resource];
        defaults::apply(rt.kind, &mut new);
        if status_only {
            let mut merged = old.clone();
            merged["status"] = new["status"].take();
            return merged;
        }
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = old["kind"].clone();
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old["metadata"].get(field) {
                Some(value) => new["metadata"][field] = value.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        // An update of a Service that leaves its cluster IPs out keeps them (kube-apiserver's
        // service strategy does the same).
        if rt.kind == "Service" && new["spec"]["clusterIP"].as_str().is_none_or(str::is_empty) {
            for field in ["clusterIP", "clusterIPs"] {
                if let Some(value) = old["spec"].get(field) {
                    new["spec"][field] = value.clone();
                }
            }
        }
        // Writes that leave `managedFields` out keep the object's (as the API server does).
        if new["metadata"]["managedFields"].as_array().is_none_or(Vec::is_empty)
            && let Some(fields) = old["metadata"].get("managedFields")
        {
            new["metadata"]["managedFields"] = fields.clone();
        }
        if rt.has_status() {
            match old.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        if new.get("spec") != old.get("spec") && old["metadata"].get("generation").is_some() {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        new
    }

    fn name_for(&self, object: &mut Value) -> Result<String, StoreError> {
        if let Some(name) = object["metadata"]["name"].as_str().filter(|n| !n.is_empty()) {
            return Ok(name.to_owned());
        }
        let Some(prefix) = object["metadata"]["generateName"].as_str() else {
            return Err(StoreError::Invalid {
                kind: object["kind"].as_str().unwrap_or("object").to_owned(),
                name: String::new(),
                causes: vec![(
                    "metadata.name".into(),
                    "Required value: name or generateName is required".into(),
                )],
            });
        };
        let suffix: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(5)
            .collect();
        let name = format!("{prefix}{suffix}");
        object["metadata"]["name"] = json!(name);
        Ok(name)
    }

    fn require_namespace(&self, namespace: &str) -> Result<(), StoreError> {
        let key = ObjectKey::new(crate::resources::ids::namespaces(), "", namespace);
        match self.objects.get(&key) {
            Some(ns) if ns["metadata"]["deletionTimestamp"].is_string() => Err(StoreError::Forbidden(format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ))),
            Some(_) if !namespace.is_empty() => Ok(()),
            _ => Err(StoreError::NotFound {
                resource: "namespaces".into(),
                name: namespace.into(),
            }),
        }
    }

    fn existing(&self, key: &ObjectKey) -> Result<Arc<Value>, StoreError> {
        self.objects.get(key).cloned().ok_or_else(|| self.not_found(key))
    }

    fn not_found(&self, key: &ObjectKey) -> StoreError {
        StoreError::NotFound {
            resource: RESOURCES[key.resource].plural.into(),
            name: key.name.clone(),
        }
    }

    /// The answer to a write conditional on a resourceVersion that is not the object's.
    pub fn conflict(&self, key: &ObjectKey) -> StoreError {
        StoreError::Conflict {
            resource: resource_name(&RESOURCES[key.resource]),
            name: key.name.clone(),
            message: "the object has been modified; please apply your changes to the latest version and try again"
                .into(),
        }
    }
}

/// `statefulsets.apps`, or `pods` for the core group: how the API server names a resource in messages.
pub fn resource_name(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.to_owned()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

/// The uids of an object's owners.
/// The finalizer of an owner deleted in the foreground.
pub const FOREGROUND: &str = "foregroundDeletion";

/// The finalizer of an owner deleted with its dependents orphaned.
pub const ORPHAN: &str = "orphan";

/// Leaves out the metadata maps and lists a write emptied (the last label an apply no longer
/// sets, the last owner an orphaning removed), as Go's `omitempty` does in kube-apiserver.
fn omit_empty_metadata(object: &mut Value) {
    if let Some(meta) = object["metadata"].as_object_mut() {
        for field in ["labels", "annotations", "finalizers", "ownerReferences"] {
            let empty = match meta.get(field) {
                Some(Value::Object(map)) => map.is_empty(),
                Some(Value::Array(list)) => list.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                meta.remove(field);
            }
        }
    }
}

/// Whether a write left an object being deleted without finalizers: then it goes.
fn finalized(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
        && object["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty)
        && !graceful(object)
}

/// Whether deleting `object` waits for a kubelet: a pod bound to a node that has not finished.
fn graceful(object: &Value) -> bool {
    object["kind"] == "Pod"
        && object["spec"]["nodeName"].is_string()
        && !matches!(object["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

/// What kube-apiserver refuses of an applied configuration before applying it: one without
/// its apiVersion or kind, or naming another object than the URL (400), and one with fields
/// or values its kind's schema does not declare (500).
fn check_applied(key: &ObjectKey, body: &Value) -> Result<(), StoreError> {
    let rt = &RESOURCES[key.resource];
    let (api_version, kind) = (
        body["apiVersion"].as_str().unwrap_or_default(),
        body["kind"].as_str().unwrap_or_default(),
    );
    if api_version.is_empty() || kind.is_empty() {
        return Err(StoreError::BadRequest(format!(
            "invalid object type: {api_version}, Kind={kind}: an applied configuration names its apiVersion ({}) and kind ({})",
            rt.api_version(),
            rt.kind
        )));
    }
    if let Some(name) = body["metadata"]["name"].as_str()
        && name != key.name
    {
        return Err(StoreError::BadRequest(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            key.name
        )));
    }
    if kind == rt.kind
        && let Some(why) = schema::undeclared(kind, body)
    {
        return Err(StoreError::Internal(format!(
            "failed to create typed patch object ({}/{}; {}, Kind={kind}): {why}",
            key.namespace, key.name, api_version
        )));
    }
    Ok(())
}

/// Names must be DNS subdomains; Services and Namespaces DNS labels.
fn validate_name(rt: &ResourceType, name: &str) -> Result<(), StoreError> {
    let label_only = matches!(rt.kind, "Namespace" | "Service");
    let max = if label_only { 63 } else { 253 };
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!label_only && c == '.');
    let edges = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let starts_ok = if rt.kind == "Service" {
        name.starts_with(|c: char| c.is_ascii_lowercase())
    } else {
        edges(name.chars().next())
    };
    if name.len() <= max && name.chars().all(allowed) && starts_ok && edges(name.chars().last()) {
        return Ok(());
    }
    let what = if label_only {
        "a lowercase RFC 1123 label"
    } else {
        "a lowercase RFC 1123 subdomain"
    };
    Err(StoreError::Invalid {
        kind: rt.kind.into(),
        name: name.into(),
        causes: vec![(
            "metadata.name".into(),
            format!(
                "Invalid value: \"{name}\": {what} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        )],
    })
}

#[cfg(test)]
mod tests;
