//! `llp-k8s validate FILE [--record RECORD.json] [--group G]`.

use super::{Outcome, limits_for, parse_record, print_out, read_input, report_invalid};
use llp_spec::parse::DATA;
use llp_spec::{FieldError, Record, validate_record};
use std::path::Path;

pub fn run(file: &Path, record: Option<&Path>, groups: &[String]) -> anyhow::Result<Outcome> {
    let Some(limits) = limits_for(groups) else {
        return Ok(Outcome::Usage);
    };
    let yaml = read_input(file)?;
    let record = match record {
        Some(path) => match parse_record(&read_input(path)?) {
            Ok(record) => record,
            Err(problem) => return report_invalid(&[problem]),
        },
        None => Record::default(),
    };
    // The YAML comes from FILE; the record contributes only its `exposed_*` fields.
    let record = Record {
        data: Some(yaml),
        ..record
    };
    match validate_record(&record, &limits) {
        Ok(deployment) => {
            print_out(&serde_json::to_string_pretty(&deployment)?)?;
            Ok(Outcome::Success)
        }
        Err(problems) => report_invalid(&in_file(problems, file)),
    }
}

/// Problems of the YAML as a whole are the file's, not a record field's: `app.yaml: is not
/// valid YAML: …` rather than `data: …`.
fn in_file(mut problems: Vec<FieldError>, file: &Path) -> Vec<FieldError> {
    let name = if file == Path::new("-") {
        "stdin".to_owned()
    } else {
        file.display().to_string()
    };
    for problem in problems.iter_mut().filter(|p| p.field == DATA) {
        problem.field.clone_from(&name);
    }
    problems
}
