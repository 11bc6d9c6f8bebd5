//! `llp-k8s preview RECORD.json [--id ID] [--url URL]`: the service's dry run of a deploy,
//! asked with the caller's token (`$LLP_TOKEN`, kept off the command line where `ps` shows it).

use super::{Outcome, parse_record, print_out, read_input, report_invalid};
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

/// How long the service may take to answer: a preview dry-runs every object.
const DEADLINE: Duration = Duration::from_secs(90);

pub fn run(path: &Path, id: Option<String>, url: Option<String>) -> anyhow::Result<Outcome> {
    let text = read_input(path)?;
    let record = match parse_record(&text) {
        Ok(record) => record,
        Err(problem) => return report_invalid(&[problem]),
    };
    let Some(id) = id.or_else(|| record.id.as_ref().map(ToString::to_string)) else {
        eprintln!("llp-k8s: the record has no `id`: pass --id ID (the stored record to try it as)");
        return Ok(Outcome::Usage);
    };
    let Some(url) = url.or_else(|| std::env::var("LLP_URL").ok()).filter(|u| !u.is_empty()) else {
        eprintln!("llp-k8s: no service: pass --url URL or set LLP_URL");
        return Ok(Outcome::Usage);
    };
    let Some(token) = std::env::var("LLP_TOKEN").ok().filter(|t| !t.is_empty()) else {
        eprintln!("llp-k8s: no token: set LLP_TOKEN to your LLP access token");
        return Ok(Outcome::Usage);
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, body) = runtime.block_on(ask(&url, &id, &token, text))?;
    let answer: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("the service at {url} answered {status} without JSON"))?;
    print_out(&serde_json::to_string_pretty(&answer)?)?;
    if status.is_success() {
        return Ok(Outcome::Success);
    }
    let message = answer["errors"][0]["message"].as_str().unwrap_or("no message");
    if status.is_client_error() {
        eprintln!("llp-k8s: the deploy would be refused ({status}): {message}");
        return Ok(Outcome::Invalid);
    }
    anyhow::bail!("the service at {url} failed ({status}): {message}")
}

/// `PUT {url}/kubernetes/deployments/{id}?dryRun=true` with the record; the status and body.
async fn ask(url: &str, id: &str, token: &str, record: String) -> anyhow::Result<(reqwest::StatusCode, String)> {
    // reqwest is built without a TLS provider of its own: ring, as everywhere in the service.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().timeout(DEADLINE).build()?;
    let target = format!("{}/kubernetes/deployments/{id}?dryRun=true", url.trim_end_matches('/'));
    let response = client
        .put(&target)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(record)
        .send()
        .await
        .with_context(|| format!("the service at {url} did not answer"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("the service at {url} broke off its answer"))?;
    Ok((status, body))
}
