//! The HTTP service, request by request (`router().oneshot(…)`), always with two users.

mod actions;
mod admission;
mod compatibility;
mod courses;
mod data;
mod deployments;
mod e2e;
mod hardening;
mod helpers;
mod items;
mod jobs;
#[path = "../support/llp_api.rs"]
mod llp_api;
mod openapi;
mod orphans;
mod races;
mod rbac;
mod reservations;
mod stream;
mod terminal;
#[path = "../support/testbed.rs"]
mod testbed;
mod usage;
mod volumes;
mod watches;
// Against a real Directus 11.3.5 as the LLP API (installed on first use, tests/support/llp_api.rs).
mod with_directus;
mod with_directus_orphans;
mod with_directus_reservations;
mod with_directus_usage;
