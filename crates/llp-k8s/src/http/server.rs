//! Serving the router over HTTP/1.1 with the limits a service facing many clients needs: a
//! connection must send a request's headers within `header_read_timeout` (also between the
//! requests of a kept-alive connection, so an idle one is closed), and at most
//! `max_connections` are open at once (the next ones wait in the listen backlog instead of
//! exhausting file descriptors). Graceful shutdown lets in-flight requests finish.

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Limits on the service's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Seconds a connection has to send a request's headers (and an idle kept-alive
    /// connection to send its next request) before it is closed.
    pub header_read_seconds: u64,
    /// Connections open at once.
    pub max_connections: usize,
    /// Log streams (`logs?follow=true`) one user may have open at once.
    pub follows_per_user: usize,
    /// Seconds a replica told to stop goes on serving, `/readyz` failing, so that load
    /// balancers take it out before it closes its listener.
    pub drain_seconds: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_seconds: 10,
            max_connections: 4096,
            follows_per_user: 8,
            drain_seconds: 5,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopping) = watch::channel(false);
    let header_read = Duration::from_secs(limits.header_read_seconds.max(1));
    tokio::pin!(shutdown);
    loop {
        // A free slot first: at the cap, connections wait in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers and log lines go out as soon as written, not after the client's delayed
        // ACK (Nagle's algorithm holds a small write while an earlier one is unacknowledged).
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let (router, mut stopping) = (router.clone(), stopping.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_read);
            let connection = builder.serve_connection(TokioIo::new(socket), TowerToHyperService::new(router));
            tokio::pin!(connection);
            let stop_requested = async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop_requested => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    let _ = stop.send(true);
    // Every slot back: every connection has finished.
    let _ = slots
        .acquire_many(u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX))
        .await;
}

/// How many log streams each user has open, to cap them per user.
pub struct Follows {
    max: usize,
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl Default for Follows {
    fn default() -> Self {
        Self::new(ServerLimits::default().follows_per_user)
    }
}

/// One open log stream of a user; closing it (dropping this) frees the slot.
pub struct FollowSlot {
    follows: Arc<Follows>,
    user: String,
}

impl Follows {
    /// At most `max` streams per user.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Default::default(),
        }
    }

    /// The most streams one user may have open.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for one more stream of `user`, unless they have the most open already.
    pub fn open(self: &Arc<Self>, user: &str) -> Option<FollowSlot> {
        let mut open = self.lock();
        let count = open.entry(user.to_owned()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(FollowSlot {
            follows: self.clone(),
            user: user.to_owned(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, usize>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FollowSlot {
    fn drop(&mut self) {
        let mut open = self.follows.lock();
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}
