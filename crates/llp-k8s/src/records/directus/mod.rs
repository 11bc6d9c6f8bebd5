//! The `directus` record source: the real LLP API. Records and `/users/me` are read with the
//! caller's own token, so the LLP's permissions decide who may read which record; the service
//! needs no token of its own for that.
//!
//! Failures name "the LLP API": unreachable or a 5xx is 502, too slow is 504, rate-limited is
//! 503; a bad token is 401 and a record the LLP refuses is its 403 (Directus says the same for
//! a record that does not exist, so ids cannot be probed).

mod client;
mod record_reads;
mod reservations;
mod usage;
mod users;

pub use client::{EndpointLabels, LlpApiLabels, LlpApiMetrics};
pub use reservations::ReservationsConfig;

use super::single_flight::SingleFlight;
use super::{Identity, Purpose, RecordError, RecordSource, Session, Token};
use client::{Failure, LlpApi};
use futures::future::BoxFuture;
use llp_spec::Record;
use record_reads::RecordReads;
use reqwest::StatusCode;
use reservations::ReservationReads;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use users::{DirectusUser, USER_FIELDS, identity};

/// What errors call this source.
const NAME: &str = "the LLP API";

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
    pub identity_token: Option<Token>,
    /// Role or policy (by name or id) → group, e.g. `management = "management"`.
    pub groups: BTreeMap<String, String>,
    /// Optional token of the service itself, that may read every GPU reservation: the
    /// reconciler that stops GPU pods when a booking ends needs it, and `/kubernetes/capacity`
    /// counts every booking with it (without it, those the caller may read).
    pub service_token: Option<Token>,
    /// The LLP's GPU reservations (SPEC section 10).
    pub reservations: ReservationsConfig,
    /// The collection GPU usage is kept in (SPEC section 13), written with `service_token`.
    pub usage_collection: String,
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
            service_token: None,
            reservations: ReservationsConfig::default(),
            usage_collection: "gpu_usage".into(),
        }
    }
}

/// The LLP API as a record source.
pub struct DirectusSource {
    api: LlpApi,
    config: Arc<DirectusConfig>,
    /// Who holds a token. Every request needs it; without this a poll would cost the LLP
    /// two requests (`/users/me` and the record). Only id, name and groups lag by up to the
    /// TTL (a changed role changes limits late); access itself is decided by the record read.
    /// Single flight with refresh-ahead, so an identity expiring under load costs one read
    /// and makes no poll wait.
    identities: SingleFlight<Arc<Identity>>,
    /// Record reads, and the short cache of the ones made to look ([`record_reads`]).
    records: RecordReads,
    /// GPU reservation reads.
    reservations: ReservationReads,
    /// GPU usage, read and written with the service token.
    usage: usage::UsageItems,
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
    /// A name of the reservations collection or its fields is not a plain name.
    #[error("records.directus.reservations: `{0}` is not a collection or field name (letters, digits, `_`, `-`)")]
    ReservationName(String),
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
        if !is_plain_id(&config.usage_collection) {
            return Err(DirectusConfigError::Collection(config.usage_collection.clone()));
        }
        if let Some(bad) = config.reservations.names().into_iter().find(|n| !is_plain_id(n)) {
            return Err(DirectusConfigError::ReservationName(bad.to_owned()));
        }
        // kube-rs already brings rustls with ring; use it here too (installing twice is a no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_seconds.max(1)))
            .connect_timeout(Duration::from_secs(config.timeout_seconds.clamp(1, 5)))
            // Directus (Node.js) closes idle connections after 5 s; drop ours before that, so a
            // request rarely meets a connection the server is closing.
            .pool_idle_timeout(Duration::from_secs(4))
            .user_agent(concat!("llp-k8s/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let api = LlpApi {
            http,
            base: base.into(),
            metrics: LlpApiMetrics::default(),
        };
        Ok(Self {
            records: RecordReads::new(
                api.clone(),
                &config.collection,
                Duration::from_secs(config.record_cache_seconds),
            ),
            api,
            reservations: ReservationReads::new(config.reservations.clone()),
            usage: usage::UsageItems {
                collection: config.usage_collection.clone(),
            },
            identities: {
                let ttl = Duration::from_secs(config.identity_cache_seconds);
                SingleFlight::with_stale(ttl, ttl / 2)
            },
            config: Arc::new(config),
        })
    }

