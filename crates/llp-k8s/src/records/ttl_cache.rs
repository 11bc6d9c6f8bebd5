//! A short-lived memory of answers of the LLP API, keyed by a SHA-256 of the question (which
//! holds the caller's token: the map never holds a usable token, and one caller's entry can
//! never answer another's question). What is cached for how long, and why, is said where the
//! caches are made ([`super::directus`]).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many tokens are remembered; a full cache drops its expired entries, then
/// (if still full) everything: a flood of new tokens costs lookups, never memory.
const CAPACITY: usize = 10_000;

/// Values by key, each for `ttl`, then `stale` longer as a stand-in while a read refreshes it.
pub struct TtlCache<V> {
    ttl: Duration,
    stale: Duration,
    entries: Mutex<HashMap<[u8; 32], Entry<V>>>,
}

struct Entry<V> {
    value: V,
    stored: Instant,
    expires: Instant,
}

/// What the cache holds for a question.
#[derive(Debug, PartialEq)]
pub enum Lookup<V> {
    /// A fresh answer.
    Fresh(V),
    /// An answer still valid but in the last quarter of its life: worth refreshing ahead,
    /// so that a busy question never misses.
    Aging(V),
    /// An expired answer, within the stale allowance: served while one read refreshes it,
    /// when the refresh ahead did not come back in time (a slow LLP API).
    Stale(V),
    /// Nothing, or only an expired answer.
    Missing,
}

fn key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl<V: Clone> TtlCache<V> {
    /// A cache keeping each value for `ttl` (zero: no caching).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            stale: Duration::ZERO,
            entries: Mutex::default(),
        }
    }

    /// The same, serving an expired answer for up to `stale` more while it is refreshed.
    pub fn with_stale(mut self, stale: Duration) -> Self {
        self.stale = stale;
        self
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry<V>>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value remembered for `question`, if still fresh.
    pub fn get(&self, question: &str, now: Instant) -> Option<V> {
        match self.lookup(question, now) {
            Lookup::Fresh(value) | Lookup::Aging(value) => Some(value),
            Lookup::Stale(_) | Lookup::Missing => None,
        }
    }

    /// The answer to `question` and how old it is.
    pub fn lookup(&self, question: &str, now: Instant) -> Lookup<V> {
        let entries = self.entries();
        match entries.get(&key(question)) {
            Some(entry) if now >= entry.expires + self.stale => Lookup::Missing,
            Some(entry) if now >= entry.expires => Lookup::Stale(entry.value.clone()),
            Some(entry) if now - entry.stored >= (entry.expires - entry.stored).mul_f64(0.75) => {
                Lookup::Aging(entry.value.clone())
            }
            Some(entry) => Lookup::Fresh(entry.value.clone()),
            None => Lookup::Missing,
        }
    }

    /// Remembers `value` as the answer to `question`.
    pub fn insert(&self, question: &str, value: V, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= CAPACITY {
            entries.retain(|_, entry| now < entry.expires + self.stale);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        let key = key(question);
        // Each entry lives 80–100 % of the TTL (by its key's hash), so entries filled at once
        // do not all expire at once and send the LLP API a burst of reads.
        let ttl = self.ttl.mul_f64(0.8 + 0.2 * f64::from(key[0]) / 255.0);
        entries.insert(
            key,
            Entry {
                value,
                stored: now,
                expires: now + ttl,
            },
        );
    }

    /// Forgets the answer to `question`.
    pub fn forget(&self, question: &str) {
        self.entries().remove(&key(question));
    }

    /// How many answers are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Identity;

    fn someone(id: &str) -> Identity {
        Identity {
            id: id.into(),
            name: id.into(),
            groups: vec![],
            admin: false,
        }
    }

    #[test]
    fn an_answer_is_remembered_for_80_to_100_percent_of_the_ttl() {
        let cache = TtlCache::new(Duration::from_secs(30));
        let start = Instant::now();
        cache.insert("t1", someone("alice"), start);
        assert_eq!(cache.get("t1", start + Duration::from_secs(23)).unwrap().id, "alice");
        assert_eq!(cache.get("t1", start + Duration::from_secs(30)), None);
        assert_eq!(cache.get("t2", start), None);
    }

    #[test]
    fn an_answer_in_the_last_quarter_of_its_life_is_aging() {
        let cache = TtlCache::new(Duration::from_secs(100));
        let start = Instant::now();
        cache.insert("q", 7, start);
        assert_eq!(cache.lookup("q", start + Duration::from_secs(10)), Lookup::Fresh(7));
        // Its life is 80 to 100 s; three quarters of that is 60 to 75 s.
        assert_eq!(cache.lookup("q", start + Duration::from_secs(76)), Lookup::Aging(7));
        assert_eq!(cache.lookup("q", start + Duration::from_secs(100)), Lookup::Missing);
    }

    #[test]
    fn an_expired_answer_is_stale_for_the_allowance_then_missing() {
        let cache = TtlCache::new(Duration::from_secs(100)).with_stale(Duration::from_secs(50));
        let start = Instant::now();
        cache.insert("q", 7, start);
        assert_eq!(cache.lookup("q", start + Duration::from_secs(100)), Lookup::Stale(7));
        assert_eq!(
            cache.get("q", start + Duration::from_secs(100)),
            None,
            "never as a fresh answer"
        );
        assert_eq!(cache.lookup("q", start + Duration::from_secs(150)), Lookup::Missing);
    }

    #[test]
    fn a_zero_ttl_remembers_nothing() {
        let cache = TtlCache::new(Duration::ZERO);
        cache.insert("t1", someone("alice"), Instant::now());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_full_cache_never_grows_past_its_capacity() {
        let cache = TtlCache::new(Duration::from_secs(30));
        let now = Instant::now();
        for i in 0..CAPACITY + 10 {
            cache.insert(&format!("token-{i}"), someone("x"), now);
        }
        assert!(cache.len() <= CAPACITY, "{}", cache.len());
        assert!(cache.get(&format!("token-{}", CAPACITY + 9), now).is_some());
    }
}
