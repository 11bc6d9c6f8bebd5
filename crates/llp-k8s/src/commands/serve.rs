//! `llp-k8s serve [--config FILE]`: the service against a real cluster.

use super::Outcome;
use anyhow::Context;
use llp_k8s::cluster::Cluster;
use llp_k8s::config::{Config, RecordsConfig, SourceKind};
use llp_k8s::http::metrics::Metrics;
use llp_k8s::http::{AppState, router};
use llp_k8s::records::RecordSource;
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
    let metrics = Arc::new(llp_k8s::http::metrics::Metrics::default());
    let (records, embedded) = record_source(&config.records, &metrics)?;
    let cors = llp_k8s::http::cors::layer(&config.cors_origins).map_err(anyhow::Error::msg)?;
    // kubeconfig (KUBECONFIG or ~/.kube/config) or the in-cluster service account.
    let kube_config = kube::Config::infer()
        .await
        .context("cannot configure the Kubernetes client")?;
    let deadline = config.cluster_deadline();
    let client = llp_k8s::cluster::calls::counted_client(kube_config, metrics.api_calls(), deadline)
        .context("cannot configure the Kubernetes client")?;
    let mut cluster = Cluster::start(client, &config.cluster.namespace);
    cluster.stale_after = std::time::Duration::from_secs(config.cluster_stale_seconds);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let state = AppState {
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
    };
    let reconciling = llp_k8s::reservations::spawn_reconciler(&state, state.shutdown.clone());
    tracing::info!(listen = %config.listen, "llp-k8s serving");
    let mut app = router(state);
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    llp_k8s::http::server::serve(listener, app, config.server, async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests, ending log streams");
        let _ = stop.send(true);
    })
    .await;
    if let Some(reconciling) = reconciling {
        let _ = reconciling.await; // it gives its lease up
    }
    Ok(Outcome::Success)
}

/// The configured record source (and the embedded store, when it is the one).
fn record_source(
    config: &RecordsConfig,
    metrics: &Metrics,
) -> anyhow::Result<(Arc<dyn RecordSource>, Option<EmbeddedStore>)> {
    Ok(match config.source {
        SourceKind::Embedded => {
            let store = EmbeddedStore::open(&config.database)
                .with_context(|| format!("cannot open {}", config.database.display()))?;
            (Arc::new(store.clone()), Some(store))
        }
        SourceKind::Directus => {
            tracing::info!(url = %config.directus.url, "records from the LLP API");
            if config.directus.service_token.is_none() {
                tracing::warn!(
                    "records.directus.service_token (LLP_SERVICE_TOKEN) is not set: GPU pods will not be stopped when their reservations end"
                );
            }
            let source = DirectusSource::new(config.directus.clone())?.counting(metrics.llp_api_calls());
            (Arc::new(source), None)
        }
    })
}

/// Ctrl-C or SIGTERM (what Kubernetes sends a pod that is stopped).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
