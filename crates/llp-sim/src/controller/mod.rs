//! The controller loop beside the API: the StatefulSet controller, claim binding, cluster
//! IPs, a scheduler and a kubelet per pod, all in one pass every tick. The store is their
//! only interface, as in a real cluster, so clients see every step through the API.

pub mod cluster;
mod config_refs;
pub mod events;
mod housekeeping;
mod job;
pub mod kubelet;
pub(crate) mod quantity;
pub mod scheduler;
pub mod statefulset;

pub use cluster::{ClusterSpec, NodeSpec, Timings};

use crate::api::ApiState;
use crate::logs::{LogBook, LogKey};
use crate::resources::ids;
use crate::store::patch::PatchKind;
use crate::store::selector::{FieldSelector, LabelSelector};
use crate::store::{ObjectKey, Store};
use events::{Recorder, Severity};
use kubelet::{Effect, PodRun};
use scheduler::Placement;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often an unschedulable pod's FailedScheduling event repeats.
const RESCHEDULE_EVENT_EVERY: Duration = Duration::from_secs(10);

/// Creates the cluster's namespaces and nodes.
pub fn seed(store: &mut Store, cluster: &ClusterSpec) {
    for namespace in &cluster.namespaces {
        let _ = store.create(ids::namespaces(), "", json!({"metadata": {"name": namespace}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
    }
    for node in &cluster.nodes {
        let _ = store.create(ids::nodes(), "", node.to_object());
    }
}

/// Pods one hold of the store's lock steps at most.
const KUBELET_CHUNK: usize = 32;

/// Runs the controller until `stop` turns true.
pub async fn run(state: ApiState, cluster: ClusterSpec, mut stop: watch::Receiver<bool>) {
    let mut controller = Controller::new(cluster);
    let mut ticker = tokio::time::interval(controller.cluster.timings.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now = Instant::now();
                if now.duration_since(controller.compacted) >= controller.cluster.timings.compaction {
                    state.store.lock().expect("store lock").compact();
                    controller.compacted = now;
                }
                let revision = followed_revision(&state.store.lock().expect("store lock"));
                // Nothing the controllers follow written since the last pass began and nothing
                // timed due: they would find what they found, so only the kubelets step (a
                // pod's own run times its starts, logs and crashes; it reads the Secrets and
                // ConfigMaps it waits for itself).
                if controller.pass_needed(revision, now) {
                    let placed = controller.pass(&state, now).await;
                    controller.placed = placed.into_iter().map(Placed::new).collect();
                    controller.passed_at = Some(revision);
                }
                for chunk in controller.due_pods(now).chunks(KUBELET_CHUNK) {
                    controller.run_pods(&state, chunk, now);
                    tokio::task::yield_now().await;
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// The latest change to the kinds a pass reads (Events, Leases, Secrets, ConfigMaps and the
/// rest are not among them: a busy cluster writes those all the time).
fn followed_revision(store: &Store) -> u64 {
    [
        ids::pods(),
        ids::stateful_sets(),
        ids::jobs(),
        ids::claims(),
        ids::services(),
        ids::nodes(),
    ]
    .into_iter()
    .map(|resource| store.written(resource))
    .max()
    .unwrap_or_default()
}

/// The controllers' memory between passes.
pub struct Controller {
    cluster: ClusterSpec,
    runs: HashMap<String, PodRun>,
    /// The last version of each running pod, to report its containers' end once it is deleted.
    last_seen: HashMap<String, Arc<Value>>,
    recorder: Recorder,
    next_pod_ip: u32,
    pod_ips: HashMap<String, String>,
    unschedulable_reported: HashMap<String, Instant>,
    sts_fingerprints: HashMap<String, Fingerprint>,
    /// Pods being deleted, by uid: since when their containers are being stopped.
    terminating: HashMap<String, Instant>,
    /// When expired Events were last removed.
    events_expired: Option<Instant>,
    /// When the history was last compacted.
    compacted: Instant,
    /// [`followed_revision`] when the last pass began: a pass sees every write before it, so
    /// another is needed only after a write (its own included).
    passed_at: Option<u64>,
    /// The pods on nodes as the last pass left them, for the kubelets between passes.
    placed: Vec<Placed>,
}

impl Controller {
    /// A controller for `cluster`.
    pub fn new(cluster: ClusterSpec) -> Self {
        Self {
            cluster,
            runs: HashMap::new(),
            last_seen: HashMap::new(),
            recorder: Recorder::default(),
            next_pod_ip: 0,
            pod_ips: HashMap::new(),
            unschedulable_reported: HashMap::new(),
            sts_fingerprints: HashMap::new(),
            terminating: HashMap::new(),
            events_expired: None,
            compacted: Instant::now(),
            passed_at: None,
            placed: Vec::new(),
        }
    }

    /// Whether a pass could change anything at `revision` ([`followed_revision`]): a write since the last one
    /// began, or a timed step of its own (a pod's grace period, a FailedScheduling event to
    /// repeat, Events to expire). At tens of thousands of pods a pass costs tens of
    /// milliseconds; a cluster at rest costs none.
    pub fn pass_needed(&self, revision: u64, now: Instant) -> bool {
        self.passed_at != Some(revision)
            || !self.terminating.is_empty()
            || self.events_expiry_due(now)
            || self
                .unschedulable_reported
                .values()
                .any(|at| now.duration_since(*at) >= RESCHEDULE_EVENT_EVERY)
    }

    /// Whether expired Events are to be looked for: a scan of every Event (thousands with
    /// thousands of pods), once a minute for the hour they live, a sixtieth of the TTL in tests.
    fn events_expiry_due(&self, now: Instant) -> bool {
        self.events_expired
            .is_none_or(|last| now.duration_since(last) >= self.cluster.timings.event_ttl / 60)
    }

    /// One pass of every controller but the kubelets; returns the pods placed on nodes, for
    /// [`Controller::run_pods`]. Objects that did not change since the last pass cost a
    /// comparison, not a rewrite. What needs no store (scanning snapshots of the pods) runs
    /// without its lock, and writes take it per object (see below), with a yield between:
    /// one hold for the whole pass kept API requests waiting for tens of milliseconds.
    pub async fn pass(&mut self, state: &ApiState, now: Instant) -> Vec<Arc<Value>> {
        let everything = (LabelSelector::default(), FieldSelector::default());
        let list = |store: &Store, resource| store.list(resource, None, &everything.0, &everything.1);
        // Workloads: which StatefulSets changed since the last pass, from snapshots.
        let (pods, sets) = {
            let store = state.store.lock().expect("store lock");
            (list(&store, ids::pods()), list(&store, ids::stateful_sets()))
        };
        let orphans = statefulset::orphans(&pods);
        let owned = owned_by(&pods);
        let mut fingerprints = HashMap::new();
        let mut changed = HashSet::new();
        for sts in &sets {
            let uid = sts["metadata"]["uid"].as_str().unwrap_or_default();
            let fingerprint = fingerprint(sts, owned.get(uid).map_or(&[][..], Vec::as_slice));
            if self.sts_fingerprints.get(uid).is_none_or(|old| !old.same(&fingerprint)) {
                changed.insert(uid.to_owned());
            }
            fingerprints.insert(uid.to_owned(), fingerprint);
        }
        self.sts_fingerprints = fingerprints;
        // Pods left without a controller (their StatefulSet deleted with orphan propagation)
        // are rare: adopted in one hold, after which every StatefulSet is looked at.
        let adopted = !orphans.is_empty() && {
            let mut store = state.store.lock().expect("store lock");
            statefulset::adopt_orphans(&mut store, &sets, &orphans)
        };
        // Every write costs the store tens of microseconds, and a pass can have hundreds to
        // make: each StatefulSet, Job and pending pod gets a hold of its own, so an API request
        // waits for one of them at most, not for the pass. Each is read again under its hold
        // (it may have changed since the snapshot), with its pods from the owner index.
        for sts in sets.iter().filter(|sts| adopted || changed.contains(uid_of(sts))) {
            {
                let mut store = state.store.lock().expect("store lock");
                if let Some(sts) = store.get(&key_of(ids::stateful_sets(), sts)) {
                    let pods = store.owned(uid_of(&sts), ids::pods());
                    statefulset::reconcile(&mut store, &sts, &pods, &mut self.recorder);
                }
            }
            tokio::task::yield_now().await;
        }
        let jobs = list(&state.store.lock().expect("store lock"), ids::jobs());
        for job in jobs {
            {
                let mut store = state.store.lock().expect("store lock");
                if let Some(job) = store.get(&key_of(ids::jobs(), &job)) {
                    let pods = store.owned(uid_of(&job), ids::pods());
                    job::reconcile(&mut store, &job, &pods, &mut self.recorder);
                }
            }
            tokio::task::yield_now().await;
        }
        {
            let mut store = state.store.lock().expect("store lock");
            housekeeping::bind_claims(&mut store);
            housekeeping::expand_claims(&mut store);
        }
        tokio::task::yield_now().await;

        // The scheduler, from a snapshot of the pods and nodes; each pending pod in a hold of
        // its own, read again under it.
        let (pods, nodes) = {
            let store = state.store.lock().expect("store lock");
            (list(&store, ids::pods()), list(&store, ids::nodes()))
        };
        let (mut bound, pending): (Vec<Arc<Value>>, Vec<Arc<Value>>) =
            pods.into_iter().partition(|p| p["spec"]["nodeName"].is_string());
        // What the nodes' pods request: only needed (and only summed) when a pod waits.
        let mut usage = if pending.is_empty() {
            Default::default()
        } else {
            scheduler::usage(&bound)
        };
        for pod in pending {
            let placed = {
                let mut store = state.store.lock().expect("store lock");
                match store.get(&key_of(ids::pods(), &pod)) {
                    Some(pod) if !pod["spec"]["nodeName"].is_string() => {
                        self.schedule(&mut store, &pod, &nodes, &mut usage, now)
                    }
                    // Gone, or bound meanwhile (by a client): the next pass runs it.
                    _ => None,
                }
            };
            bound.extend(placed);
            tokio::task::yield_now().await;
        }

        // Deletions and expiries.
        let pods = {
            let mut store = state.store.lock().expect("store lock");
            let pods = list(&store, ids::pods());
            self.stop_terminating_pods(&mut store, &pods, now);
            housekeeping::release_unused_claims(&mut store);
            housekeeping::finish_foreground_deletions(&mut store);
            housekeeping::finish_namespace_deletions(&mut store, jiff::Timestamp::now());
            if self.events_expiry_due(now) {
                housekeeping::expire_events(&mut store, self.cluster.timings.event_ttl, jiff::Timestamp::now());
                self.events_expired = Some(now);
            }
            list(&store, ids::pods())
        };
        // The controllers' memory of pods that are gone, from that snapshot.
        let existing: HashSet<&str> = pods.iter().filter_map(|p| p["metadata"]["uid"].as_str()).collect();
        bound.retain(|p| {
            p["metadata"]["uid"].as_str().is_some_and(|uid| existing.contains(uid))
                && !p["metadata"]["deletionTimestamp"].is_string()
        });
        let gone: Vec<String> = self
            .runs
            .keys()
            .filter(|uid| !existing.contains(uid.as_str()))
            .cloned()
            .collect();
        for uid in gone {
            self.runs.remove(&uid);
            if let Some(pod) = self.last_seen.remove(&uid) {
                let key = key_of(ids::pods(), &pod);
                state.logs.remove_pod(&key.namespace, &key.name);
            }
        }
        self.terminating.retain(|uid, _| existing.contains(uid.as_str()));
        self.pod_ips.retain(|uid, _| existing.contains(uid.as_str()));
        self.unschedulable_reported
            .retain(|uid, _| existing.contains(uid.as_str()));
        bound
    }

    /// The placed pods whose kubelet has something to do at `now`: new ones, and those with a
    /// timed step due. Read without the store and without reading any pod's JSON: with tens
    /// of thousands of pods at rest, this is all a tick costs.
    pub fn due_pods(&self, now: Instant) -> Vec<Arc<Value>> {
        self.placed
            .iter()
            .filter(|p| {
                self.runs
                    .get(&p.uid)
                    .is_none_or(|run| run.due(now, &self.cluster.timings))
            })
            .map(|p| p.pod.clone())
            .collect()
    }

    /// The kubelets of `pods` (placed on nodes, due: [`Controller::due_pods`]): containers
    /// start, run, log and crash.
    pub fn run_pods(&mut self, state: &ApiState, pods: &[Arc<Value>], now: Instant) {
        let mut store = state.store.lock().expect("store lock");
        for pod in pods {
            // Deleted meanwhile (the lock was let go between chunks): the next pass forgets it.
            if store.get(&key_of(ids::pods(), pod)).is_none() {
                continue;
            }
            self.run_pod(&mut store, &state.logs, pod, now);
        }
    }

    /// The kubelet's part of a graceful deletion: the containers of a pod being deleted are
    /// stopped (Killing events), and after [`Timings::terminate`] the pod is removed.
    fn stop_terminating_pods(&mut self, store: &mut Store, pods: &[Arc<Value>], now: Instant) {
        for pod in pods.iter().filter(|p| p["metadata"]["deletionTimestamp"].is_string()) {
            let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
            if !self.terminating.contains_key(&uid) {
                if let Some(run) = self.runs.get(&uid) {
                    for container in run.container_names() {
                        let message = format!("Stopping container {container}");
                        self.recorder
                            .record(store, pod, Severity::Normal, "Killing", &message, "kubelet");
                    }
                }
                self.terminating.insert(uid.clone(), now);
            }
            if now >= self.terminating[&uid] + self.cluster.timings.terminate {
                let _ = store.remove(&key_of(ids::pods(), pod));
            }
        }
    }

    /// Binds a pending pod to a node, or reports why it cannot be.
    fn schedule(
        &mut self,
        store: &mut Store,
        pod: &Arc<Value>,
        nodes: &[Arc<Value>],
        usage: &mut scheduler::Usage,
        now: Instant,
    ) -> Option<Arc<Value>> {
        let key = key_of(ids::pods(), pod);
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        if !claims_bound(store, pod) {
            return None;
        }
        match scheduler::place(pod, nodes, usage) {
            Placement::Node(node) => {
                let placed = store
                    .patch(&key, PatchKind::Merge, &json!({"spec": {"nodeName": node}}), false)
                    .ok()?;
                scheduler::add(usage, &node, &placed);
                let message = format!("Successfully assigned {}/{} to {node}", key.namespace, key.name);
                self.recorder.record(
                    store,
                    &placed,
                    Severity::Normal,
                    "Scheduled",
                    &message,
                    "default-scheduler",
                );
                self.unschedulable_reported.remove(&uid);
                Some(placed)
            }
            Placement::Unschedulable(message) => {
                let due = self
                    .unschedulable_reported
                    .get(&uid)
                    .is_none_or(|at| now.duration_since(*at) >= RESCHEDULE_EVENT_EVERY);
                if due {
                    self.recorder.record(
                        store,
                        pod,
                        Severity::Warning,
                        "FailedScheduling",
                        &message,
                        "default-scheduler",
                    );
                    self.unschedulable_reported.insert(uid, now);
                }
                let status = json!({
                    "phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message, "lastProbeTime": null}],
                });
                let _ = store.replace_status(&key, status);
                None
            }
        }
    }

    /// Advances a bound pod's containers and writes its status (when it changed), events and logs.
    fn run_pod(&mut self, store: &mut Store, logs: &LogBook, pod: &Arc<Value>, now: Instant) {
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        let key = key_of(ids::pods(), pod);
        let fresh = !self.runs.contains_key(&uid);
        self.last_seen.insert(uid.clone(), pod.clone());
        let run = self
            .runs
            .entry(uid.clone())
            .or_insert_with(|| PodRun::new(pod, &self.cluster, now));
        let config_errors = config_refs::config_errors(store, pod);
        let effects = run.step(now, &self.cluster.timings, &config_errors);
        let changed = fresh || effects.iter().any(|e| !matches!(e, Effect::Log { .. }));
        if changed {
            let next_pod_ip = &mut self.next_pod_ip;
            let ip = self.pod_ips.entry(uid).or_insert_with(|| {
                *next_pod_ip += 1;
                format!("10.244.{}.{}", (*next_pod_ip >> 8) & 0xff, *next_pod_ip & 0xff)
            });
            let _ = store.replace_status(&key, run.status(ip));
        }
        for effect in effects {
            match effect {
                Effect::Event {
                    severity,
                    reason,
                    message,
                } => self.recorder.record(store, pod, severity, &reason, &message, "kubelet"),
                Effect::Log { container, text } => {
                    logs.append(
                        &LogKey {
                            namespace: key.namespace.clone(),
                            pod: key.name.clone(),
                            container,
                        },
                        text,
                    );
                }
                Effect::Exited { .. } => {}
                Effect::RunEnded { container } => {
                    logs.restart(&LogKey {
                        namespace: key.namespace.clone(),
                        pod: key.name.clone(),
                        container,
                    });
                }
            }
        }
    }
}

/// A pod on a node, with its uid read once.
struct Placed {
    uid: String,
    pod: Arc<Value>,
}

impl Placed {
    fn new(pod: Arc<Value>) -> Self {
        Self {
            uid: uid_of(&pod).to_owned(),
            pod,
        }
    }
}

/// What a StatefulSet's reconciliation depends on: its own version and its pods' versions.
/// A StatefulSet and its pods as one pass saw them: the very objects (the store replaces an
/// object's `Arc` on every write), held so that no address is reused while compared.
struct Fingerprint(Vec<Arc<Value>>);

/// The pods of `pods` by the uid of each owner they name.
fn owned_by(pods: &[Arc<Value>]) -> HashMap<&str, Vec<Arc<Value>>> {
    let mut owned: HashMap<&str, Vec<Arc<Value>>> = HashMap::new();
    for pod in pods {
        for owner in pod["metadata"]["ownerReferences"].as_array().into_iter().flatten() {
            if let Some(uid) = owner["uid"].as_str() {
                owned.entry(uid).or_default().push(pod.clone());
            }
        }
    }
    owned
}

impl Fingerprint {
    /// Whether nothing was written since: the same objects, by identity (no JSON is read).
    fn same(&self, other: &Fingerprint) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

fn fingerprint(sts: &Arc<Value>, pods: &[Arc<Value>]) -> Fingerprint {
    Fingerprint(std::iter::once(sts.clone()).chain(pods.iter().cloned()).collect())
}

/// A pod waits for its claims to be bound before it is scheduled.
fn claims_bound(store: &Store, pod: &Value) -> bool {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .all(|claim| {
            store
                .get(&ObjectKey::new(ids::claims(), namespace, claim))
                .is_some_and(|c| c["status"]["phase"] == "Bound")
        })
}

/// The ownerReference a controller puts on what it makes.
fn controller_reference(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true})
}

/// Deletes a pod a controller owns (background); whether it was deleted.
fn delete_owned_pod(store: &mut Store, pod: &Value) -> bool {
    store
        .delete(&key_of(ids::pods(), pod), crate::store::Propagation::Background)
        .is_ok()
}

fn uid_of(object: &Value) -> &str {
    object["metadata"]["uid"].as_str().unwrap_or_default()
}

fn key_of(resource: usize, object: &Value) -> ObjectKey {
    let meta = &object["metadata"];
    ObjectKey::new(
        resource,
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(now: Instant) -> Controller {
        let mut controller = Controller::new(ClusterSpec::default());
        controller.passed_at = Some(7);
        controller.events_expired = Some(now);
        controller
    }

    #[test]
    fn a_pass_is_needed_after_a_followed_write_or_when_a_timed_step_is_due() {
        let now = Instant::now();
        assert!(
            Controller::new(ClusterSpec::default()).pass_needed(1, now),
            "the first pass"
        );
        let controller = settled(now);
        assert!(!controller.pass_needed(7, now), "nothing written, nothing due");
        assert!(controller.pass_needed(8, now), "a write since the last pass began");

        let mut terminating = settled(now);
        terminating.terminating.insert("uid".into(), now);
        assert!(terminating.pass_needed(7, now), "a pod's grace period runs");

        let mut unschedulable = settled(now);
        unschedulable.unschedulable_reported.insert("uid".into(), now);
        assert!(!unschedulable.pass_needed(7, now + Duration::from_secs(1)));
        assert!(
            unschedulable.pass_needed(7, now + RESCHEDULE_EVENT_EVERY),
            "FailedScheduling repeats"
        );

        let ttl = settled(now).cluster.timings.event_ttl;
        assert!(settled(now).pass_needed(7, now + ttl / 60), "Events to expire");
    }

    #[test]
    fn the_followed_revision_moves_with_pods_and_not_with_config_maps() {
        let mut store = Store::new(100);
        seed(&mut store, &ClusterSpec::default());
        let before = followed_revision(&store);
        store
            .create(ids::config_maps(), "default", json!({"metadata": {"name": "marker"}}))
            .unwrap();
        assert_eq!(followed_revision(&store), before);
        store
            .create(
                ids::pods(),
                "default",
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
            )
            .unwrap();
        assert_eq!(followed_revision(&store), store.revision());
    }
}
