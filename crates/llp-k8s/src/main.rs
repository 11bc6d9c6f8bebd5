//! `llp-k8s`: self-service Kubernetes deployments for the LLP. See `llp-k8s --help`.
#![forbid(unsafe_code)]

mod cli;
mod commands;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a status poll allocates a few dozen small objects, and
/// glibc's malloc and free took about a fifth of its CPU (perf, docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Structured logs on stderr (stdout carries command output); LLP_LOG sets the filter.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LLP_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    match commands::run(cli.command) {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => {
            eprintln!("llp-k8s: {error:#}");
            ExitCode::from(commands::EXIT_FAILURE)
        }
    }
}
