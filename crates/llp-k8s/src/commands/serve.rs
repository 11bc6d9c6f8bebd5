//! `llp-k8s serve [--config FILE]`: the service against a real cluster.

use super::Outcome;
use anyhow::Context;
use llp_k8s::cluster::Cluster;
use llp_k8s::config::{Config, RecordsConfig, SourceKind};
use llp_k8s::http::metrics::Metrics;
use llp_k8s::http::{AppParts, AppState, router};
use llp_k8s::records::RecordSource;
use llp_k8s::records::UsageStore;
use llp_k8s::records::directus::DirectusSource;
use llp_k8s::records::embedded::EmbeddedStore;
use std::path::Path;
use std::sync::Arc;

pub fn run(config: Option<&Path>) -> anyhow::Result<Outcome> {
    let config = Config::load(config, |name| std::env::var(name).ok())?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<Outcome> {
    let signalled = shutdown_signal();
    // Settings first, then the cluster, then what creates files: a mistake leaves nothing
    // behind (no record file in the working directory).
    let metrics = Arc::new(llp_k8s::http::metrics::Metrics::default());
    let llp_api = match config.records.source {
        SourceKind::Directus => Some(directus_source(&config.records, &metrics)?),
        SourceKind::Embedded => None,
    };
    // kubeconfig (KUBECONFIG or ~/.kube/config) or the in-cluster service account.
    let kube_config = kube::Config::infer().await.map_err(|error| {
        // The error's own text names both places it looked; its sources would repeat them.
        anyhow::anyhow!(
            "no Kubernetes cluster to serve: {error}.\n\
             Set KUBECONFIG to a cluster's kubeconfig (or run the service inside a cluster), \
             or try `llp-k8s demo` (a simulated cluster, records and the service in one command) \
             or `llp-k8s sim` (a simulated cluster and its kubeconfig)."
        )
    })?;
    let has_service_token = config
        .records
        .directus
        .service_token
        .as_ref()
        .is_some_and(|t| !t.expose().is_empty());
    let embedded_source = llp_api.is_none();
    let (records, embedded, usage): (Arc<dyn RecordSource>, Option<EmbeddedStore>, Arc<dyn UsageStore>) = match llp_api
    {
        Some(source) => (source.clone(), None, source),
        None => {
            let database = &config.records.database;
            let store = EmbeddedStore::open(database).with_context(|| format!("cannot open {}", database.display()))?;
            // Several replicas may share the file: each sees the others' writes within this.
            store.follow_other_writers(std::time::Duration::from_millis(250));
            (Arc::new(store.clone()), Some(store.clone()), Arc::new(store))
        }
    };
    let cors = llp_k8s::http::cors::layer(&config.cors_origins).map_err(anyhow::Error::msg)?;
    let deadline = config.cluster_deadline();
    let client = llp_k8s::cluster::calls::counted_client(kube_config, metrics.api_calls(), deadline)
        .context("cannot configure the Kubernetes client")?;
    let mut cluster = Cluster::start(client, &config.cluster.namespace);
    cluster.stale_after = std::time::Duration::from_secs(config.cluster_stale_seconds);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let state: AppState = AppParts {
        records,
        embedded,
        cluster: Some(cluster),
        render: Arc::new(config.cluster),
        limits: Arc::new(config.limits),
        locks: Arc::default(),
        shutdown: stopping,
        metrics,
        follows: Arc::new(llp_k8s::http::server::Follows::new(config.server.follows_per_user)),
        reservations: Arc::new(llp_k8s::reservations::ReservationPolicy {
            settings: config.reservations,
            clock: Default::default(),
        }),
        orphans: llp_k8s::orphans::OrphanPolicy::new(llp_k8s::orphans::OrphanSettings {
            // Without its own token the service cannot list every record: nothing to compare.
            enabled: config.orphans.enabled && (embedded_source || has_service_token),
            ..config.orphans
        }),
        usage: llp_k8s::usage::Usage {
            store: Some(usage),
            energy: llp_k8s::usage::energy::Prometheus::new(config.usage.clone()).map(Arc::new),
        },
        status_memo: Arc::default(),
        terminals: Arc::new(llp_k8s::http::server::Terminals::new(config.server.terminals_per_user)),
        terminal_idle: std::time::Duration::from_secs(config.server.terminal_idle_seconds),
        status_streams: Arc::new(llp_k8s::http::server::StatusStreams::new(
            config.server.status_streams_per_user,
        )),
    }
    .into();
    let reconcilers = super::spawn_reconcilers(&state);
    tracing::info!(listen = %config.listen, "llp-k8s serving");
    let mut app = router(state);
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    let drain = std::time::Duration::from_secs(config.server.drain_seconds);
    llp_k8s::http::server::serve(listener, app, config.server, async move {
        signalled.await;
        // Readiness fails and log streams end at once; requests are served while the load
        // balancers notice, then the listener closes and open requests finish.
        tracing::info!(?drain, "shutting down: draining, then finishing requests");
        let _ = stop.send(true);
        tokio::time::sleep(drain).await;
    })
    .await;
    for reconciler in reconcilers {
        let _ = reconciler.await; // it gives its lease up
    }
    Ok(Outcome::Success)
}

/// The LLP API as the record source.
fn directus_source(config: &RecordsConfig, metrics: &Metrics) -> anyhow::Result<Arc<DirectusSource>> {
    tracing::info!(url = %config.directus.url, "records from the LLP API");
    if config.directus.service_token.is_none() {
        tracing::warn!(
            "records.directus.service_token (LLP_SERVICE_TOKEN) is not set: GPU pods will not be stopped when their reservations end, \
             deployments whose record is deleted in the LLP will not be removed, and GPU usage will not be kept"
        );
    }
    let source = DirectusSource::new(config.directus.clone())?.counting(metrics.llp_api());
    Ok(Arc::new(source))
}

/// Ctrl-C or SIGTERM (what Kubernetes sends a pod it stops). The handlers are installed by
/// this call, not when the future is first polled: a signal that arrives while the server has
/// not looked at the future yet (it answered a request first) still stops it cleanly instead
/// of killing the process.
pub(super) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let (terminate, interrupt) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    let received = |signal: std::io::Result<Signal>| async move {
        match signal {
            Ok(mut signal) => drop(signal.recv().await),
            Err(_) => std::future::pending().await,
        }
    };
    async move {
        tokio::select! {
            () = received(terminate) => {}
            () = received(interrupt) => {}
        }
    }
}
