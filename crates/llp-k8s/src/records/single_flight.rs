//! Cached reads of the LLP API that never stampede: a fresh answer comes from the cache; an
//! answer in the last quarter of its life is served at once while one read refreshes it in
//! the background (and, with a stale allowance, an expired one too, for that long, when the
//! refresh did not come back in time); a missing answer is read once, however many callers ask
//! at the same time (single flight). Used for record reads made to look and for the identity behind a token:
//! without it, every open connection read `/users/me` the moment a token's identity expired
//! (145 reads in one burst, p99 700 ms).

use super::ttl_cache::{Lookup, TtlCache};
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Labels of how asks of one cache were answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct LookupLabels {
    /// `identities` or `records`.
    pub cache: String,
    /// `fresh`, `aging` (served, refreshed ahead), `stale` (served past its life while a
    /// refresh is late) or `waited` (the ask waited for a read of the LLP API).
    pub answer: String,
}

/// Counters of how asks were answered, for `/metrics`: asks that `waited` are the ones whose
/// latency includes the LLP API's.
pub type Lookups = prometheus_client::metrics::family::Family<LookupLabels, Counter>;

/// Answers by question, each read at most once at a time. Clones share everything.
pub struct SingleFlight<V> {
    cache: Arc<TtlCache<V>>,
    /// A turn per question being read, so that concurrent readers wait for one read.
    turns: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Where asks are counted.
    answers: Answers,
}

/// The counters of one cache's answers, made once (a poll counts without a map look-up).
#[derive(Clone, Default)]
struct Answers {
    fresh: Counter,
    aging: Counter,
    stale: Counter,
    waited: Counter,
}

