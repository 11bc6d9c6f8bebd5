//! The HTTP side of the LLP API: one GET, counted and timed by endpoint and outcome, its body's
//! `data` or a [`Failure`] that maps to the error a caller gets (naming "the LLP API").

use super::NAME;
use crate::records::RecordError;
use crate::records::single_flight::Lookups;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use reqwest::StatusCode;
use serde::Deserialize;
use std::time::Instant;

/// Labels of one request to the LLP API.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct LlpApiLabels {
    /// `users/me`, `users/{id}`, `items`, `server/ping`.
    pub endpoint: String,
    /// The HTTP status, `timeout` or `unreachable`.
    pub outcome: String,
}

/// Labels of the time requests to one endpoint took.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct EndpointLabels {
    /// `users/me`, `users/{id}`, `items`, `server/ping`.
    pub endpoint: String,
}

/// The LLP API's metrics, for `/metrics`: requests by endpoint and outcome, how long they
/// took to be answered, and how the cached reads were answered (from the cache or not).
#[derive(Clone)]
pub struct LlpApiMetrics {
    /// Requests by endpoint and outcome.
    pub requests: Family<LlpApiLabels, Counter>,
    /// Seconds until the answer's headers, by endpoint.
    pub durations: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    /// How asks of the identity and record caches were answered.
    pub lookups: Lookups,
}

impl Default for LlpApiMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(|| {
                Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0])
            }),
            lookups: Lookups::default(),
        }
    }
}

/// `response` if it succeeded; else its status and the first message of its Directus error body.
async fn succeeded(response: reqwest::Response) -> Result<reqwest::Response, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let message = response
        .json::<DirectusErrors>()
        .await
        .ok()
        .and_then(|body| body.errors.into_iter().next())
        .map(|e| e.message)
        .unwrap_or_default();
    Err(Failure::Status(status, message))
}

/// A client of the LLP API at one base URL. Clones share the connection pool and metrics.
#[derive(Clone)]
pub(super) struct LlpApi {
    pub(super) http: reqwest::Client,
    pub(super) base: std::sync::Arc<str>,
    pub(super) metrics: LlpApiMetrics,
}

impl LlpApi {
    fn count(&self, endpoint: &str, outcome: &Result<reqwest::Response, reqwest::Error>, started: Instant) {
        let outcome = match outcome {
            Ok(response) => response.status().as_u16().to_string(),
            Err(error) if error.is_timeout() => "timeout".to_owned(),
            Err(_) => "unreachable".to_owned(),
        };
        self.metrics
            .requests
            .get_or_create(&LlpApiLabels {
                endpoint: endpoint.to_owned(),
                outcome,
            })
            .inc();
        self.metrics
            .durations
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// GET `path` (counted as `endpoint`) with `token`; the body's `data` on 200, the failure
    /// otherwise.
    pub(super) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        path: &str,
        token: &str,
    ) -> Result<T, Failure> {
        let url = format!("{}{path}", self.base);
        let started = Instant::now();
        let mut sent = self.http.get(&url).bearer_auth(token).send().await;
        self.count(endpoint, &sent, started);
        // A kept-alive connection the LLP API closed just as it was reused fails without the
        // request having been served; a GET is safe to send once more.
        if matches!(&sent, Err(e) if !e.is_timeout()) {
            let started = Instant::now();
            sent = self.http.get(&url).bearer_auth(token).send().await;
            self.count(endpoint, &sent, started);
        }
        let response = succeeded(sent.map_err(Failure::transport)?).await?;
        let body: Data<T> = response.json().await.map_err(Failure::transport)?;
        Ok(body.data)
    }

    /// `method` `path` with a JSON `body` (counted as `endpoint`) with `token`; the body's
    /// `data` (null for 204) on success, the failure otherwise. Sent once: a write is not
    /// repeated on its own.
    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        (endpoint, path): (&str, &str),
        token: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        let url = format!("{}{path}", self.base);
        let started = Instant::now();
        let sent = self
            .http
            .request(method, &url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await;
        self.count(endpoint, &sent, started);
        let response = succeeded(sent.map_err(Failure::transport)?).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(serde_json::Value::Null);
        }
        let body: Data<serde_json::Value> = response.json().await.map_err(Failure::transport)?;
        Ok(body.data)
    }

    /// `GET /server/ping`, without a token.
    pub(super) async fn ping(&self) -> Result<(), RecordError> {
        let started = Instant::now();
        let sent = self.http.get(format!("{}/server/ping", self.base)).send().await;
        self.count("server/ping", &sent, started);
        let response = sent.map_err(|e| Failure::transport(e).into_error("/server/ping"))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(Failure::Status(status, String::new()).into_error("/server/ping")),
        }
    }
}

/// How a request to the LLP API failed.
pub(super) enum Failure {
    /// It answered with this status (and message).
    Status(StatusCode, String),
    /// It did not answer in time.
    Timeout,
    /// It could not be reached, or its body was not what Directus sends.
    Transport(String),
}

impl Failure {
    pub(super) fn transport(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            Failure::Timeout
        } else {
            Failure::Transport(error.to_string())
        }
    }

    /// The error for a failure nobody expects from `endpoint`; the detail goes to the log.
    pub(super) fn into_error(self, endpoint: &str) -> RecordError {
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
