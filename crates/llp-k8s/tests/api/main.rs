//! The HTTP service, request by request (`router().oneshot(…)`), always with two users.

mod actions;
mod admission;
mod compatibility;
mod data;
mod deployments;
mod directus;
mod directus_orphans;
mod directus_reservations;
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
#[path = "../support/testbed.rs"]
mod testbed;
mod volumes;
mod watches;