impl<V> Clone for SingleFlight<V> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            turns: self.turns.clone(),
            answers: self.answers.clone(),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> SingleFlight<V> {
    /// Answers kept for `ttl` (zero: every ask reads, still one read at a time per question),
    /// an expired answer served for up to `stale` more while one read refreshes it: a slow LLP
    /// API then delays the refresh, not the callers.
    pub fn with_stale(ttl: Duration, stale: Duration) -> Self {
        Self {
            cache: Arc::new(TtlCache::new(ttl).with_stale(stale)),
            turns: Arc::default(),
            answers: Answers::default(),
        }
    }

    /// Counts how asks are answered in `lookups`, as cache `name`.
    pub fn count_in(&mut self, lookups: &Lookups, name: &str) {
        let counter = |answer: &str| {
            lookups
                .get_or_create(&LookupLabels {
                    cache: name.to_owned(),
                    answer: answer.to_owned(),
                })
                .clone()
        };
        self.answers = Answers {
            fresh: counter("fresh"),
            aging: counter("aging"),
            stale: counter("stale"),
            waited: counter("waited"),
        };
    }

    /// Remembers `value` as the answer to `question` (a read made elsewhere).
    pub fn remember(&self, question: &str, value: V) {
        self.cache.insert(question, value, Instant::now());
    }

    /// The answer to `question`, reading it with `read` only when the cache cannot answer.
    pub async fn get<E, F, Fut>(&self, question: &str, read: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + 'static,
    {
        self.get_at(question, Instant::now(), read).await
    }

    /// [`SingleFlight::get`] as if it were `now` (tests move the clock, not sleep).
    async fn get_at<E, F, Fut>(&self, question: &str, now: Instant, read: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + 'static,
    {
        match self.cache.lookup(question, now) {
            Lookup::Fresh(value) => {
                self.answers.fresh.inc();
                return Ok(value);
            }
            Lookup::Aging(value) => {
                self.answers.aging.inc();
                self.refresh_ahead(question, read());
                return Ok(value);
            }
            Lookup::Stale(value) => {
                self.answers.stale.inc();
                self.refresh_ahead(question, read());
                return Ok(value);
            }
            Lookup::Missing => {
                self.answers.waited.inc();
            }
        }
        let turn = self.turn(question);
        let _turn = turn.lock().await;
        // Removes the turn however this ends (also when the caller goes away mid-read).
        let _done = TurnDone {
            flight: self.clone(),
            question: question.to_owned(),
        };
        // Whoever had the turn before may have filled the cache.
        if let Some(value) = self.cache.get(question, Instant::now()) {
            return Ok(value);
        }
        let value = read().await?;
        self.remember(question, value.clone());
        Ok(value)
    }

    fn turn(&self, question: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
        turns.entry(question.to_owned()).or_default().clone()
    }

    /// Runs `reading` in the background and remembers its answer, unless a read of the
    /// question is under way. A failed refresh forgets the answer, so that the next ask reads
    /// and gets the failure itself (a record taken away stops showing at once).
    fn refresh_ahead<E, Fut>(&self, question: &str, reading: Fut)
    where
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + 'static,
    {
        let Ok(turn) = self.turn(question).try_lock_owned() else {
            return;
        };
        let (flight, question) = (self.clone(), question.to_owned());
        tokio::spawn(async move {
            let _done = TurnDone {
                flight: flight.clone(),
                question: question.clone(),
            };
            match reading.await {
                Ok(value) => flight.remember(&question, value),
                Err(_) => flight.cache.forget(&question),
            }
            drop(turn);
        });
    }
}

/// Ends a question's turn when dropped.
struct TurnDone<V> {
    flight: SingleFlight<V>,
    question: String,
}

impl<V> Drop for TurnDone<V> {
    fn drop(&mut self) {
        self.flight
            .turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.question);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_asks_of_a_missing_answer_read_once() {
        let flight = SingleFlight::<u32>::with_stale(Duration::from_secs(30), Duration::ZERO);
        let reads = Arc::new(AtomicUsize::new(0));
        let asks = (0..20).map(|_| {
            let (flight, reads) = (flight.clone(), reads.clone());
            tokio::spawn(async move {
                flight
                    .get("q", || async move {
                        reads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, ()>(7)
                    })
                    .await
            })
        });
        for ask in futures::future::join_all(asks).await {
            assert_eq!(ask.unwrap(), Ok(7));
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_answer_is_served_while_one_read_refreshes_it_and_not_beyond_the_allowance() {
        let flight = SingleFlight::<u32>::with_stale(Duration::from_secs(100), Duration::from_secs(50));
        let stored = Instant::now();
        flight.remember("q", 1);
        let reads = Arc::new(AtomicUsize::new(0));
        let slow_read = |reads: Arc<AtomicUsize>| async move {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, ()>(2)
        };
        // Expired (its life is 80 to 100 s), within the allowance: served, one read under way.
        for _ in 0..5 {
            let answer = flight
                .get_at("q", stored + Duration::from_secs(120), || slow_read(reads.clone()))
                .await;
            assert_eq!(answer, Ok(1));
        }
        tokio::time::timeout(Duration::from_secs(5), async {
            while reads.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the refresh starts");
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one refresh for every stale answer");
        // Beyond the allowance the ask waits for a read of its own.
        let waited = tokio::time::timeout(
            Duration::from_millis(100),
            flight.get_at("q", stored + Duration::from_secs(151), || async { Ok::<_, ()>(3) }),
        )
        .await;
        assert!(waited.is_err(), "it waits for the turn the slow refresh holds");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_aging_answer_is_served_at_once_and_refreshed_in_the_background() {
        let flight = SingleFlight::<u32>::with_stale(Duration::from_secs(400), Duration::ZERO);
        let stored = Instant::now();
        flight.remember("q", 1);
        // An entry lives 320 to 400 s; at 310 s every one is in its last quarter.
        let answer = flight
            .get_at("q", stored + Duration::from_secs(310), || async { Ok::<_, ()>(2) })
            .await;
        assert_eq!(answer, Ok(1), "served from the cache, not waiting for the read");
        tokio::time::timeout(Duration::from_secs(5), async {
            while flight.get("q", || async { Ok::<_, ()>(3) }).await != Ok(2) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the background read's answer is remembered");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_are_counted_by_how_they_were_given() {
        let lookups = Lookups::default();
        let mut flight = SingleFlight::<u32>::with_stale(Duration::from_secs(100), Duration::from_secs(50));
        flight.count_in(&lookups, "records");
        let stored = Instant::now();
        let ask = |at: u64| flight.get_at("q", stored + Duration::from_secs(at), || async { Ok::<_, ()>(1) });
        for at in [0, 1, 2, 79, 120] {
            assert_eq!(ask(at).await, Ok(1));
        }
        let count = |answer: &str| {
            lookups
                .get_or_create(&LookupLabels {
                    cache: "records".into(),
                    answer: answer.into(),
                })
                .get()
        };
        // Its life is 80 to 100 s: at 79 s it is in its last quarter, at 120 s expired.
        assert_eq!(
            [count("waited"), count("fresh"), count("aging"), count("stale")],
            [1, 2, 1, 1]
        );
    }
}
