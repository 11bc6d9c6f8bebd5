//! An index of a watch cache by the `app` label: which objects belong to which deployment.
//! Without it every status request scanned (and copied) every pod of the namespace; with it a
//! request touches only its own deployment's objects.
//!
//! It follows the same watcher events as the reflector's store, with the same relist rule: a
//! new list (`Init` … `InitDone`) is built apart and replaces the old one when complete.

use kube::runtime::watcher::Event;
use llp_spec::names::APP_LABEL;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

/// Object names by `app` label value.
#[derive(Clone, Default)]
pub struct LabelIndex {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    live: Names,
    /// The list being received after `Init`, until `InitDone`.
    relist: Option<Names>,
}

#[derive(Default)]
struct Names {
    by_app: HashMap<String, BTreeSet<String>>,
    app_of: HashMap<String, String>,
}

impl Names {
    fn insert(&mut self, name: String, app: Option<String>) {
        self.remove(&name);
        if let Some(app) = app {
            self.by_app.entry(app.clone()).or_default().insert(name.clone());
            self.app_of.insert(name, app);
        }
    }

    fn remove(&mut self, name: &str) {
        if let Some(app) = self.app_of.remove(name)
            && let Some(names) = self.by_app.get_mut(&app)
        {
            names.remove(name);
            if names.is_empty() {
                self.by_app.remove(&app);
            }
        }
    }
}

fn key<K: kube::Resource>(object: &K) -> (String, Option<String>) {
    let meta = object.meta();
    let app = meta.labels.as_ref().and_then(|l| l.get(APP_LABEL)).cloned();
    (meta.name.clone().unwrap_or_default(), app)
}

impl LabelIndex {
    /// Follows one watcher event.
    pub fn apply<K: kube::Resource>(&self, event: &Event<K>) {
        let mut inner = self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            Event::Init => inner.relist = Some(Names::default()),
            Event::InitApply(object) => {
                let (name, app) = key(object);
                inner.relist.get_or_insert_with(Names::default).insert(name, app);
            }
            Event::InitDone => {
                if let Some(names) = inner.relist.take() {
                    inner.live = names;
                }
            }
            Event::Apply(object) => {
                let (name, app) = key(object);
                inner.live.insert(name, app);
            }
            Event::Delete(object) => inner.live.remove(&key(object).0),
        }
    }

    /// The names of the objects labelled `app: <app>`.
    pub fn names(&self, app: &str) -> Vec<String> {
        let inner = self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner
            .live
            .by_app
            .get(app)
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(name: &str, app: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {APP_LABEL: app}}
        }))
        .unwrap()
    }

    #[test]
    fn objects_are_found_by_their_app_label_until_deleted() {
        let index = LabelIndex::default();
        index.apply(&Event::Apply(pod("a-0", "a")));
        index.apply(&Event::Apply(pod("a-1", "a")));
        index.apply(&Event::Apply(pod("b-0", "b")));
        assert_eq!(index.names("a"), ["a-0", "a-1"]);
        index.apply(&Event::Delete(pod("a-0", "a")));
        assert_eq!(index.names("a"), ["a-1"]);
        assert_eq!(index.names("b"), ["b-0"]);
        assert!(index.names("c").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_complete() {
        let index = LabelIndex::default();
        index.apply(&Event::Apply(pod("a-0", "a")));
        index.apply(&Event::<Pod>::Init);
        index.apply(&Event::InitApply(pod("b-0", "b")));
        assert_eq!(
            index.names("a"),
            ["a-0"],
            "the old list serves until the new one is done"
        );
        index.apply(&Event::<Pod>::InitDone);
        assert!(index.names("a").is_empty(), "a-0 was deleted while the watch was down");
        assert_eq!(index.names("b"), ["b-0"]);
    }

    #[test]
    fn a_relabelled_object_moves() {
        let index = LabelIndex::default();
        index.apply(&Event::Apply(pod("x", "a")));
        index.apply(&Event::Apply(pod("x", "b")));
        assert!(index.names("a").is_empty());
        assert_eq!(index.names("b"), ["x"]);
    }
}
