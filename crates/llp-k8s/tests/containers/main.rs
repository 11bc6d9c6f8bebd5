//! Real containers: the service, as the ServiceAccount of `deploy/`, on llp-testbed's real
//! node (kubelet, containerd, runc, a CNI bridge, kube-proxy), where pods really start,
//! Services route, and logs, crashes, OOM kills and missing secret keys are the kernel's and
//! the kubelet's. Each scenario asserts what a user sees through the service's routes.
//!
//! The node has this machine's cores (two here) and a deployment asks for whole cores, so the
//! scenarios take turns ([`node`]), each on a node cleared of the one before.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod in_cluster;
mod lifecycle;
#[path = "../support/llp_api.rs"]
mod llp_api;
mod node;
mod runs;
mod serving;
mod terminal;
#[allow(dead_code)]
#[path = "../support/testbed.rs"]
mod testbed;
