//! The HTTP side of the LLP API: one GET, counted by endpoint and outcome, its body's `data`
//! or a [`Failure`] that maps to the error a caller gets (naming "the LLP API").

use super::NAME;
use crate::records::RecordError;
use reqwest::StatusCode;
use serde::Deserialize;

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

/// A client of the LLP API at one base URL. Clones share the connection pool and counters.
#[derive(Clone)]
pub(super) struct LlpApi {
    pub(super) http: reqwest::Client,
    pub(super) base: std::sync::Arc<str>,
    pub(super) calls: LlpApiCalls,
}

impl LlpApi {
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

    /// GET `path` (counted as `endpoint`) with `token`; the body's `data` on 200, the failure
    /// otherwise.
    pub(super) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        path: &str,
        token: &str,
    ) -> Result<T, Failure> {
        let url = format!("{}{path}", self.base);
        let mut sent = self.http.get(&url).bearer_auth(token).send().await;
        self.count(endpoint, &sent);
        // A kept-alive connection the LLP API closed just as it was reused fails without the
        // request having been served; a GET is safe to send once more.
        if matches!(&sent, Err(e) if !e.is_timeout()) {
            sent = self.http.get(&url).bearer_auth(token).send().await;
            self.count(endpoint, &sent);
        }
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

    /// `GET /server/ping`, without a token.
    pub(super) async fn ping(&self) -> Result<(), RecordError> {
        let sent = self.http.get(format!("{}/server/ping", self.base)).send().await;
        self.count("server/ping", &sent);
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
