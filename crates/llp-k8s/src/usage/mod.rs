//! GPU usage (SPEC section 13): an accountant, elected by a Lease, writes what GPUs the pods
//! hold ([`llp_spec::usage::Hold`]) where the records are; the usage route reads it back.

pub mod accountant;
pub mod energy;

use crate::records::{RecordError, UsageStore};
use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::atomic::AtomicU64;

/// What the usage report is made from: where holds are kept (if the record source keeps
/// them) and where power is read (if the lab has it).
#[derive(Clone, Default)]
pub struct Usage {
    /// The holds.
    pub store: Option<std::sync::Arc<dyn UsageStore>>,
    /// The pods' power.
    pub energy: Option<std::sync::Arc<energy::Prometheus>>,
}

/// A report: its rows, and why they have no energy when power was to be read but could not.
#[derive(Debug)]
pub struct Report {
    /// The rows.
    pub rows: Vec<llp_spec::usage::Row>,
    /// What went wrong reading power (naming Prometheus).
    pub energy_problem: Option<String>,
}

/// Labels of the GPU-seconds counter: the profile only (bounded; no user ids).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProfileLabel {
    /// The profile's slug (`gpu-l`, `gpu-m`, `gpu-s`, `gpu-xs`).
    pub profile: String,
}

/// `llp_k8s_gpu_seconds_total{profile}`: GPU-seconds the accountant has seen pods hold.
pub type GpuSeconds = Family<ProfileLabel, Counter<f64, AtomicU64>>;

/// Why a report could not be made.
#[derive(Debug)]
pub enum ReportError {
    /// The record source keeps no usage.
    NotKept,
    /// Reading the holds or the bookings failed.
    Records(RecordError),
    /// The store did not answer in time.
    Timeout,
}

/// The report for `session`'s holder: usage within `window` grouped `by`; an admin sees every
/// owner's, anyone else their own (holds by the owner label of their id, bookings they are
/// among the users of). With a Prometheus, rows by user, deployment or profile add the energy
/// drawn in `namespace`; when it cannot be read the rows come without it, saying why.
pub async fn report(
    records: &dyn crate::records::RecordSource,
    usage: &Usage,
    (session, namespace): (&crate::records::Session, &str),
    window: (Timestamp, Timestamp),
    by: llp_spec::usage::By,
) -> Result<Report, ReportError> {
    let store = usage.store.as_deref().ok_or(ReportError::NotKept)?;
    let deadline = std::time::Duration::from_secs(15);
    let mut holds = tokio::time::timeout(deadline, store.holds_between(window.0, window.1))
        .await
        .map_err(|_| ReportError::Timeout)?
        .map_err(ReportError::Records)?;
    let identity = &session.identity;
    if !identity.admin {
        let own = llp_spec::names::label_value(&identity.id);
        holds.retain(|h| h.owner == own);
    }
    let bookings = if matches!(by, llp_spec::usage::By::Booking | llp_spec::usage::By::Course) {
        tokio::time::timeout(deadline, records.bookings_between(session, window.0, window.1))
            .await
            .map_err(|_| ReportError::Timeout)?
            .map_err(ReportError::Records)?
    } else {
        Vec::new()
    };
    let now = Timestamp::now();
    let mut rows = llp_spec::usage::report(&holds, &bookings, by, window, now);
    let mut energy_problem = None;
    let wants_energy = !matches!(by, llp_spec::usage::By::Booking | llp_spec::usage::By::Course);
    if let Some(prometheus) = usage.energy.as_deref().filter(|_| wants_energy && !rows.is_empty()) {
        match prometheus.power(namespace, (window.0, window.1.min(now))).await {
            Ok(power) => llp_spec::usage::add_energy(&mut rows, &holds, by, &power, window, now),
            Err(problem) => {
                tracing::warn!(%problem, "GPU energy could not be read");
                energy_problem = Some(problem);
            }
        }
    }
    Ok(Report { rows, energy_problem })
}
