//! A Kubernetes API simulator: the real REST wire protocol over TLS, an object store with
//! watches, and a controller loop that behaves like a small cluster. For llp-k8s's tests and
//! demo, and for `kubectl` against it.
#![forbid(unsafe_code)]

pub mod resources;
pub mod store;
