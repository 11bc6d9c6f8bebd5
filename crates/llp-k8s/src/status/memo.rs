//! Status answers, rendered once per change of the watch caches. A status poll would
//! otherwise find the pods and claims, build the status and encode it as JSON every time: most
//! of its CPU beyond what any HTTP answer costs (perf, docs/performance.md). An answer is
//! reused only while the caches are at the version it was rendered from, and the parts that do
//! not come from the caches (the record's URL, the caches' staleness) are the same.

use axum::body::Bytes;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::RwLock;

/// What an answer was rendered from, besides the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// [`crate::cluster::cache::Caches::version`] when rendering began.
    pub version: u64,
    /// The URL from the record's hostname.
    pub url: Option<String>,
    /// Since when the caches have not followed the cluster.
    pub stale_since: Option<Timestamp>,
}

/// The latest answer of each deployment polled.
#[derive(Debug, Default)]
pub struct StatusMemo {
    answers: RwLock<Answers>,
}

#[derive(Debug, Default)]
struct Answers {
    by_deployment: HashMap<String, (Inputs, Bytes)>,
    /// How many were left by the last pruning: the next comes at twice as many (and 64 more).
    kept: usize,
}

impl StatusMemo {
    /// The answer for deployment `base` rendered from `inputs`, if there is one.
    pub fn get(&self, base: &str, inputs: &Inputs) -> Option<Bytes> {
        let answers = self.answers.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (rendered_from, body) = answers.by_deployment.get(base)?;
        (rendered_from == inputs).then(|| body.clone())
    }

    /// Keeps `body` as the answer for `base` rendered from `inputs`. When the answers have
    /// doubled since the last pruning, those of older versions go, so deleted deployments do
    /// not pile up (without counting the deployments on every render).
    pub fn put(&self, base: &str, inputs: Inputs, body: Bytes) {
        let mut answers = self.answers.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if answers.by_deployment.len() > 2 * answers.kept + 64 {
            let version = inputs.version;
            answers
                .by_deployment
                .retain(|_, (rendered_from, _)| rendered_from.version == version);
            answers.kept = answers.by_deployment.len();
        }
        answers.by_deployment.insert(base.to_owned(), (inputs, body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(version: u64, url: Option<&str>) -> Inputs {
        Inputs {
            version,
            url: url.map(str::to_owned),
            stale_since: None,
        }
    }

    #[test]
    fn an_answer_serves_only_the_same_version_url_and_staleness() {
        let memo = StatusMemo::default();
        memo.put("sd-1", inputs(7, None), Bytes::from_static(b"{}"));
        assert_eq!(memo.get("sd-1", &inputs(7, None)), Some(Bytes::from_static(b"{}")));
        assert_eq!(memo.get("sd-1", &inputs(8, None)), None, "the caches changed");
        assert_eq!(
            memo.get("sd-1", &inputs(7, Some("http://a.example"))),
            None,
            "the record changed"
        );
        let stale = Inputs {
            stale_since: Some(Timestamp::UNIX_EPOCH),
            ..inputs(7, None)
        };
        assert_eq!(memo.get("sd-1", &stale), None, "the caches went stale");
        assert_eq!(memo.get("sd-2", &inputs(7, None)), None);
    }

    #[test]
    fn older_answers_go_once_the_answers_have_doubled() {
        let memo = StatusMemo::default();
        for n in 0..65 {
            memo.put(&format!("sd-{n}"), inputs(1, None), Bytes::new());
        }
        assert!(memo.get("sd-0", &inputs(1, None)).is_some(), "64 and one more are kept");
        memo.put("sd-99", inputs(2, None), Bytes::new());
        assert_eq!(memo.get("sd-0", &inputs(1, None)), None);
        assert!(memo.get("sd-99", &inputs(2, None)).is_some());
    }
}