    /// The service token, or else `fallback`; without either, an error naming the setting and
    /// what the service cannot `do` without it.
    fn service_token<'a>(&'a self, fallback: Option<&'a Token>, what: &str) -> Result<&'a Token, RecordError> {
        self.config
            .service_token
            .as_ref()
            .filter(|t| !t.expose().is_empty())
            .or(fallback)
            .ok_or_else(|| RecordError::Unavailable {
                source_name: NAME,
                detail: format!(
                    "records.directus.service_token (LLP_SERVICE_TOKEN) is not set: the service cannot {what} on its own"
                ),
            })
    }

    /// Counts requests and cache answers in `metrics` (the service's `/metrics` registers them).
    pub fn counting(mut self, metrics: LlpApiMetrics) -> Self {
        self.identities.count_in(&metrics.lookups, "identities");
        self.records.count_in(metrics.clone());
        self.api.metrics = metrics;
        self
    }
}

/// Who holds `token`: `/users/me`, and the user's role and policies (read with
/// `identity_token` when configured), mapped to groups.
async fn who(api: &LlpApi, config: &DirectusConfig, token: &str) -> Result<Identity, RecordError> {
    let path = format!("/users/me?fields={USER_FIELDS}");
    let me: DirectusUser = api
        .get("users/me", &path, token)
        .await
        .map_err(|failure| match failure {
            Failure::Status(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => RecordError::Unauthorized,
            other => other.into_error("/users/me"),
        })?;
    let roles = match &config.identity_token {
        Some(lookup) if !lookup.expose().is_empty() => {
            let path = format!("/users/{}?fields={USER_FIELDS}", me.id);
            api.get::<DirectusUser>("users/{id}", &path, lookup.expose())
                .await
                .map_err(|failure| failure.into_error("/users/{id} (with identity_token)"))?
        }
        _ => me.clone(),
    };
    Ok(identity(&me, &roles, &config.groups))
}

impl RecordSource for DirectusSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn authenticate<'a>(&'a self, token: &'a Token) -> BoxFuture<'a, Result<Arc<Identity>, RecordError>> {
        Box::pin(async move {
            // Copied only when a read is made (most asks are answered by the cache).
            let read = || {
                let (api, config, token) = (self.api.clone(), self.config.clone(), token.expose().to_owned());
                async move { who(&api, &config, &token).await.map(Arc::new) }
            };
            self.identities.get(token.expose(), read).await
        })
    }

    fn record<'a>(
        &'a self,
        session: &'a Session,
        id: &'a str,
        purpose: Purpose,
    ) -> BoxFuture<'a, Result<Arc<Record>, RecordError>> {
        Box::pin(async move {
            // Ids are UUIDs or integers; anything else cannot name a record, and must not be
            // pasted into a URL path (`../users`).
            if !is_plain_id(id) {
                return Err(RecordError::NotFound);
            }
            match purpose {
                Purpose::Act => self.records.read(session.token.expose(), id).await,
                Purpose::Look => self.records.look(session.token.expose(), id).await,
            }
        })
    }

    fn reservations<'a>(
        &'a self,
        session: &'a Session,
        owner: &'a str,
        deployments: &'a [String],
        now: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Vec<llp_spec::reservations::Reservation>, RecordError>> {
        Box::pin(
            self.reservations
                .read(&self.api, session.token.expose(), Some(owner), deployments, now),
        )
    }

    fn bookings_between<'a>(
        &'a self,
        session: &'a Session,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Vec<llp_spec::reservations::Reservation>, RecordError>> {
        Box::pin(async move {
            let bookings = self
                .reservations
                .read_between(&self.api, session.token.expose(), from, to)
                .await?;
            // Whatever else the LLP lets them read, a user's report shows their own bookings.
            let identity = &session.identity;
            Ok(bookings
                .into_iter()
                .filter(|b| identity.admin || b.users.contains(&identity.id))
                .collect())
        })
    }

    fn open_reservations<'a>(
        &'a self,
        fallback: Option<&'a Token>,
        now: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Vec<llp_spec::reservations::Reservation>, RecordError>> {
        Box::pin(async move {
            let token = self.service_token(fallback, "read GPU reservations")?;
            self.reservations.read(&self.api, token.expose(), None, &[], now).await
        })
    }

    fn record_ids<'a>(&'a self, fallback: Option<&'a Token>) -> BoxFuture<'a, Result<Vec<String>, RecordError>> {
        Box::pin(async move {
            let token = self.service_token(fallback, "tell which deployments still have a record")?;
            self.records.ids(token.expose()).await
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(self.api.ping())
    }
}

/// Letters, digits, `_` and `-`: what UUIDs, integers and collection names are made of.
fn is_plain_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

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
