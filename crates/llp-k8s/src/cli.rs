//! The command line: subcommands and their flags.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Self-service Kubernetes deployments for the LLP.
#[derive(Debug, Parser)]
#[command(name = "llp-k8s", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: a simulated cluster, embedded records and the service.
    /// Prints `export` lines (URL and three users' tokens) first, then curl lines to try.
    #[cfg(feature = "simulator")]
    Demo {
        /// Address of the service.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Keep the records in this SQLite file instead of a fresh temporary one.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// Run the service against the configured cluster (kubeconfig or in-cluster) and record source.
    Serve {
        /// TOML configuration (see config.example.toml); `LLP_…` variables override it.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate a deployment YAML: prints the normalised spec as JSON (exit 0), or the
    /// Directus-shaped error body listing every problem (exit 1).
    Validate {
        /// The deployment YAML (the record's `data`); `-` reads standard input.
        file: PathBuf,
        /// A record (JSON) whose `exposed_*` fields are checked against the YAML.
        #[arg(long, value_name = "RECORD.json")]
        record: Option<PathBuf>,
        /// Validate with the limits of this group (repeatable).
        #[arg(long = "group", value_name = "G")]
        groups: Vec<String>,
    },
    /// Print the Kubernetes objects a deploy of RECORD.json would apply, as multi-document YAML.
    Render {
        /// A deployment record (JSON, `data` holding the YAML as a string); `-` reads stdin.
        #[arg(value_name = "RECORD.json")]
        record: PathBuf,
        /// Namespace of the objects (default `services`).
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
        /// Owner's user id for the labels (default: the record's `user_created`).
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
        /// Validate with the limits of this group (repeatable).
        #[arg(long = "group", value_name = "G")]
        groups: Vec<String>,
    },
    /// Ask a running service what a deploy of RECORD.json would do, writing nothing (`PUT
    /// /kubernetes/deployments/{id}?dryRun=true` with the record): prints the checks' answer,
    /// the objects and where GPU pods could start (exit 0), or the refusal (exit 1).
    Preview {
        /// A deployment record (JSON: `id`, `data`, `exposed_*`); `-` reads stdin. Its `data`
        /// and `exposed_*` are tried in place of the stored record `id`'s.
        #[arg(value_name = "RECORD.json")]
        record: PathBuf,
        /// The stored record to try it as (default: the file's `id`).
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// The service's base URL (default: `$LLP_URL`).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// GPU usage as a running service reports it to you (`$LLP_TOKEN`; an admin: everyone's):
    /// GPU-seconds by user, deployment, profile or booking, as JSON or CSV.
    Usage {
        /// Start of the window (RFC 3339 or a date; default 30 days before `--to`).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// End of the window (default now).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// `user` (default), `deployment`, `profile` or `booking`.
        #[arg(long, value_name = "KEY")]
        by: Option<String>,
        /// CSV instead of JSON.
        #[arg(long)]
        csv: bool,
        /// The service's base URL (default: `$LLP_URL`).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Print the JSON Schema of the deployment YAML.
    Schema,
    /// Manage the users of the embedded record source.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Book GPUs in the embedded record source (SPEC section 10).
    Reservations {
        #[command(subcommand)]
        command: ReservationsCommand,
    },
    /// Courses of the embedded record source, whose people may use the course's GPU bookings.
    Courses {
        #[command(subcommand)]
        command: CoursesCommand,
    },
    /// Run the Kubernetes API simulator alone and write a kubeconfig for kubectl.
    #[cfg(feature = "simulator")]
    Sim {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: std::net::SocketAddr,
        /// Where to write the kubeconfig.
        #[arg(long, value_name = "PATH")]
        kubeconfig: PathBuf,
        /// Number of worker nodes (default: three workers with different GPUs).
        #[arg(long, value_name = "N")]
        nodes: Option<u32>,
        /// GPUs of each worker, e.g. `nvidia.com/gpu=2,nvidia.com/mig-1g.10gb=7`.
        #[arg(long, value_name = "SPEC")]
        gpus: Option<String>,
    },
}

/// `llp-k8s users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user and print its token (shown this once).
    Add {
        /// Display name.
        name: String,
        /// A group the user belongs to (repeatable); groups may have larger limits.
        #[arg(long = "group", value_name = "G")]
        groups: Vec<String>,
        /// The user may act on every deployment.
        #[arg(long)]
        admin: bool,
        /// The embedded database.
        #[arg(long, value_name = "PATH", default_value = "llp-k8s.sqlite")]
        db: PathBuf,
    },
}

/// `llp-k8s reservations …`.
#[derive(Debug, Subcommand)]
pub enum ReservationsCommand {
    /// Book GPUs for users (and optionally one deployment) for a time window.
    Add {
        /// Who it is for, by name or id (repeatable).
        #[arg(long = "user", value_name = "USER", required_unless_present = "course")]
        users: Vec<String>,
        /// The course it is for, by name or id: its collaborators and members may use it.
        #[arg(long, value_name = "COURSE")]
        course: Option<String>,
        /// Profile slugs, one per GPU: `gpu-l`, `gpu-m`, `gpu-s`, `gpu-xs` (comma list).
        #[arg(long, value_name = "SLUGS", value_delimiter = ',', required = true)]
        gpus: Vec<String>,
        /// Start (RFC 3339); default: now.
        #[arg(long, value_name = "TIME")]
        start: Option<String>,
        /// End (RFC 3339), exclusive.
        #[arg(long, value_name = "TIME")]
        end: String,
        /// The deployment record it is for; default: any deployment of its users.
        #[arg(long, value_name = "ID")]
        deployment: Option<String>,
        /// The embedded database.
        #[arg(long, value_name = "PATH", default_value = "llp-k8s.sqlite")]
        db: PathBuf,
    },
    /// List every booking.
    List {
        /// The embedded database.
        #[arg(long, value_name = "PATH", default_value = "llp-k8s.sqlite")]
        db: PathBuf,
    },
    /// Cancel a booking.
    Remove {
        /// The booking's id.
        id: String,
        /// The embedded database.
        #[arg(long, value_name = "PATH", default_value = "llp-k8s.sqlite")]
        db: PathBuf,
    },
}

/// `llp-k8s courses …`.
#[derive(Debug, Subcommand)]
pub enum CoursesCommand {
    /// Create a course; prints its id.
    Add {
        /// Its name (unique).
        name: String,
        /// The embedded database.
        #[arg(long, value_name = "PATH", default_value = "llp-k8s.sqlite")]
        db: PathBuf,
    },
    /// Add people to a course (by name or id) and list its people.
    Members {
        /// The course, by name or id.
        course: String,
        /// Who takes it (repeatable).
        #[arg(long = "member", value_name = "USER")]
        members: Vec<String>,
        /// Who teaches it (repeatable).
        #[arg(long = "collaborator", value_name = "USER")]
        collaborators: Vec<String>,
        /// The embedded database.
        #[arg(long, value_name = "PATH", default_value = "llp-k8s.sqlite")]
        db: PathBuf,
    },
}
