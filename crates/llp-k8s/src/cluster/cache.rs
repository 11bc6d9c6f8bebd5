//! Watch caches of the managed namespace: reflectors over the StatefulSets, Jobs, pods and
//! claims that carry our `managed-by` label, over the StatefulSet controller's `FailedCreate`
//! events (the only trace of pods that admission refused), and over the pods' events (what
//! the status streams tell). Status requests and streams read only these, so polling and
//! streaming cost the Kubernetes API nothing.

use super::index::LabelIndex;
use super::trim;
use super::wakers::{Concerns, Wakers};
use super::workload::Deployed;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use llp_spec::names::{APP_LABEL, MANAGED_BY};
use llp_spec::status::{CachedPod, CachedStatefulSet};
use std::sync::Arc;

/// The reflector stores.
#[derive(Clone)]
pub struct Caches {
    /// StatefulSets, as much of each as is read (see [`CachedStatefulSet`]).
    pub stateful_sets: Store<CachedStatefulSet>,
    /// Jobs (runs to completion).
    pub jobs: Store<Job>,
    /// Pods, as much of each as is read (see [`CachedPod`]).
    pub pods: Store<CachedPod>,
    /// Volume claims.
    pub claims: Store<PersistentVolumeClaim>,
    /// The StatefulSet controller's `FailedCreate` events.
    pub failed_creates: Store<Event>,
    /// The owners' admission ledgers (see [`crate::cluster::ledger`]).
    pub ledgers: Store<ConfigMap>,
    /// Services, Ingresses and hostname claims: name and labels only (what a deploy prunes).
    pub services: Store<Service>,
    /// See `services`.
    pub ingresses: Store<Ingress>,
    /// See `services`.
    pub host_claims: Store<ConfigMap>,
    /// The events of the namespace's pods, trimmed to what a stream tells.
    pub pod_events: Store<Event>,
    /// Each pod event as the watch applies it (a relist sends them all again).
    pod_event_feed: tokio::sync::broadcast::Sender<Arc<Event>>,
    /// Pod names by deployment (`app` label).
    pod_index: LabelIndex,
    /// Claim names by deployment.
    claim_index: LabelIndex,
    /// Ticks on every change any store applies: waits for the caches to see a write wake on
    /// it instead of polling.
    changes: tokio::sync::watch::Receiver<u64>,
    /// Wake-ups by deployment, for followers of one.
    wakers: Wakers,
    /// The namespace they watch.
    namespace: String,
    /// The reflector tasks, to stop them before the cluster goes (a demo's simulator).
    tasks: Arc<Vec<tokio::task::AbortHandle>>,
}

