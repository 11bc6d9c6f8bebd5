//! A Kubernetes API simulator: the real REST wire protocol over TLS, an object store with
//! watches, and a controller loop that behaves like a small cluster. For llp-k8s's tests and
//! demo, and for `kubectl` against it.
#![forbid(unsafe_code)]

pub mod api;
pub mod controller;
pub mod kubeconfig;
pub mod logs;
pub mod resources;
pub mod server;
pub mod store;
pub mod tls;

pub use api::rbac::Rbac;
pub use controller::{ClusterSpec, NodeSpec, Timings};
pub use server::{SimError, SimOptions, Simulator};
