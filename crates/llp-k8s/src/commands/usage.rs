//! `llp-k8s usage [--from T] [--to T] [--by KEY] [--csv] [--url URL]`: GPU usage as a running
//! service reports it to the holder of `$LLP_TOKEN` (their own; an admin's: everyone's).

use super::{Outcome, print_out, remote};

pub fn run(
    window: (Option<String>, Option<String>),
    by: Option<String>,
    csv: bool,
    url: Option<String>,
) -> anyhow::Result<Outcome> {
    let Some((url, token)) = remote::service(url) else {
        return Ok(Outcome::Usage);
    };
    let mut query = reqwest::Url::parse("http://llp/kubernetes/usage")?;
    {
        let mut pairs = query.query_pairs_mut();
        for (key, value) in [("from", &window.0), ("to", &window.1), ("by", &by)] {
            if let Some(value) = value {
                pairs.append_pair(key, value);
            }
        }
    }
    let path = format!("{}?{}", query.path(), query.query().unwrap_or_default());
    let accept = if csv { "text/csv" } else { "application/json" };
    let (status, body) = remote::ask(reqwest::Method::GET, (&url, &path), &token, None, Some(accept))?;
    if status.is_success() && csv {
        print_out(body.trim_end())?;
        return Ok(Outcome::Success);
    }
    let answer: serde_json::Value = serde_json::from_str(&body)
        .map_err(|_| anyhow::anyhow!("the service at {url} answered {status} without JSON"))?;
    print_out(&serde_json::to_string_pretty(&answer)?)?;
    if status.is_success() {
        return Ok(Outcome::Success);
    }
    let message = answer["errors"][0]["message"].as_str().unwrap_or("no message");
    if status.is_client_error() {
        eprintln!("llp-k8s: the service refused ({status}): {message}");
        return Ok(Outcome::Invalid);
    }
    anyhow::bail!("the service at {url} failed ({status}): {message}")
}
