//! GPU usage (SPEC section 13): an accountant, elected by a Lease, writes what GPUs the pods
//! hold ([`llp_spec::usage::Hold`]) where the records are; the usage route reads it back.

pub mod accountant;

use crate::records::{RecordError, UsageStore};
use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::atomic::AtomicU64;

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
/// among the users of).
pub async fn report(
    records: &dyn crate::records::RecordSource,
    store: Option<&dyn UsageStore>,
    session: &crate::records::Session,
    window: (Timestamp, Timestamp),
    by: llp_spec::usage::By,
) -> Result<Vec<llp_spec::usage::Row>, ReportError> {
    let store = store.ok_or(ReportError::NotKept)?;
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
    Ok(llp_spec::usage::report(&holds, &bookings, by, window, Timestamp::now()))
}
