//! Asking a running service from the command line: its URL (`--url` or `$LLP_URL`) and the
//! caller's token (`$LLP_TOKEN`, kept off the command line where `ps` shows it).

use anyhow::Context;
use std::time::Duration;

/// How long the service may take to answer (a preview dry-runs every object).
const DEADLINE: Duration = Duration::from_secs(90);

/// The service's URL and the caller's token; `None`, said on stderr, when one is missing.
pub fn service(url: Option<String>) -> Option<(String, String)> {
    let Some(url) = url.or_else(|| std::env::var("LLP_URL").ok()).filter(|u| !u.is_empty()) else {
        eprintln!("llp-k8s: no service: pass --url URL or set LLP_URL");
        return None;
    };
    let Some(token) = std::env::var("LLP_TOKEN").ok().filter(|t| !t.is_empty()) else {
        eprintln!("llp-k8s: no token: set LLP_TOKEN to your LLP access token");
        return None;
    };
    Some((url, token))
}

/// `method` `url``path` with `token`, a JSON `body` and an `accept`ed type if given; the
/// status and body.
pub fn ask(
    method: reqwest::Method,
    (url, path): (&str, &str),
    token: &str,
    body: Option<String>,
    accept: Option<&str>,
) -> anyhow::Result<(reqwest::StatusCode, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        // reqwest is built without a TLS provider of its own: ring, as everywhere in the service.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().timeout(DEADLINE).build()?;
        let mut request = client
            .request(method, format!("{}{path}", url.trim_end_matches('/')))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        if let Some(accept) = accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("the service at {url} did not answer"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("the service at {url} broke off its answer"))?;
        Ok((status, body))
    })
}

/// The service's JSON answer printed; its outcome: success, a refusal (exit 1, its message on
/// stderr), or a failure of the service (an error naming it).
pub fn answered(url: &str, status: reqwest::StatusCode, body: &str, refused: &str) -> anyhow::Result<super::Outcome> {
    let answer: serde_json::Value =
        serde_json::from_str(body).with_context(|| format!("the service at {url} answered {status} without JSON"))?;
    super::print_out(&serde_json::to_string_pretty(&answer)?)?;
    if status.is_success() {
        return Ok(super::Outcome::Success);
    }
    let message = answer["errors"][0]["message"].as_str().unwrap_or("no message");
    if status.is_client_error() {
        eprintln!("llp-k8s: {refused} ({status}): {message}");
        return Ok(super::Outcome::Invalid);
    }
    anyhow::bail!("the service at {url} failed ({status}): {message}")
}
