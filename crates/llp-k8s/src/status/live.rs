//! A deployment followed as it changes, for the status stream: its status whenever it changes
//! (the first at once), each new event of its pods, and its deletion, last. Everything is read
//! from the watch caches and woken by them: a follower costs the cluster nothing.
//!
//! Events are told once each: a core event that happens again is the same object with a new
//! `resourceVersion` and a higher `count`, and is told again. The cursor a client keeps
//! (`Last-Event-ID`) is the newest event version it was told; coming back with it, it is told
//! only newer events (and the status at once, as any client).

use super::{Source, StatusMemo};
use crate::cluster::Cluster;
use axum::body::Bytes;
use futures::Stream;
use k8s_openapi::api::core::v1::Event;
use llp_spec::status::events::EventEntry;
use llp_spec::{Record, RenderConfig};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How often the status is looked at again without a change of the caches: what the caches'
/// contents do not show (that they stopped following the cluster) shows within this.
const RECHECK: Duration = Duration::from_secs(5);

/// Where a client is in a deployment's stream: the newest pod event version it was told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(u64);

impl Cursor {
    /// A cursor as [`std::fmt::Display`] writes it (a whole number).
    pub fn parse(text: &str) -> Option<Self> {
        text.trim().parse().ok().map(Self)
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One thing a follower is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The status (as `GET /kubernetes/deployments/{id}` answers it), changed.
    Status(Bytes),
    /// A new event of one of its pods.
    Event(PodEvent),
    /// It is no longer deployed: the last update.
    Deleted,
}

/// An event of a pod: as the events route answers it, and which pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodEvent {
    /// The pod's name.
    pub pod: String,
    /// The event.
    #[serde(flatten)]
    pub entry: EventEntry,
}

/// An update, and the cursor a client that received it is at.
#[derive(Debug, Clone, PartialEq)]
pub struct Told {
    /// Where the client is after this update.
    pub cursor: Cursor,
    /// The update.
    pub update: Update,
}

/// A deployment followed for one client.
pub struct Follower {
    cluster: Cluster,
    base: String,
    url: Option<String>,
    memo: Arc<StatusMemo>,
    changes: tokio::sync::watch::Receiver<u64>,
    feed: tokio::sync::broadcast::Receiver<Arc<Event>>,
    /// The status last told.
    status: Option<Bytes>,
    /// Its pods, as last seen.
    pods: BTreeSet<String>,
    /// The events told, by uid: the pod and the version told.
    told: HashMap<String, (String, u64)>,
    /// Events of this version and older are not told (the client had them).
    after: Cursor,
    /// The newest event version told, or `after`.
    cursor: Cursor,
    pending: VecDeque<Told>,
    ended: bool,
}

impl Follower {
    /// Follows the deployment of `record`, named after `base`, for a client at `after`.
    pub fn new(
        (cluster, memo): (Cluster, Arc<StatusMemo>),
        base: &str,
        (record, render): (&Record, &RenderConfig),
        after: Cursor,
    ) -> Self {
        let url = Source::new(&cluster, base, record, render).url;
        // Subscribed before the first look: nothing between the two is missed. Woken by
        // changes of this deployment's objects only.
        let changes = cluster.caches.wakes(base);
        let feed = cluster.caches.pod_event_feed();
        let mut follower = Self {
            cluster,
            base: base.to_owned(),
            url,
            memo,
            changes,
            feed,
            status: None,
            pods: BTreeSet::new(),
            told: HashMap::new(),
            after,
            cursor: after,
            pending: VecDeque::new(),
            ended: false,
        };
        follower.look();
        follower
    }

