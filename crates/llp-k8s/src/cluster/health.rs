//! Whether the watch caches follow the cluster, and since when they have not. A watch that
//! fails says so at once; an API server that stops answering (frozen, partitioned) leaves
//! watches silent instead, so a probe asks it every few seconds. Status answers then say
//! their data may be stale, and `/readyz` fails once that has lasted too long.

use jiff::Timestamp;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How the caches' link to the cluster is doing.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Since when the cluster has not been followed; `None` while it is.
    since: Option<Timestamp>,
    /// A watch failed since the last probe: a probe that succeeds clears nothing then.
    watch_failed: bool,
}

impl Health {
    /// Since when the caches have not followed the cluster, if they do not.
    pub fn stale_since(&self) -> Option<Timestamp> {
        self.lock().since
    }

    /// A watch failed (it is retried with back-off).
    pub fn watch_failed(&self) {
        let mut state = self.lock();
        state.watch_failed = true;
        state.since.get_or_insert_with(Timestamp::now);
    }

    /// The outcome of one probe of the API server.
    pub fn probed(&self, answered: bool) {
        let mut state = self.lock();
        if answered && !state.watch_failed {
            state.since = None;
        } else {
            state.since.get_or_insert_with(Timestamp::now);
        }
        state.watch_failed = false;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Probes the API server every `every` (`GET /version`, within the client's request
/// deadline) until the runtime stops.
pub fn spawn_probe(client: kube::Client, health: Health, every: Duration) -> tokio::task::AbortHandle {
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let answered = client.apiserver_version().await.is_ok();
            health.probed(answered);
        }
    });
    task.abort_handle()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_from_the_first_failure_until_a_probe_answers_with_no_watch_failing() {
        let health = Health::default();
        assert_eq!(health.stale_since(), None);
        health.probed(false);
        let since = health.stale_since().expect("stale");
        health.watch_failed();
        assert_eq!(health.stale_since(), Some(since), "still since the first failure");
        health.probed(true);
        assert_eq!(
            health.stale_since(),
            Some(since),
            "a watch failed during that probe's interval"
        );
        health.probed(true);
        assert_eq!(health.stale_since(), None, "recovered");
    }
}
