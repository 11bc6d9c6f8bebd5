//! The deployment operations: what a user's request does to the cluster, below the HTTP
//! edge. Each takes the parts it needs ([`Operations`]), decides every refusal it can before
//! its first write, and answers its own [`Error`]. The routes authenticate, parse, call one
//! operation and map its error; the reconcilers use the same removal and admission.

pub mod actions;
mod admission;
pub mod data;
pub mod deploy;
mod error;
pub mod parsing;
mod target;
pub mod terminal;

pub use admission::Change;
pub use error::Error;
pub use target::Target;

use crate::cluster::Cluster;
use crate::records::RecordSource;
use crate::reservations::ReservationPolicy;
use llp_spec::{LimitsTable, RenderConfig};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;
use std::time::Instant;

/// What the operations act with, borrowed for one request (or one reconciler round).
#[derive(Clone, Copy)]
pub struct Operations<'a> {
    /// Who callers are, which records they may read, and the GPU bookings.
    pub records: &'a dyn RecordSource,
    /// The cluster, when one is configured (the records answer without one).
    pub cluster: Option<&'a Cluster>,
    /// How deployments are rendered.
    pub render: &'a RenderConfig,
    /// Limits per group.
    pub limits: &'a LimitsTable,
    /// One write to a deployment at a time.
    pub locks: &'a Locks,
    /// Whether GPU bookings are enforced, and the clock they are judged by.
    pub reservations: &'a ReservationPolicy,
    /// How long each step of a deploy takes.
    pub steps: &'a DeploySteps,
}

impl<'a> Operations<'a> {
    /// The cluster, or the error that says there is none.
    pub fn cluster(&self) -> Result<&'a Cluster, Error> {
        self.cluster.ok_or(Error::Unavailable {
            dependency: "the cluster",
        })
    }
}

/// Per-deployment locks: two concurrent deploys of one record must not interleave their
/// writes. (Hostnames are claimed through the API server instead, which holds across replicas.)
#[derive(Default)]
pub struct Locks {
    deployments: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Locks {
    /// The lock of deployment `id`.
    pub fn deployment(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .deployments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(id.to_owned()).or_default().clone()
    }
}

/// Labels of one step of a deploy.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// `record` (read, validate, render), `admission`, `apply`, `observe` (until the watch
    /// cache has it).
    pub step: &'static str,
}

/// Seconds each step of a deploy took (a histogram the metrics registry exports).
#[derive(Clone)]
pub struct DeploySteps(pub Family<StepLabels, Histogram>);

impl Default for DeploySteps {
    fn default() -> Self {
        Self(Family::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
            ])
        }))
    }
}

impl DeploySteps {
    /// Records that `step` took since `started`; now, for the next step.
    pub fn done(&self, step: &'static str, started: Instant) -> Instant {
        let now = Instant::now();
        self.0
            .get_or_create(&StepLabels { step })
            .observe((now - started).as_secs_f64());
        now
    }
}