/// Starts the reflectors; they run until the runtime stops.
pub fn start(client: &kube::Client, namespace: &str, health: &super::health::Health) -> Caches {
    let config = || watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let (pod_index, claim_index) = (LabelIndex::default(), LabelIndex::default());
    let (tick, changes) = tokio::sync::watch::channel(0_u64);
    let tick = Arc::new(tick);
    let wakers = Wakers::default();
    // A stream that falls this far behind reads the store again instead.
    let (pod_event_feed, _) = tokio::sync::broadcast::channel(1024);
    let (stateful_sets, stateful_sets_task) = reflect(
        Api::namespaced(client.clone(), namespace),
        config(),
        ignore,
        (tick.clone(), health.clone()),
        // Kept as a `CachedStatefulSet`: trimmed as it is read from the watch.
        (|_: &mut CachedStatefulSet| {}, by_name, wakers.clone()),
    );
    let (jobs, jobs_task) = reflect(
        Api::namespaced(client.clone(), namespace),
        config(),
        ignore,
        (tick.clone(), health.clone()),
        (trim::job, by_name, wakers.clone()),
    );
    let (pods, pods_task) = reflect(
        Api::namespaced(client.clone(), namespace),
        config(),
        {
            let index = pod_index.clone();
            move |event: &watcher::Event<CachedPod>| index.apply(event)
        },
        (tick.clone(), health.clone()),
        // Kept as a `CachedPod`: trimmed as it is read from the watch.
        (|_: &mut CachedPod| {}, by_app, wakers.clone()),
    );
    let (claims, claims_task) = reflect(
        Api::namespaced(client.clone(), namespace),
        config(),
        {
            let index = claim_index.clone();
            move |event: &watcher::Event<PersistentVolumeClaim>| index.apply(event)
        },
        (tick.clone(), health.clone()),
        // A shared claim (no `app` label) concerns every deployment that mounts it.
        (trim::claim, by_app, wakers.clone()),
    );
    let (failed_creates, failed_creates_task) = reflect(
        Api::namespaced(client.clone(), namespace),
        watcher::Config::default().fields("involvedObject.kind=StatefulSet,reason=FailedCreate"),
        ignore,
        (tick.clone(), health.clone()),
        (
            |event: &mut Event| event.metadata.managed_fields = None,
            |event: &Event| {
                let workload = event.involved_object.name.as_deref();
                workload.map_or(Concerns::Everyone, Concerns::Deployment)
            },
            wakers.clone(),
        ),
    );
    let (ledgers, ledgers_task) = reflect(
        Api::namespaced(client.clone(), namespace),
        watcher::Config::default().labels(super::ledger::LEDGER_SELECTOR),
        ignore,
        (tick.clone(), health.clone()),
        (
            |ledger: &mut ConfigMap| ledger.metadata.managed_fields = None,
            nobody,
            wakers.clone(),
        ),
    );
    let (services, services_task) = reflect(
        Api::namespaced(client.clone(), namespace),
        config(),
        ignore,
        (tick.clone(), health.clone()),
        (trim::to_labels::<Service>, nobody, wakers.clone()),
    );
    let (ingresses, ingresses_task) = reflect(
        Api::namespaced(client.clone(), namespace),
        config(),
        ignore,
        (tick.clone(), health.clone()),
        (trim::to_labels::<Ingress>, nobody, wakers.clone()),
    );
    let (host_claims, host_claims_task) = reflect(
        Api::namespaced(client.clone(), namespace),
        watcher::Config::default().labels(super::hostnames::CLAIM_SELECTOR),
        ignore,
        (tick.clone(), health.clone()),
        (trim::to_labels::<ConfigMap>, nobody, wakers.clone()),
    );
    let (pod_events, pod_events_task) = reflect(
        Api::namespaced(client.clone(), namespace),
        watcher::Config::default().fields("involvedObject.kind=Pod"),
        {
            let feed = pod_event_feed.clone();
            move |event: &watcher::Event<Event>| {
                if let watcher::Event::Apply(e) | watcher::Event::InitApply(e) = event {
                    // No receiver is no stream open: nothing to tell.
                    let _ = feed.send(Arc::new(e.clone()));
                }
            }
        },
        (tick, health.clone()),
        // Their followers hear of them through the feed.
        (trim::event, nobody, wakers.clone()),
    );
    Caches {
        stateful_sets,
        jobs,
        pods,
        claims,
        failed_creates,
        ledgers,
        services,
        ingresses,
        host_claims,
        pod_events,
        pod_event_feed,
        pod_index,
        claim_index,
        changes,
        wakers,
        namespace: namespace.to_owned(),
        tasks: Arc::new(vec![
            stateful_sets_task,
            jobs_task,
            pods_task,
            claims_task,
            failed_creates_task,
            ledgers_task,
            services_task,
            ingresses_task,
            host_claims_task,
            pod_events_task,
        ]),
    }
}

/// Whom a change of an object concerns (see [`Concerns`]).
type Concern<K> = for<'a> fn(&'a K) -> Concerns<'a>;

/// For a store whose watch events nobody else follows.
fn ignore<K>(_: &watcher::Event<K>) {}

/// A workload concerns the deployment it is named after.
fn by_name<K: kube::Resource>(object: &K) -> Concerns<'_> {
    object
        .meta()
        .name
        .as_deref()
        .map_or(Concerns::Everyone, Concerns::Deployment)
}

/// A pod or claim concerns the deployment its `app` label names; one without (a shared
/// claim) may concern any.
fn by_app<K: kube::Resource>(object: &K) -> Concerns<'_> {
    let app = object.meta().labels.as_ref().and_then(|l| l.get(APP_LABEL));
    app.map_or(Concerns::Everyone, |base| Concerns::Deployment(base))
}

