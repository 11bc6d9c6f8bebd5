//! llp-k8s: self-service Kubernetes deployments for the LLP. The binary's command line lives
//! in `main.rs`; the parts the service is built from live here.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod config;
pub mod http;
pub mod operations;
pub mod orphans;
pub mod quota;
pub mod records;
pub mod reservations;
pub mod status;
pub mod usage;

#[cfg(test)]
mod architecture_tests;
