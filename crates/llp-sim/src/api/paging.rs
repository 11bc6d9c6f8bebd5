//! `limit` and `continue` on lists, as kube-apiserver pages them: at most `limit` objects in
//! key order, and a `continue` token for the rest. Every page of one list is read at the
//! first page's resourceVersion (the store rebuilds it from its history, as etcd keeps it),
//! so the pages are one snapshot however the objects change between them.
//! kube-rs's watcher lists 500 at a time, and kubectl too, so 40,000 pods are never one
//! response held in memory on either side.

use super::status::ApiError;
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// Its objects.
    pub items: Vec<Arc<Value>>,
    /// The list's resourceVersion (the first page's).
    pub revision: u64,
    /// The token for the next page, if any is left.
    pub next: Option<String>,
    /// How many objects the pages after this one hold.
    pub remaining: usize,
}

/// The page of `items` (the whole list, in key order, at `revision`) that `limit` and
/// `token` (the request's `continue`) ask for.
pub fn cut(
    mut items: Vec<Arc<Value>>,
    revision: u64,
    limit: Option<&str>,
    token: Option<&str>,
) -> Result<Page, ApiError> {
    let limit = match limit.filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => match l.parse::<usize>() {
            Ok(0) => None,
            Ok(limit) => Some(limit),
            Err(_) => return Err(ApiError::bad_request(format!("invalid limit {l:?}: a whole number"))),
        },
    };
    let (revision, mut items) = match token.filter(|t| !t.is_empty()) {
        None => (revision, items),
        Some(token) => {
            let (first_revision, after) = decode(token).ok_or_else(|| {
                ApiError::bad_request("continue key is not valid: start the list again without `continue`")
            })?;
            let start = items.partition_point(|o| key(o) <= (after.0.as_str(), after.1.as_str()));
            (first_revision, items.split_off(start))
        }
    };
    let (next, remaining) = match limit {
        Some(limit) if items.len() > limit => {
            let remaining = items.len() - limit;
            items.truncate(limit);
            let last = items.last().map(|o| key(o)).unwrap_or_default();
            (Some(encode(revision, last)), remaining)
        }
        _ => (None, 0),
    };
    Ok(Page {
        items,
        revision,
        next,
        remaining,
    })
}

/// The version a `continue` token's list is read at (its first page's), if there is a token.
pub fn token_revision(token: Option<&str>) -> Result<Option<u64>, ApiError> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(token) => decode(token)
            .map(|(revision, _)| Some(revision))
            .ok_or_else(|| ApiError::bad_request("continue key is not valid: start the list again without `continue`")),
    }
}

/// An object's place in the store's order (namespace, then name).
fn key(object: &Value) -> (&str, &str) {
    let meta = &object["metadata"];
    (
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default(),
    )
}

fn encode(revision: u64, (namespace, name): (&str, &str)) -> String {
    let token = json!({"rv": revision, "namespace": namespace, "name": name});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode(token: &str) -> Option<(u64, (String, String))> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    let token: Value = serde_json::from_slice(&bytes).ok()?;
    let text = |k: &str| token[k].as_str().map(str::to_owned);
    Some((token["rv"].as_u64()?, (text("namespace")?, text("name")?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(names: &[&str]) -> Vec<Arc<Value>> {
        names
            .iter()
            .map(|n| Arc::new(json!({"metadata": {"namespace": "services", "name": n}})))
            .collect()
    }

    fn names(page: &Page) -> Vec<&str> {
        page.items
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn pages_follow_each_other_at_the_first_pages_version() {
        let all = objects(&["a", "b", "c", "d", "e"]);
        let first = cut(all.clone(), 7, Some("2"), None).unwrap();
        assert_eq!((names(&first), first.revision, first.remaining), (vec!["a", "b"], 7, 3));
        // Meanwhile `b` went and `bb` came: the next page starts after `b` all the same, at 7.
        let now = objects(&["a", "bb", "c", "d", "e"]);
        let second = cut(now.clone(), 9, Some("2"), first.next.as_deref()).unwrap();
        assert_eq!((names(&second), second.revision), (vec!["bb", "c"], 7));
        let last = cut(now, 9, Some("2"), second.next.as_deref()).unwrap();
        assert_eq!(
            (names(&last), last.next.as_deref(), last.remaining),
            (vec!["d", "e"], None, 0)
        );
    }

    #[test]
    fn no_limit_is_the_whole_list_and_a_bad_token_or_limit_is_refused() {
        let whole = cut(objects(&["a", "b"]), 3, None, None).unwrap();
        assert_eq!((names(&whole), whole.next.as_deref()), (vec!["a", "b"], None));
        assert_eq!(cut(objects(&["a"]), 3, Some("0"), None).unwrap().items.len(), 1);
        assert!(cut(objects(&["a"]), 3, Some("many"), None).is_err());
        assert!(cut(objects(&["a"]), 3, Some("1"), Some("not-a-token")).is_err());
    }
}
