//! Wake-ups by deployment: a follower of one deployment (a status stream) is woken when the
//! watch caches apply a change to one of that deployment's objects, not on every change in
//! the namespace. With a thousand streams open, a pod's change wakes the streams of its
//! deployment, not a thousand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// Whom a change concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concerns<'a> {
    /// The deployment of this base name.
    Deployment(&'a str),
    /// Any deployment (a shared claim, a watch that listed again).
    Everyone,
    /// No deployment's status.
    Nobody,
}

/// The followers' wake-ups, by deployment base name.
#[derive(Clone, Default)]
pub struct Wakers {
    by_base: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl Wakers {
    /// A receiver that changes whenever a change concerning `base` (or everyone) is applied.
    pub fn subscribe(&self, base: &str) -> watch::Receiver<u64> {
        let mut by_base = self.lock();
        // Senders nobody listens to any more go here, so the map holds open streams' only.
        if by_base.len() >= 64 && by_base.len().is_power_of_two() {
            by_base.retain(|_, sender| sender.receiver_count() > 0);
        }
        by_base
            .entry(base.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes whom `concerns` names.
    pub fn wake(&self, concerns: Concerns<'_>) {
        let bump = |sender: &watch::Sender<u64>| sender.send_modify(|n| *n = n.wrapping_add(1));
        let mut by_base = self.lock();
        match concerns {
            Concerns::Deployment(base) => {
                if let Some(sender) = by_base.get(base) {
                    if sender.receiver_count() == 0 {
                        by_base.remove(base);
                    } else {
                        bump(sender);
                    }
                }
            }
            Concerns::Everyone => by_base.values().for_each(bump),
            Concerns::Nobody => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        self.by_base.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_wakes_its_deployments_followers_and_everyone_wakes_all() {
        let wakers = Wakers::default();
        let (mut a, mut b) = (wakers.subscribe("sd-a"), wakers.subscribe("sd-b"));
        wakers.wake(Concerns::Deployment("sd-a"));
        assert!(a.has_changed().unwrap() && !b.has_changed().unwrap());
        a.mark_unchanged();
        wakers.wake(Concerns::Nobody);
        wakers.wake(Concerns::Deployment("sd-c"));
        assert!(!a.has_changed().unwrap() && !b.has_changed().unwrap());
        wakers.wake(Concerns::Everyone);
        assert!(a.has_changed().unwrap() && b.has_changed().unwrap());
        b.mark_unchanged();
        drop(a);
        wakers.wake(Concerns::Deployment("sd-a"));
        assert_eq!(wakers.lock().len(), 1, "a follower gone is forgotten");
    }
}
