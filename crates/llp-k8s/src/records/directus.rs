//! The `directus` record source: the real LLP API. Records and `/users/me` are read with the
//! caller's own token, so the LLP's permissions decide who may read which record; the service
//! needs no token of its own for that.
//!
//! Failures name "the LLP API": unreachable or a 5xx is 502, too slow is 504, rate-limited is
//! 503; a bad token is 401 and a record the LLP refuses is its 403 (Directus says the same for
//! a record that does not exist, so ids cannot be probed).

use super::ttl_cache::TtlCache;
use super::{Identity, Purpose, RecordError, RecordSource, Session, Token};
use futures::future::BoxFuture;
use llp_spec::Record;
use reqwest::StatusCode;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// What errors call this source.
const NAME: &str = "the LLP API";

/// The fields of a record this service reads.
const RECORD_FIELDS: &str = "id,title,data,exposed_service,exposed_port,exposed_hostname,user_created";

/// The fields of a user that say who they are and which role and policies they have. Fields
/// the token may not read are left out by Directus, not refused, so asking for all is safe.
const USER_FIELDS: &str = "id,first_name,last_name,email,role.id,role.name,\
    policies.policy.id,policies.policy.name,policies.policy.admin_access,\
    role.policies.policy.id,role.policies.policy.name,role.policies.policy.admin_access";

/// Labels of one request to the LLP API.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct LlpApiLabels {
    /// `users/me`, `users/{id}`, `items`, `server/ping`.
    pub endpoint: String,
    /// The HTTP status, `timeout` or `unreachable`.
    pub outcome: String,
}

/// Counters of requests to the LLP API, for `/metrics`.
pub type LlpApiCalls =
    prometheus_client::metrics::family::Family<LlpApiLabels, prometheus_client::metrics::counter::Counter>;

/// How to reach the LLP API and map its roles to groups.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectusConfig {
    /// Base URL of the LLP API (the Directus instance), e.g. `https://llp.example.org`.
    pub url: String,
    /// The collection holding deployment records.
    pub collection: String,
    /// How long one request to the LLP API may take before the caller gets 504.
    pub timeout_seconds: u64,
    /// How long an identity (`/users/me`) is remembered per token; 0 asks every time.
    pub identity_cache_seconds: u64,
    /// How long a record read for a status, log or event request is remembered per token and
    /// id; 0 asks every time. Deploys, deletes and every other change always ask.
    pub record_cache_seconds: u64,
    /// Optional token allowed to read users' roles and policies, for LLPs whose users may not
    /// read their own role. Without it, groups come from what the caller's token can read.
    pub identity_token: Option<String>,
    /// Role or policy (by name or id) → group, e.g. `management = "management"`.
    pub groups: BTreeMap<String, String>,
}

impl Default for DirectusConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            collection: "deployments".into(),
            timeout_seconds: 10,
            identity_cache_seconds: 30,
            record_cache_seconds: 5,
            identity_token: None,
            groups: BTreeMap::from([("management".to_owned(), "management".to_owned())]),
        }
    }
}

