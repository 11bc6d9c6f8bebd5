//! The subcommands. Each returns an [`Outcome`]; failures to do the work at all (a file
//! that cannot be read) are errors and exit with [`EXIT_FAILURE`].

mod courses;
#[cfg(feature = "simulator")]
mod demo;
mod preview;
mod remote;
mod render;
mod reservations;
mod serve;
#[cfg(feature = "simulator")]
mod sim;
mod usage;
mod users;
mod validate;

use crate::cli::Command;
use anyhow::Context;
use llp_spec::{ErrorBody, FieldError};
use std::path::Path;
use std::process::ExitCode;

/// Exit code of a failure that is not the input's fault.
pub const EXIT_FAILURE: u8 = 3;

/// How a command ended.
pub enum Outcome {
    /// Done; exit 0.
    Success,
    /// The input was invalid; exit 1.
    Invalid,
    /// The command line lacks something; exit 2 (as clap does for its own usage errors).
    Usage,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Invalid => ExitCode::from(1),
            Outcome::Usage => ExitCode::from(2),
        }
    }
}

/// Runs one subcommand.
pub fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        #[cfg(feature = "simulator")]
        Command::Demo { listen, db } => demo::run(listen, db),
        Command::Serve { config } => serve::run(config.as_deref()),
        Command::Validate { file, record, groups } => validate::run(&file, record.as_deref(), &groups),
        Command::Render {
            record,
            namespace,
            owner,
            groups,
        } => render::run(&record, namespace, owner, &groups),
        #[cfg(feature = "simulator")]
        Command::Sim {
            listen,
            kubeconfig,
            nodes,
            gpus,
        } => sim::run(listen, &kubeconfig, nodes, gpus.as_deref()),
        Command::Preview { record, id, url } => preview::run(&record, id, url),
        Command::Usage { from, to, by, csv, url } => usage::run((from, to), by, csv, url),
        Command::Users { command } => users::run(command),
        Command::Reservations { command } => reservations::run(command),
        Command::Courses { command } => courses::run(command),
        Command::Schema => {
            print_out(&serde_json::to_string_pretty(&llp_spec::deployment_schema())?)?;
            Ok(Outcome::Success)
        }
    }
}

/// Writes `text` and a newline to standard output. A reader that went away (`llp-k8s schema |
/// head`) is not an error: the output was not wanted any more.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The limits for `groups`, every one of which must be a group of the table (a misspelt group
/// would silently validate with everybody's limits); `None`, said on stderr, otherwise.
fn limits_for(groups: &[String]) -> Option<llp_spec::Limits> {
    let table = llp_spec::LimitsTable::default();
    if let Some(unknown) = groups.iter().find(|g| !table.groups.contains_key(g.as_str())) {
        let known: Vec<&str> = table.groups.keys().map(String::as_str).collect();
        eprintln!(
            "llp-k8s: --group: no group `{unknown}` has limits of its own; known groups: {}",
            known.join(", ")
        );
        return None;
    }
    Some(table.for_groups(groups))
}

/// Reads a file, or standard input for `-`.
fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        return std::io::read_to_string(std::io::stdin()).context("cannot read standard input");
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Prints the error body on stdout and a one-line summary on stderr.
fn report_invalid(problems: &[FieldError]) -> anyhow::Result<Outcome> {
    print_out(&serde_json::to_string_pretty(&ErrorBody::validation(problems))?)?;
    let first = problems.first().map(ToString::to_string).unwrap_or_default();
    eprintln!(
        "llp-k8s: invalid deployment ({} problem(s)); first: {first}",
        problems.len()
    );
    Ok(Outcome::Invalid)
}

/// Reads a record (JSON); an unreadable record is invalid input, reported on `record`.
fn parse_record(text: &str) -> Result<llp_spec::Record, FieldError> {
    serde_json::from_str(text).map_err(|e| {
        FieldError::new(
            "record",
            llp_spec::Rule::Syntax,
            format!("is not a valid deployment record (JSON object): {e}."),
        )
    })
}

/// Starts the reconcilers the service's settings switch on (GPU bookings, orphans), each
/// elected through its own Lease; they end, giving their lease up, when the service stops.
fn spawn_reconcilers(state: &llp_k8s::http::AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let reservations = llp_k8s::reservations::spawn_reconciler(
        state.records.clone(),
        state.cluster.as_ref(),
        &state.reservations,
        state.shutdown.clone(),
    );
    let orphans = llp_k8s::orphans::reconciler::spawn(
        state.records.clone(),
        state.cluster.as_ref(),
        &state.orphans,
        state.shutdown.clone(),
    );
    let accountant = llp_k8s::usage::accountant::spawn(
        state.usage.store.clone(),
        state.cluster.as_ref(),
        state.metrics.gpu_seconds(),
        state.shutdown.clone(),
    );
    [reservations, orphans, accountant].into_iter().flatten().collect()
}
