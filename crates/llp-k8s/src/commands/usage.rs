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
    remote::answered(&url, status, &body, "the service refused")
}