/// The LLP API as a record source.
pub struct DirectusSource {
    http: reqwest::Client,
    base: String,
    config: DirectusConfig,
    /// Who holds a token. Every request needs it; without this a poll would cost the LLP
    /// two requests (`/users/me` and the record). Only id, name and groups lag by up to the
    /// TTL (a changed role changes limits late); access itself is decided by the record read.
    identities: TtlCache<Identity>,
    /// Records read to look (status, logs, events), by token and id. Polling is the bulk of
    /// the traffic; a Directus answers a few hundred record reads a second, so each poll going
    /// there would make the LLP API the limit (measured: 187 status requests/s uncached). The
    /// price: a record taken away, or a token revoked, still shows its status for up to the
    /// TTL. Changes (deploy, scale, delete, pods, secrets) always read afresh.
    records: TtlCache<Record>,
    /// Reads of the LLP API in flight to fill `records`, by question: concurrent polls of one
    /// record wait for one read instead of each sending its own.
    filling: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// Requests sent, by endpoint and outcome.
    calls: LlpApiCalls,
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum DirectusConfigError {
    /// The URL is missing or not http(s).
    #[error("records.directus.url (LLP_URL): `{0}` is not an http:// or https:// URL of the LLP API")]
    Url(String),
    /// The collection name is not a plain name.
    #[error("records.directus.collection: `{0}` is not a collection name (letters, digits, `_`, `-`)")]
    Collection(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl DirectusSource {
    /// A source reading the LLP API at `config.url`.
    pub fn new(config: DirectusConfig) -> Result<Self, DirectusConfigError> {
        let base = config.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() <= "https://".len() {
            return Err(DirectusConfigError::Url(config.url.clone()));
        }
        if !is_plain_id(&config.collection) {
            return Err(DirectusConfigError::Collection(config.collection.clone()));
        }
        // kube-rs already brings rustls with ring; use it here too (installing twice is a no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_seconds.max(1)))
            .connect_timeout(Duration::from_secs(config.timeout_seconds.clamp(1, 5)))
            .user_agent(concat!("llp-k8s/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base,
            identities: TtlCache::new(Duration::from_secs(config.identity_cache_seconds)),
            records: TtlCache::new(Duration::from_secs(config.record_cache_seconds)),
            filling: std::sync::Mutex::default(),
            calls: LlpApiCalls::default(),
            config,
        })
    }

    /// Counts requests in `calls` (the service's `/metrics` registers it).
    pub fn counting(mut self, calls: LlpApiCalls) -> Self {
        self.calls = calls;
        self
    }

    fn count(&self, endpoint: &str, outcome: &Result<reqwest::Response, reqwest::Error>) {
        let outcome = match outcome {
            Ok(response) => response.status().as_u16().to_string(),
            Err(error) if error.is_timeout() => "timeout".to_owned(),
            Err(_) => "unreachable".to_owned(),
        };
        self.calls
            .get_or_create(&LlpApiLabels {
                endpoint: endpoint.to_owned(),
                outcome,
            })
            .inc();
    }

    /// GET `path` (counted as `endpoint`) with `token`; the body's `data` on 200, the mapped
    /// error otherwise.
    async fn get<T: serde::de::DeserializeOwned>(&self, endpoint: &str, path: &str, token: &str) -> Result<T, Failure> {
        let sent = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await;
        self.count(endpoint, &sent);
        let response = sent.map_err(Failure::transport)?;
        let status = response.status();
        if !status.is_success() {
            let message = response
                .json::<DirectusErrors>()
                .await
                .ok()
                .and_then(|body| body.errors.into_iter().next())
                .map(|e| e.message)
                .unwrap_or_default();
            return Err(Failure::Status(status, message));
        }
        let body: Data<T> = response.json().await.map_err(Failure::transport)?;
        Ok(body.data)
    }

    /// Reads record `id` with the session's token and remembers it under `question`.
    async fn read_record(&self, session: &Session, id: &str, question: &str) -> Result<Record, RecordError> {
        let path = format!("/items/{}/{id}?fields={RECORD_FIELDS}", self.config.collection);
        let record: Record =
            self.get("items", &path, session.token.expose())
                .await
                .map_err(|failure| match failure {
                    Failure::Status(StatusCode::UNAUTHORIZED, _) => RecordError::Unauthorized,
                    Failure::Status(StatusCode::FORBIDDEN, _) => RecordError::Forbidden(format!(
                        "the LLP API does not let you read deployment `{id}` (it does not exist, or it is not yours)"
                    )),
                    Failure::Status(StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST, _) => RecordError::NotFound,
                    other => other.into_error("/items"),
                })?;
        self.records.insert(question, record.clone(), Instant::now());
        Ok(record)
    }

    async fn who(&self, token: &Token) -> Result<Identity, RecordError> {
        let path = format!("/users/me?fields={USER_FIELDS}");
        let me: DirectusUser = self
            .get("users/me", &path, token.expose())
            .await
            .map_err(|failure| match failure {
                Failure::Status(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => RecordError::Unauthorized,
                other => other.into_error("/users/me"),
            })?;
        let roles = match &self.config.identity_token {
            Some(lookup) if !lookup.is_empty() => {
                let path = format!("/users/{}?fields={USER_FIELDS}", me.id);
                self.get::<DirectusUser>("users/{id}", &path, lookup)
                    .await
                    .map_err(|failure| failure.into_error("/users/{id} (with identity_token)"))?
            }
            _ => me.clone(),
        };
        Ok(identity(&me, &roles, &self.config.groups))
    }
}

impl RecordSource for DirectusSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn authenticate<'a>(&'a self, token: &'a Token) -> BoxFuture<'a, Result<Identity, RecordError>> {
        Box::pin(async move {
            if let Some(identity) = self.identities.get(token.expose(), Instant::now()) {
                return Ok(identity);
            }
            let identity = self.who(token).await?;
            self.identities.insert(token.expose(), identity.clone(), Instant::now());
            Ok(identity)
        })
    }

    fn record<'a>(
        &'a self,
        session: &'a Session,
        id: &'a str,
        purpose: Purpose,
    ) -> BoxFuture<'a, Result<Record, RecordError>> {
        Box::pin(async move {
            // Ids are UUIDs or integers; anything else cannot name a record, and must not be
            // pasted into a URL path (`../users`).
            if !is_plain_id(id) {
                return Err(RecordError::NotFound);
            }
            // The token is part of the question: one caller's answer never serves another.
            let question = format!("{}\n{id}", session.token.expose());
            if purpose == Purpose::Act {
                return self.read_record(session, id, &question).await;
            }
            if let Some(record) = self.records.get(&question, Instant::now()) {
                return Ok(record);
            }
            let filling = {
                let mut filling = self.filling.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                filling.entry(question.clone()).or_default().clone()
            };
            let _turn = filling.lock().await;
            // Whoever had the turn before may have filled the cache.
            if let Some(record) = self.records.get(&question, Instant::now()) {
                return Ok(record);
            }
            let read = self.read_record(session, id, &question).await;
            self.filling
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&question);
            read
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async move {
            let sent = self.http.get(format!("{}/server/ping", self.base)).send().await;
            self.count("server/ping", &sent);
            let response = sent.map_err(|e| Failure::transport(e).into_error("/server/ping"))?;
            match response.status() {
                status if status.is_success() => Ok(()),
                status => Err(Failure::Status(status, String::new()).into_error("/server/ping")),
            }
        })
    }
}

/// Letters, digits, `_` and `-`: what UUIDs, integers and collection names are made of.
fn is_plain_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// How a request to the LLP API failed.
enum Failure {
    /// It answered with this status (and message).
    Status(StatusCode, String),
    /// It did not answer in time.
    Timeout,
    /// It could not be reached, or its body was not what Directus sends.
    Transport(String),
}

impl Failure {
    fn transport(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            Failure::Timeout
        } else {
            Failure::Transport(error.to_string())
        }
    }