/// Objects no status is rendered from.
fn nobody<K>(_: &K) -> Concerns<'_> {
    Concerns::Nobody
}

/// A reflector over `api`: its store, and the task that feeds it. `observe` sees each watch
/// event (trimmed) once the store has applied it, before the tick: a waiter the tick wakes
/// finds both done.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    observe: impl Fn(&watcher::Event<K>) + Send + 'static,
    (tick, health): (Arc<tokio::sync::watch::Sender<u64>>, super::health::Health),
    (trim, concerns, wakers): (fn(&mut K), Concern<K>, Wakers),
) -> (Store<K>, tokio::task::AbortHandle)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    // Trimmed before the store: only what is read back is kept (see [`trim`]).
    let events = watcher(api, config).modify(trim);
    // The tick follows the store's write: a waiter woken by it finds the change applied.
    let stream = reflector::reflector(writer, events)
        .default_backoff()
        .inspect(move |event| {
            match event {
                Ok(event) => observe(event),
                Err(_) => health.watch_failed(),
            }
            tick.send_modify(|n| *n = n.wrapping_add(1));
            // After the tick: a follower it wakes renders at the new version.
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o)) => {
                    wakers.wake(concerns(o));
                }
                Ok(watcher::Event::InitDone) => wakers.wake(Concerns::Everyone),
                Ok(watcher::Event::Init) | Err(_) => {}
            }
        });
    let task = tokio::spawn(stream.for_each(|_| async {}));
    (reader, task.abort_handle())
}

impl Caches {
    /// Stops following the cluster (the stores keep what they hold).
    pub fn stop(&self) {
        self.tasks.iter().for_each(tokio::task::AbortHandle::abort);
    }

    /// How many changes the stores have applied: equal versions mean equal contents, so
    /// something derived from the caches at one version holds until the next (the version is
    /// bumped after a store's write, so reading it first never pairs it with older contents).
    pub fn version(&self) -> u64 {
        *self.changes.borrow()
    }

