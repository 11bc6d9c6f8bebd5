//! `llp-k8s preview RECORD.json [--id ID] [--url URL]`: the service's dry run of a deploy,
//! asked with the caller's token (`$LLP_TOKEN`, kept off the command line where `ps` shows it).

use super::{Outcome, parse_record, read_input, remote, report_invalid};
use std::path::Path;

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
    let Some((url, token)) = remote::service(url) else {
        return Ok(Outcome::Usage);
    };
    let path = format!("/kubernetes/deployments/{id}?dryRun=true");
    let (status, body) = remote::ask(reqwest::Method::PUT, (&url, &path), &token, Some(text), None)?;
    remote::answered(&url, status, &body, "the deploy would be refused")
}
