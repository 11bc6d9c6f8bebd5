//! `llp-k8s`: self-service Kubernetes deployments for the LLP. See `llp-k8s --help`.
#![forbid(unsafe_code)]

mod cli;
mod commands;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli.command) {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => {
            eprintln!("llp-k8s: {error:#}");
            ExitCode::from(commands::EXIT_FAILURE)
        }
    }
}