    /// Waits until every store has its first full list.
    pub async fn ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.stateful_sets.wait_until_ready().await?;
        self.jobs.wait_until_ready().await?;
        self.pods.wait_until_ready().await?;
        self.claims.wait_until_ready().await?;
        self.failed_creates.wait_until_ready().await?;
        self.ledgers.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.ingresses.wait_until_ready().await?;
        self.host_claims.wait_until_ready().await?;
        self.pod_events.wait_until_ready().await
    }

    /// Wakes on every change any store applies ([`Caches::version`] is its value).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.clone()
    }

    /// A receiver that changes whenever the caches apply a change concerning the deployment
    /// `base` (its workload, pods, claims, failed creates; a shared claim; a list again).
    pub fn wakes(&self, base: &str) -> tokio::sync::watch::Receiver<u64> {
        self.wakers.subscribe(base)
    }

    /// Each pod event the watch applies from now on.
    pub fn pod_event_feed(&self) -> tokio::sync::broadcast::Receiver<Arc<Event>> {
        self.pod_event_feed.subscribe()
    }

    /// The events of pod `name`, as the watch last saw them.
    pub fn events_of(&self, pod: &str) -> Vec<Arc<Event>> {
        self.pod_events
            .state()
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(pod))
            .collect()
    }

    /// The names of the objects in `store` labelled as deployment `deployment_label`'s.
    pub fn labelled<K>(store: &Store<K>, deployment_label: &str) -> Vec<String>
    where
        K: kube::Resource + Clone + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        store
            .state()
            .iter()
            .filter(|o| {
                o.meta()
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(llp_spec::names::DEPLOYMENT_LABEL))
                    .map(String::as_str)
                    == Some(deployment_label)
            })
            .filter_map(|o| o.meta().name.clone())
            .collect()
    }

    /// The admission ledger named `name` once the watch has seen a version other than
    /// `known` (the one a write just lost against), or `None` after `within`.
    pub async fn ledger_after(
        &self,
        name: &str,
        known: Option<&str>,
        within: std::time::Duration,
    ) -> Option<Arc<ConfigMap>> {
        let newer = |caches: &Self| {
            caches
                .ledger(name)
                .is_some_and(|l| l.metadata.resource_version.as_deref() != known)
        };
        if self.wait_for(within, newer).await {
            self.ledger(name)
        } else {
            None
        }
    }

    /// The admission ledger named `name`, as the watch last saw it.
    pub fn ledger(&self, name: &str) -> Option<Arc<ConfigMap>> {
        self.ledgers
            .get(&reflector::ObjectRef::new(name).within(&self.namespace))
    }

    /// The message of the latest `FailedCreate` event of StatefulSet `name`.
    pub fn failed_create(&self, name: &str) -> Option<String> {
        let latest = self
            .failed_creates
            .state()
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .max_by_key(|e| event_time(e))?;
        latest.message.clone()
    }

    /// The StatefulSet named `name`.
    pub fn stateful_set(&self, name: &str) -> Option<Arc<CachedStatefulSet>> {
        self.stateful_sets
            .get(&reflector::ObjectRef::new(name).within(&self.namespace))
    }

    /// The Job named `name`.
    pub fn job(&self, name: &str) -> Option<Arc<Job>> {
        self.jobs.get(&reflector::ObjectRef::new(name).within(&self.namespace))
    }

    /// What runs the pods of the deployment whose base name is `name`, if it is deployed.
    pub fn deployed(&self, name: &str) -> Option<Deployed> {
        self.stateful_set(name)
            .map(Deployed::StatefulSet)
            .or_else(|| self.job(name).map(Deployed::Job))
    }

    /// The claim named `name`.
    pub fn claim(&self, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims
            .get(&reflector::ObjectRef::new(name).within(&self.namespace))
    }

    /// Whether `name` is a per-replica claim of one of the deployments of the owner whose
    /// `llp.kitegg.de/owner` label is `owner_label` (one a mount may name, as upstream
    /// allowed), and not being deleted.
    pub fn owned_claim(&self, name: &str, owner_label: &str) -> bool {
        self.claim(name).is_some_and(|claim| {
            let labels = claim.metadata.labels.as_ref();
            let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
            label(llp_spec::names::OWNER_LABEL) == Some(owner_label)
                && label(llp_spec::names::DEPLOYMENT_LABEL).is_some()
                && claim.metadata.deletion_timestamp.is_none()
        })
    }

    /// Waits until `done` holds for the caches, or `within` has passed; whether it holds.
    /// Wakes on every change the stores apply, not on a timer.
    pub async fn wait_for(&self, within: std::time::Duration, done: impl Fn(&Self) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut changes = self.changes.clone();
        loop {
            changes.borrow_and_update();
            if done(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                return done(self);
            }
        }
    }

    /// Waits (up to 10 s) until the cache holds the deployed `uid` (StatefulSet or Job) at
    /// `generation` or later, so that a status request right after a deploy sees it.
    pub async fn observe(&self, name: &str, uid: &str, generation: i64) -> bool {
        self.wait_for(std::time::Duration::from_secs(10), |caches| {
            caches
                .deployed(name)
                .is_some_and(|d| d.meta().uid.as_deref() == Some(uid) && d.meta().generation.unwrap_or(0) >= generation)
        })
        .await
    }

    /// Waits (up to 10 s) until the cache holds nothing deployed as `name`, so that a status
    /// request right after a delete says it is gone.
    pub async fn observe_gone(&self, name: &str) -> bool {
        self.wait_for(std::time::Duration::from_secs(10), |caches| {
            caches.deployed(name).is_none()
        })
        .await
    }

    /// Waits (up to `within`) until nothing of the deployment `base` is still being deleted: no
    /// claim being deleted (a new StatefulSet's pods would take such a claim, kept by
    /// `kubernetes.io/pvc-protection` while an old pod still uses it, and hang with it), and no
    /// pod terminating while its StatefulSet is gone. Returns the names still terminating when
    /// time runs out.
    pub async fn wait_deleted(&self, base: &str, within: std::time::Duration) -> Result<(), Vec<String>> {
        if self
            .wait_for(within, |caches| caches.terminating(base).is_empty())
            .await
        {
            Ok(())
        } else {
            Err(self.terminating(base))
        }
    }

    /// Waits (up to `within`) until nothing named `base` is left: no StatefulSet or Job, no pod,
    /// no claim. Returns what is still there when time runs out.
    pub async fn wait_gone(&self, base: &str, within: std::time::Duration) -> Result<(), Vec<String>> {
        let left = |caches: &Self| {
            let (pods, claims) = caches.members(base);
            let workload = caches.deployed(base).map(|d| format!("{} {base}", d.kind()));
            let name = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
                meta.name.clone().unwrap_or_default()
            };
            workload
                .into_iter()
                .chain(pods.iter().map(|p| format!("pod {}", name(&p.metadata))))
                .chain(claims.iter().map(|c| format!("claim {}", name(&c.metadata))))
                .collect::<Vec<_>>()
        };
        if self.wait_for(within, |caches| left(caches).is_empty()).await {
            Ok(())
        } else {
            Err(left(self))
        }
    }

    /// What of the deployment `base` is still being deleted (see [`Caches::wait_deleted`]).
    fn terminating(&self, base: &str) -> Vec<String> {
        let (pods, claims) = self.members(base);
        let orphaned = self
            .deployed(base)
            .is_none_or(|d| d.meta().deletion_timestamp.is_some());
        claims
            .iter()
            .filter(|c| c.metadata.deletion_timestamp.is_some())
            .map(|c| format!("claim {}", c.metadata.name.as_deref().unwrap_or_default()))
            .chain(
                pods.iter()
                    .filter(|p| orphaned && p.metadata.deletion_timestamp.is_some())
                    .map(|p| format!("pod {}", p.metadata.name.as_deref().unwrap_or_default())),
            )
            .collect()
    }

    /// What of the deployment `base` (labelled `deployment_label`) the caches show, by kind
    /// and name: its StatefulSet or Job, pods, claims, Services, Ingress and hostname claims.
    /// What a deploy cut off partway left is among them.
    pub fn remains(&self, base: &str, deployment_label: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .deployed(base)
            .map(|_| format!("workload {base}"))
            .into_iter()
            .collect();
        let (pods, claims) = self.members(base);
        found.extend(
            pods.iter()
                .filter_map(|p| p.metadata.name.as_ref())
                .map(|n| format!("pod {n}")),
        );
        found.extend(
            claims
                .iter()
                .filter_map(|c| c.metadata.name.as_ref())
                .map(|n| format!("claim {n}")),
        );
        for (kind, names) in [
            ("claim", Self::labelled(&self.claims, deployment_label)),
            ("service", Self::labelled(&self.services, deployment_label)),
            ("ingress", Self::labelled(&self.ingresses, deployment_label)),
            ("hostname claim", Self::labelled(&self.host_claims, deployment_label)),
        ] {
            for name in names {
                let object = format!("{kind} {name}");
                if !found.contains(&object) {
                    found.push(object);
                }
            }
        }
        found
    }

    /// The pods and claims of the deployment whose base name is `base` (its `app` label).
    pub fn members(&self, base: &str) -> (Vec<Arc<CachedPod>>, Vec<Arc<PersistentVolumeClaim>>) {
        (
            members(&self.pods, &self.pod_index, base, &self.namespace),
            members(&self.claims, &self.claim_index, base, &self.namespace),
        )
    }
}

/// The objects of `store` the index lists under `base`, still labelled so in the store (the
/// index may run a step ahead of the store; the label check keeps the answer exact).
fn members<K>(store: &Store<K>, index: &LabelIndex, base: &str, namespace: &str) -> Vec<Arc<K>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    index
        .names(base)
        .iter()
        .filter_map(|name| store.get(&reflector::ObjectRef::new(name).within(namespace)))
        .filter(|object| {
            let labels = object.meta().labels.as_ref();
            labels.and_then(|l| l.get(APP_LABEL)).map(String::as_str) == Some(base)
        })
        .collect()
}

/// When an event last happened: `lastTimestamp`, else `eventTime` (events.k8s.io writers),
/// else its creation, as seconds since the epoch.
fn event_time(event: &Event) -> i64 {
    event
        .last_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .or_else(|| event.event_time.as_ref().map(|t| t.0.as_second()))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()))
        .unwrap_or(0)
}