    /// The error for a failure nobody expects from `endpoint`; the detail goes to the log.
    fn into_error(self, endpoint: &str) -> RecordError {
        match self {
            Failure::Timeout => {
                tracing::warn!(endpoint, "the LLP API did not answer in time");
                RecordError::Timeout { source_name: NAME }
            }
            Failure::Status(StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE, message) => {
                tracing::warn!(endpoint, %message, "the LLP API is busy");
                RecordError::Unavailable {
                    source_name: NAME,
                    detail: message,
                }
            }
            Failure::Status(status, message) => {
                tracing::error!(endpoint, %status, %message, "the LLP API failed");
                RecordError::BadGateway {
                    source_name: NAME,
                    detail: format!("{status}: {message}"),
                }
            }
            Failure::Transport(detail) => {
                tracing::error!(endpoint, %detail, "the LLP API is unreachable");
                RecordError::BadGateway {
                    source_name: NAME,
                    detail,
                }
            }
        }
    }
}

/// `{"data": …}`, Directus's success body.
#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

/// `{"errors": [{"message": …}]}`, Directus's error body.
#[derive(Deserialize)]
struct DirectusErrors {
    errors: Vec<DirectusError>,
}

#[derive(Deserialize)]
struct DirectusError {
    #[serde(default)]
    message: String,
}

