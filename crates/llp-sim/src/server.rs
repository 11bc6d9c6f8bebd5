//! Running the simulator: the HTTPS (or plain HTTP) listener, the controller loop beside it,
//! and a handle to stop both.

use crate::api::{self, ApiState, RequestLog};
use crate::controller::{self, ClusterSpec};
use crate::logs::LogBook;
use crate::store::Store;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated certificate (kubectl sends tokens only over TLS).
    pub tls: bool,
    /// The bearer token clients must send; `None` accepts anyone.
    pub token: Option<String>,
    /// Nodes, namespaces and the behaviour of the simulated cluster.
    pub cluster: ClusterSpec,
    /// Changes kept for resuming watches.
    pub history: usize,
    /// Limit the token to these Role and ClusterRole rules (refusing the rest with 403, as
    /// the API server does); `None` allows everything.
    pub rbac: Option<crate::api::rbac::Rbac>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            token: Some(uuid::Uuid::new_v4().simple().to_string()),
            cluster: ClusterSpec::default(),
            history: 10_000,
            rbac: None,
        }
    }
}

/// The simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    /// Certificate generation failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// A running simulator.
pub struct Simulator {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT` (or `http://…`).
    pub url: String,
    /// PEM of the CA to trust, when serving TLS.
    pub ca_pem: Option<String>,
    /// The token clients must send.
    pub token: Option<String>,
    /// Shared state: store, logs, request log.
    pub state: ApiState,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Simulator {
    /// Starts the API server and the controller.
    pub async fn start(options: SimOptions) -> Result<Self, SimError> {
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|source| SimError::Listen {
                addr: options.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Listen {
            addr: options.listen,
            source,
        })?;
        let tls = if options.tls {
            Some(crate::tls::generate()?)
        } else {
            None
        };
        let mut store = Store::new(options.history);
        controller::seed(&mut store, &options.cluster);
        let state = ApiState {
            store: Arc::new(Mutex::new(store)),
            logs: Arc::new(LogBook::default()),
            token: options.token.as_deref().map(Arc::from),
            requests: Arc::new(RequestLog::default()),
            rbac: options.rbac.map(Arc::new),
        };
        let (shutdown, stop) = watch::channel(false);
        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.server_config.clone()));
        let server = tokio::spawn(serve(listener, api::router(state.clone()), acceptor, stop.clone()));
        let controller = tokio::spawn(controller::run(state.clone(), options.cluster.clone(), stop));
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(Self {
            addr,
            url: format!("{scheme}://{addr}"),
            ca_pem: tls.map(|t| t.ca_pem),
            token: options.token,
            state,
            shutdown,
            tasks: vec![server, controller],
        })
    }

    /// A kubeconfig for this simulator with `namespace` as the default.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        crate::kubeconfig::render(
            &self.url,
            self.ca_pem.as_deref(),
            self.token.as_deref().unwrap_or(""),
            namespace,
        )
    }

    /// Requests received so far.
    pub fn requests(&self) -> &RequestLog {
        &self.state.requests
    }

    /// Stops serving and the controller.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn serve(
    listener: TcpListener,
    router: axum::Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (socket, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        // As kube-apiserver (Go sets TCP_NODELAY on every connection): without it a watch
        // event written while the previous one is unacknowledged waits for the client's
        // delayed ACK, 40 ms on Linux.
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let (router, acceptor, mut stop) = (router.clone(), acceptor.clone(), stop.clone());
        tokio::spawn(async move {
            let service = TowerToHyperService::new(router);
            let builder = hyper::server::conn::http1::Builder::new();
            let result = match acceptor {
                Some(acceptor) => match acceptor.accept(socket).await {
                    Ok(tls) => tokio::select! {
                        r = builder.serve_connection(TokioIo::new(tls), service) => r,
                        _ = stop.changed() => Ok(()),
                    },
                    Err(error) => {
                        tracing::debug!(%error, "TLS handshake failed");
                        return;
                    }
                },
                None => tokio::select! {
                    r = builder.serve_connection(TokioIo::new(socket), service) => r,
                    _ = stop.changed() => Ok(()),
                },
            };
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}
