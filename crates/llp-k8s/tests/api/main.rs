//! The HTTP service, request by request (`router().oneshot(…)`), always with two users.

mod actions;
mod data;
mod deployments;
mod e2e;
mod helpers;
mod items;
