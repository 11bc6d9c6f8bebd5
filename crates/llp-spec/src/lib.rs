//! The llp-k8s deployment spec: what a user may write in a deployment record, and what it
//! becomes in Kubernetes. No I/O happens here.
//!
//! The pipeline: [`parse_yaml`] (text → [`raw::RawSpec`], with size and alias limits) →
//! [`validate_spec`] / [`validate_record`] (→ [`Spec`] / [`Deployment`], or every problem as a
//! [`FieldError`]) → [`render()`] (→ [`Objects`]: StatefulSet, Services, Ingress).
#![forbid(unsafe_code)]

pub mod admission;
pub mod error;
pub mod footprint;
pub mod limits;
pub mod names;
pub mod parse;
pub mod placement;
pub mod quantity;
pub mod quota;
pub mod raw;
pub mod record;
pub mod render;
pub mod reservations;
pub mod resize;
pub mod schema;
pub mod sessions;
pub mod spec;
pub mod status;
pub mod usage;
pub mod validate;

pub use error::{ErrorBody, FieldError, Rule};
pub use limits::{GpuSet, Limits, LimitsTable};
pub use names::Names;
pub use parse::parse_yaml;
pub use record::{Deployment, Exposure, Record, RecordId, validate_record, validate_record_with};
pub use render::{Identity, Objects, RenderConfig, Workload, render};
pub use schema::deployment_schema;
pub use spec::Spec;
pub use validate::{validate_spec, validate_yaml};
