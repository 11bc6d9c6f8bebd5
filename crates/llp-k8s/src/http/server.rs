//! Serving the router over HTTP/1.1 with the limits a service facing many clients needs: a
//! connection must send a request's headers within `header_read_timeout` (also between the
//! requests of a kept-alive connection, so an idle one is closed) and its body within
//! `body_read_seconds`; at most `max_connections` are open at once (the next ones wait in the
//! listen backlog instead of exhausting file descriptors), at most `connections_per_address`
//! of them from one address, and at most `requests_per_token` requests with one token are in
//! progress: one client cannot take what the others need. Graceful shutdown lets in-flight
//! requests finish.

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

pub use crate::config::ServerLimits;

/// Serves `router` on `listener` until `shutdown` completes, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(Slots::new(limits.connections_per_address.max(1)));
    let (stop, stopping) = watch::channel(false);
    let header_read = Duration::from_secs(limits.header_read_seconds.max(1));
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(Slots::new(limits.requests_per_token.max(1))),
            super::edge::limit_per_token,
        ))
        .layer(axum::Extension(super::error::BodyDeadline(Duration::from_secs(
            limits.body_read_seconds.max(1),
        ))));
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
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // One address over its share is closed at once; the slot goes back to the others.
        let Some(from_address) = per_address.open(&peer.ip().to_string()) else {
            tracing::debug!(%peer, "connection refused: too many from this address");
            continue;
        };
        // Answers and log lines go out as soon as written, not after the client's delayed
        // ACK (Nagle's algorithm holds a small write while an earlier one is unacknowledged).
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let (router, mut stopping) = (router.clone(), stopping.clone());
        tokio::spawn(async move {
            let _slots = (slot, from_address);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_read);
            // Upgrades: a terminal (`/exec`) becomes a WebSocket on this connection.
            let connection = builder
                .serve_connection(TokioIo::new(socket), TowerToHyperService::new(router))
                .with_upgrades();
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

/// How many of something (log streams, connections, requests) each key (a user, an
/// address, a token) has open, to cap them per key.
pub struct Slots {
    max: usize,
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// The log streams of each user.
pub type Follows = Slots;

impl Default for Slots {
    fn default() -> Self {
        Self::new(ServerLimits::default().follows_per_user)
    }
}

/// One open thing of a key; dropping this frees its slot.
pub struct Slot {
    slots: Arc<Slots>,
    key: String,
}

/// One open log stream of a user.
pub type FollowSlot = Slot;

/// Open status streams per user.
pub type StatusStreams = Slots;

/// Open terminals per user.
pub type Terminals = Slots;

impl Slots {
    /// At most `max` per key.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Default::default(),
        }
    }

    /// The most one key may have open.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for one more of `key`, unless it has the most open already.
    pub fn open(self: &Arc<Self>, key: &str) -> Option<Slot> {
        let mut open = self.lock();
        let count = open.entry(key.to_owned()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: self.clone(),
            key: key.to_owned(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, usize>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}
