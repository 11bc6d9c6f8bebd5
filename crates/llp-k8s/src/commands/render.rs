//! `llp-k8s render RECORD.json [--namespace NS] [--owner USER]`.

use super::{Outcome, limits_for, parse_record, print_out, read_input, report_invalid};
use llp_spec::{Identity, RenderConfig, render, validate_record};
use std::path::Path;

pub fn run(
    path: &Path,
    namespace: Option<String>,
    owner: Option<String>,
    groups: &[String],
) -> anyhow::Result<Outcome> {
    let Some(limits) = limits_for(groups) else {
        return Ok(Outcome::Usage);
    };
    let record = match parse_record(&read_input(path)?) {
        Ok(record) => record,
        Err(problem) => return report_invalid(&[problem]),
    };
    let deployment = match validate_record(&record, &limits) {
        Ok(deployment) => deployment,
        Err(problems) => return report_invalid(&problems),
    };
    let Some(id) = record.id.clone() else {
        return report_invalid(&[llp_spec::FieldError::new(
            "id",
            llp_spec::Rule::Required,
            "is required: the record's `id` names its objects.",
        )]);
    };
    let Some(owner) = owner.or(record.user_created.clone()) else {
        eprintln!("llp-k8s: the record has no `user_created`: pass --owner USER");
        return Ok(Outcome::Usage);
    };
    let mut config = RenderConfig::default();
    if let Some(namespace) = namespace {
        config.namespace = namespace;
    }
    let objects = render(&deployment, Identity { id: &id, owner: &owner }, &config);
    print_out(to_yaml_documents(&objects)?.trim_end())?;
    Ok(Outcome::Success)
}

/// The objects as one YAML stream: claims, StatefulSet or Job, Services, Ingress, NetworkPolicy.
fn to_yaml_documents(objects: &llp_spec::Objects) -> anyhow::Result<String> {
    let llp_spec::Objects {
        workload,
        claims,
        services,
        ingress,
        shared_claims,
        network_policy,
    } = objects;
    let mut docs = Vec::new();
    for claim in shared_claims.iter().chain(claims) {
        docs.push(serde_saphyr::to_string(claim)?);
    }
    docs.push(match workload {
        llp_spec::Workload::StatefulSet(sts) => serde_saphyr::to_string(sts)?,
        llp_spec::Workload::Job(job) => serde_saphyr::to_string(job)?,
    });
    for service in services {
        docs.push(serde_saphyr::to_string(service)?);
    }
    if let Some(ingress) = ingress {
        docs.push(serde_saphyr::to_string(ingress)?);
    }
    if let Some(policy) = network_policy {
        docs.push(serde_saphyr::to_string(policy)?);
    }
    Ok(docs.iter().map(|d| format!("---\n{d}")).collect())
}