/// The parts of `directus_users` read here; any may be missing when the token cannot read it.
#[derive(Debug, Clone, Default, Deserialize)]
struct DirectusUser {
    id: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    role: Option<DirectusRole>,
    #[serde(default)]
    policies: Option<Vec<Access>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct DirectusRole {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    policies: Option<Vec<Access>>,
}

/// A row of `directus_access`: one policy given to a user or role.
#[derive(Debug, Clone, Default, Deserialize)]
struct Access {
    #[serde(default)]
    policy: Option<Policy>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Policy {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    admin_access: Option<bool>,
}

/// The identity of `me`, with groups mapped from the role and policies that `roles` shows
/// (the same user, maybe read with a token that sees more).
fn identity(me: &DirectusUser, roles: &DirectusUser, mapping: &BTreeMap<String, String>) -> Identity {
    let policies: Vec<&Policy> = roles
        .policies
        .iter()
        .flatten()
        .chain(roles.role.iter().flat_map(|r| r.policies.iter().flatten()))
        .filter_map(|access| access.policy.as_ref())
        .collect();
    let role_keys = roles.role.iter().flat_map(|r| [&r.id, &r.name]);
    let policy_keys = policies.iter().flat_map(|p| [&p.id, &p.name]);
    let groups: BTreeSet<String> = role_keys
        .chain(policy_keys)
        .flatten()
        .filter_map(|key| mapping.get(key).cloned())
        .collect();
    let full_name = [me.first_name.as_deref(), me.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let name = Some(full_name)
        .filter(|n| !n.is_empty())
        .or_else(|| me.email.clone())
        .unwrap_or_else(|| me.id.clone());
    Identity {
        id: me.id.clone(),
        name,
        groups: groups.into_iter().collect(),
        admin: policies.iter().any(|p| p.admin_access == Some(true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: serde_json::Value) -> DirectusUser {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn groups_come_from_role_and_policy_names_and_ids_through_the_mapping() {
        let mapping = BTreeMap::from([
            ("management".to_owned(), "management".to_owned()),
            ("gpu-policy-id".to_owned(), "gpu".to_owned()),
        ]);
        let me = user(serde_json::json!({
            "id": "u1", "first_name": "Carol", "last_name": "Smith",
            "role": {"id": "r1", "name": "management", "policies": [{"policy": {"id": "p0", "name": "Students"}}]},
            "policies": [{"policy": {"id": "gpu-policy-id", "name": "GPU", "admin_access": false}}]
        }));
        let identity = identity(&me, &me, &mapping);
        assert_eq!(identity.groups, ["gpu", "management"]);
        assert_eq!(identity.name, "Carol Smith");
        assert!(!identity.admin);
    }

    #[test]
    fn a_user_who_may_read_only_their_id_is_a_plain_user() {
        let me = user(serde_json::json!({"id": "u2"}));
        let mapping = BTreeMap::from([("management".to_owned(), "management".to_owned())]);
        let identity = identity(&me, &me, &mapping);
        assert_eq!(
            identity,
            Identity {
                id: "u2".into(),
                name: "u2".into(),
                groups: vec![],
                admin: false
            }
        );
    }

    #[test]
    fn admin_access_on_any_policy_makes_an_admin() {
        let me = user(serde_json::json!({
            "id": "u3", "email": "root@example.com",
            "role": {"name": "Administrator", "policies": [{"policy": {"name": "Administrator", "admin_access": true}}]}
        }));
        let identity = identity(&me, &me, &BTreeMap::new());
        assert!(identity.admin);
        assert_eq!(identity.name, "root@example.com");
    }

    #[test]
    fn ids_that_could_change_the_url_are_refused() {
        for id in ["../users/me", "a/b", "", "x?y", "%2e%2e", "a b"] {
            assert!(!is_plain_id(id), "{id}");
        }
        for id in ["42", "4624b9ef-65db-4a77-97e5-fe64ea82ee8a", "my_record"] {
            assert!(is_plain_id(id), "{id}");
        }
    }

    #[test]
    fn a_url_that_is_not_http_is_a_configuration_error() {
        for url in ["", "llp.example.org", "ftp://x", "https://"] {
            let config = DirectusConfig {
                url: url.into(),
                ..DirectusConfig::default()
            };
            assert!(DirectusSource::new(config).is_err(), "{url}");
        }
    }
}
