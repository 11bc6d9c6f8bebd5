//! A short-lived memory of who holds which token.
//!
//! Every request needs the caller's identity; without a cache a status poll would cost the
//! LLP API two requests (`/users/me` and the record) instead of one. Only the identity (id,
//! name, groups) is remembered, never a record or an access decision: records are always read
//! with the caller's token, so a revoked token or a record taken away stops working at once.
//! What can lag by up to the TTL is a changed role, i.e. which group limits apply.

use super::Identity;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many tokens are remembered; a full cache drops its expired entries, then
/// (if still full) everything: a flood of new tokens costs lookups, never memory.
const CAPACITY: usize = 10_000;

/// Identities by token (SHA-256 of it: the map never holds a usable token), each for `ttl`.
pub struct IdentityCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl IdentityCache {
    /// A cache keeping each identity for `ttl` (zero: no caching).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Identity, Instant)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The identity remembered for `token`, if still fresh.
    pub fn get(&self, token: &str, now: Instant) -> Option<Identity> {
        let entries = self.entries();
        let (identity, expires) = entries.get(&key(token))?;
        (now < *expires).then(|| identity.clone())
    }

    /// Remembers that `token` belongs to `identity`.
    pub fn insert(&self, token: &str, identity: Identity, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, expires)| now < *expires);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key(token), (identity, now + self.ttl));
    }

    /// How many tokens are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn someone(id: &str) -> Identity {
        Identity {
            id: id.into(),
            name: id.into(),
            groups: vec![],
            admin: false,
        }
    }

    #[test]
    fn an_identity_is_remembered_until_the_ttl_ends() {
        let cache = IdentityCache::new(Duration::from_secs(30));
        let start = Instant::now();
        cache.insert("t1", someone("alice"), start);
        assert_eq!(cache.get("t1", start + Duration::from_secs(29)).unwrap().id, "alice");
        assert_eq!(cache.get("t1", start + Duration::from_secs(30)), None);
        assert_eq!(cache.get("t2", start), None);
    }

    #[test]
    fn a_zero_ttl_remembers_nothing() {
        let cache = IdentityCache::new(Duration::ZERO);
        cache.insert("t1", someone("alice"), Instant::now());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_full_cache_never_grows_past_its_capacity() {
        let cache = IdentityCache::new(Duration::from_secs(30));
        let now = Instant::now();
        for i in 0..CAPACITY + 10 {
            cache.insert(&format!("token-{i}"), someone("x"), now);
        }
        assert!(cache.len() <= CAPACITY, "{}", cache.len());
        assert!(cache.get(&format!("token-{}", CAPACITY + 9), now).is_some());
    }
}
