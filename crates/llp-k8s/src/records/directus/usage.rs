//! GPU usage kept in a collection of the LLP API (default `gpu_usage`), written and read with
//! the service token (users never read it directly: the usage route picks their rows). Each
//! item is one pod's hold on one profile; its primary key is `<pod uid>:<profile>`, so a hold
//! written again, by any replica, is the same item. Fields (docs/operations.md): `id` (string,
//! primary key), `pod_uid`, `profile`, `pod`, `deployment`, `owner` (strings), `gpus`
//! (integer), `started_at`, `ended_at` (nullable), `seen_at` (timestamps). The service token's
//! role needs create, read and update on the collection.

use super::client::{Failure, LlpApi};
use crate::records::RecordError;
use jiff::Timestamp;
use llp_spec::spec::Gpu;
use llp_spec::usage::Hold;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// How many items one request names (the ids go into the URL of the read).
const BATCH: usize = 100;

/// One item as the collection holds it.
#[derive(Debug, Deserialize)]
struct Item {
    id: String,
    pod_uid: String,
    profile: String,
    pod: String,
    deployment: String,
    owner: String,
    gpus: u32,
    started_at: Timestamp,
    ended_at: Option<Timestamp>,
    seen_at: Timestamp,
}

/// The item id of a hold.
fn id(hold: &Hold) -> String {
    format!("{}:{}", hold.pod_uid, hold.gpu.slug())
}

fn item(hold: &Hold) -> Value {
    json!({
        "id": id(hold), "pod_uid": hold.pod_uid, "profile": hold.gpu.slug(), "pod": hold.pod,
        "deployment": hold.deployment, "owner": hold.owner, "gpus": hold.count,
        "started_at": hold.start, "ended_at": hold.end, "seen_at": hold.seen,
    })
}

/// Reads and writes the collection.
pub(super) struct UsageItems {
    pub(super) collection: String,
}

impl UsageItems {
    fn path(&self, query: &[(&str, String)]) -> String {
        let mut url = reqwest::Url::parse("http://llp/").expect("a constant URL");
        url.set_path(&format!("/items/{}", self.collection));
        let mut pairs = url.query_pairs_mut();
        for (key, value) in query {
            pairs.append_pair(key, value);
        }
        drop(pairs);
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    fn failed<'a>(&'a self, doing: &'a str) -> impl Fn(Failure) -> RecordError + 'a {
        move |failure| match failure {
            Failure::Status(reqwest::StatusCode::FORBIDDEN, message) => RecordError::Forbidden(format!(
                "the LLP API does not let the service {doing} {} ({message}): give the service token's role create, read and update on it",
                self.collection
            )),
            other => other.into_error("/items (usage)"),
        }
    }

    /// The holds `filter` selects.
    pub(super) async fn read(&self, api: &LlpApi, token: &str, filter: &Value) -> Result<Vec<Hold>, RecordError> {
        let path = self.path(&[("filter", filter.to_string()), ("limit", "-1".into())]);
        let items: Vec<Item> = api.get("items", &path, token).await.map_err(self.failed("read"))?;
        items
            .into_iter()
            .map(|item| {
                let gpu = Gpu::from_slug(&item.profile).ok_or_else(|| RecordError::BadGateway {
                    source_name: super::NAME,
                    detail: format!(
                        "{} item {} names an unknown profile `{}`",
                        self.collection, item.id, item.profile
                    ),
                })?;
                Ok(Hold {
                    pod_uid: item.pod_uid,
                    pod: item.pod,
                    deployment: item.deployment,
                    owner: item.owner,
                    gpu,
                    count: item.gpus,
                    start: item.started_at,
                    end: item.ended_at,
                    seen: item.seen_at,
                })
            })
            .collect()
    }

    /// Writes `holds`: new ones are created; known ones keep their end once they have one,
    /// and take the latest sighting.
    pub(super) async fn record(&self, api: &LlpApi, token: &str, holds: &[Hold]) -> Result<(), RecordError> {
        for batch in holds.chunks(BATCH) {
            let ids: Vec<String> = batch.iter().map(id).collect();
            let known: HashMap<String, Hold> = self
                .read(api, token, &json!({"id": {"_in": ids}}))
                .await?
                .into_iter()
                .map(|hold| (id(&hold), hold))
                .collect();
            let new: Vec<Value> = batch.iter().filter(|h| !known.contains_key(&id(h))).map(item).collect();
            let changed: Vec<Value> = batch
                .iter()
                .filter_map(|hold| {
                    let stored = known.get(&id(hold))?;
                    let end = stored.end.or(hold.end);
                    let seen = stored.seen.max(hold.seen);
                    (end != stored.end || seen != stored.seen)
                        .then(|| json!({"id": id(hold), "ended_at": end, "seen_at": seen}))
                })
                .collect();
            let items = self.path(&[]);
            if !new.is_empty()
                && let Err(failure) = api
                    .send(reqwest::Method::POST, ("items", &items), token, &Value::Array(new))
                    .await
            {
                // Another instance may have created one of them since the read: the next
                // round writes them again (as updates then).
                return Err(self.failed("create items in")(failure));
            }
            if !changed.is_empty() {
                api.send(reqwest::Method::PATCH, ("items", &items), token, &Value::Array(changed))
                    .await
                    .map_err(self.failed("update items of"))?;
            }
        }
        Ok(())
    }
}

impl crate::records::UsageStore for super::DirectusSource {
    fn record<'a>(&'a self, holds: &'a [Hold]) -> futures::future::BoxFuture<'a, Result<(), RecordError>> {
        Box::pin(async move {
            let token = self.service_token(None, "keep GPU usage")?;
            self.usage.record(&self.api, token.expose(), holds).await
        })
    }

    fn open_holds(&self) -> futures::future::BoxFuture<'_, Result<Vec<Hold>, RecordError>> {
        Box::pin(async move {
            let token = self.service_token(None, "keep GPU usage")?;
            self.usage
                .read(&self.api, token.expose(), &json!({"ended_at": {"_null": true}}))
                .await
        })
    }

    fn holds_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> futures::future::BoxFuture<'_, Result<Vec<Hold>, RecordError>> {
        Box::pin(async move {
            let token = self.service_token(None, "read GPU usage")?;
            let filter = json!({"_and": [
                {"started_at": {"_lt": to}},
                {"_or": [{"ended_at": {"_null": true}}, {"ended_at": {"_gt": from}}]},
            ]});
            self.usage.read(&self.api, token.expose(), &filter).await
        })
    }
}
