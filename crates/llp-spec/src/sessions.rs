//! The session book of one user: what long-lived connections (log streams, terminals) the
//! user has open, in every replica of the service, so that a per-user cap holds across
//! replicas. Each open session is an entry `<kind>.<id>` → `<until>`: a replica renews its
//! sessions' entries while they are open and removes them when they close; an entry whose
//! replica went away without removing it stops counting at `until`. Kept as the data of a
//! ConfigMap (see `llp-k8s`'s `cluster::sessions`); this is its format and arithmetic.

use jiff::Timestamp;
use std::collections::BTreeMap;

/// The open sessions of one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    /// Session key (`logs.<id>`) → until when it counts.
    pub entries: BTreeMap<String, Timestamp>,
}

impl Book {
    /// The book a ConfigMap's data holds; entries it cannot read are left out.
    pub fn from_data(data: Option<&BTreeMap<String, String>>) -> Self {
        let entries = data
            .into_iter()
            .flatten()
            .filter_map(|(key, until)| Some((key.clone(), until.parse().ok()?)))
            .collect();
        Self { entries }
    }

    /// The data to store.
    pub fn to_data(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|(key, until)| (key.clone(), until.to_string()))
            .collect()
    }

    /// How many sessions of `kind` count at `now`.
    pub fn open(&self, kind: &str, now: Timestamp) -> usize {
        self.entries
            .iter()
            .filter(|(key, until)| key_kind(key) == Some(kind) && **until > now)
            .count()
    }

    /// This book without the entries that stopped counting at `now`, with `key` counting
    /// until `until` (or without `key`, for `None`).
    pub fn with(&self, now: Timestamp, key: &str, until: Option<Timestamp>) -> Self {
        let mut entries: BTreeMap<String, Timestamp> = self
            .entries
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(k, u)| (k.clone(), *u))
            .collect();
        match until {
            Some(until) => entries.insert(key.to_owned(), until),
            None => entries.remove(key),
        };
        Self { entries }
    }
}

/// The key of session `id` of `kind`.
pub fn key(kind: &str, id: &str) -> String {
    format!("{kind}.{id}")
}

fn key_kind(key: &str) -> Option<&str> {
    key.split_once('.').map(|(kind, _)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn sessions_count_by_kind_until_they_expire_and_are_pruned_on_a_write() {
        let book = Book::default()
            .with(at(0), &key("logs", "a"), Some(at(90)))
            .with(at(0), &key("logs", "b"), Some(at(30)))
            .with(at(0), &key("terminal", "c"), Some(at(90)));
        assert_eq!((book.open("logs", at(10)), book.open("terminal", at(10))), (2, 1));
        assert_eq!(book.open("logs", at(30)), 1, "b's replica stopped renewing it");
        let written = book.with(at(40), &key("logs", "a"), None);
        assert_eq!(written.entries.len(), 1, "a removed, b pruned, c kept");
        assert_eq!(Book::from_data(Some(&written.to_data())), written);
    }

    #[test]
    fn unreadable_entries_are_left_out() {
        let data = BTreeMap::from([("logs.x".to_owned(), "soon".to_owned())]);
        assert_eq!(Book::from_data(Some(&data)), Book::default());
    }
}