    /// The updates, until the deployment goes (or the caches do).
    pub fn into_stream(self) -> impl Stream<Item = Told> + Send + 'static {
        futures::stream::unfold(self, |mut follower| async move {
            let told = follower.next().await?;
            Some((told, follower))
        })
    }

    /// The next update, waiting for one.
    pub async fn next(&mut self) -> Option<Told> {
        loop {
            if let Some(told) = self.pending.pop_front() {
                return Some(told);
            }
            if self.ended {
                return None;
            }
            tokio::select! {
                changed = self.changes.changed() => match changed {
                    Ok(()) => self.look(),
                    // The caches are gone (the service stops).
                    Err(_) => self.ended = true,
                },
                event = self.feed.recv() => match event {
                    Ok(event) => self.take(&event),
                    // Fell behind the feed: the store has what was missed.
                    Err(RecvError::Lagged(_)) => self.tell_events_of(&self.pods.clone()),
                    Err(RecvError::Closed) => self.ended = true,
                },
                () = tokio::time::sleep(RECHECK) => self.look(),
            }
        }
    }

    /// Looks at the caches: the status if it changed, the events of pods new since the last
    /// look, or the end.
    fn look(&mut self) {
        let source = Source {
            cluster: &self.cluster,
            base: &self.base,
            url: self.url.clone(),
        };
        let Some(status) = source.answer(&self.memo) else {
            self.push(Update::Deleted);
            self.ended = true;
            return;
        };
        if self.status.as_ref() != Some(&status) {
            self.status = Some(status.clone());
            self.push(Update::Status(status));
        }
        self.follow_pods();
    }

    /// Takes the current pods; tells the events of those new since the last look.
    fn follow_pods(&mut self) {
        let (pods, _) = self.cluster.caches.members(&self.base);
        let pods: BTreeSet<String> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
        if pods == self.pods {
            return;
        }
        let new: BTreeSet<String> = pods.difference(&self.pods).cloned().collect();
        self.told.retain(|_, (pod, _)| pods.contains(pod));
        self.pods = pods;
        self.tell_events_of(&new);
    }

    /// An event from the feed: told if it is of one of the pods. One of a pod not seen yet
    /// has the pods looked at again (the pod watch may be a step behind the event watch; once
    /// it catches up, the new pod's events are read from the store).
    fn take(&mut self, event: &Event) {
        let Some(pod) = event.involved_object.name.as_deref() else {
            return;
        };
        if !self.pods.contains(pod) {
            // Pods are named after their workload: one named otherwise is another's.
            let ours = pod
                .strip_prefix(self.base.as_str())
                .is_some_and(|rest| rest.starts_with('-'));
            if ours {
                self.follow_pods();
            }
            return;
        }
        if let Some(update) = self.news(event) {
            self.push(update);
        }
    }

    /// Tells the events of `pods` the client was not told, oldest first.
    fn tell_events_of(&mut self, pods: &BTreeSet<String>) {
        let mut events: Vec<Arc<Event>> = pods.iter().flat_map(|p| self.cluster.caches.events_of(p)).collect();
        events.sort_by_key(|e| version(e));
        for event in events {
            if let Some(update) = self.news(&event) {
                self.push(update);
            }
        }
    }

    /// `event` as an update, if the client was not told it (at this version).
    fn news(&mut self, event: &Event) -> Option<Update> {
        let pod = event.involved_object.name.clone()?;
        let uid = event.metadata.uid.clone().unwrap_or_default();
        let version = version(event);
        if Cursor(version) <= self.after && version != 0 {
            return None;
        }
        match self.told.get(&uid) {
            Some((_, told)) if *told >= version => return None,
            _ => {}
        }
        self.told.insert(uid, (pod.clone(), version));
        self.cursor = self.cursor.max(Cursor(version));
        Some(Update::Event(PodEvent {
            pod,
            entry: llp_spec::status::events::entry(event),
        }))
    }

    fn push(&mut self, update: Update) {
        self.pending.push_back(Told {
            cursor: self.cursor,
            update,
        });
    }
}

/// An event's `resourceVersion` as a number: the API server's grow with each write (0 when
/// it is not one: told once per stream, never skipped on resumption).
fn version(event: &Event) -> u64 {
    event
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
