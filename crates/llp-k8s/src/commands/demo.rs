//! `llp-k8s demo [--listen ADDR] [--db PATH]`: the simulator, embedded records and the
//! service in one process, for a laptop or a first look.

use super::Outcome;
use anyhow::Context;
use llp_k8s::cluster::Cluster;
use llp_k8s::http::{AppParts, AppState, router};
use llp_k8s::records::embedded::{EmbeddedStore, ReservationInput, UserRef};
use llp_sim::{SimOptions, Simulator};
use llp_spec::{LimitsTable, RenderConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub fn run(listen: SocketAddr, db: Option<PathBuf>) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve(listen, db))
}

async fn serve(listen: SocketAddr, db: Option<PathBuf>) -> anyhow::Result<Outcome> {
    let signalled = super::serve::shutdown_signal();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let temp = std::env::temp_dir().join(format!("llp-k8s-demo-{}", std::process::id()));
    let db = match db {
        Some(path) => path,
        None => {
            std::fs::create_dir_all(&temp).context("cannot create a temporary directory")?;
            temp.join("records.sqlite")
        }
    };
    let records = EmbeddedStore::open(&db).with_context(|| format!("cannot open {}", db.display()))?;
    // `llp-k8s users` and `reservations` (or any SQLite client) may change the file meanwhile.
    records.follow_other_writers(std::time::Duration::from_millis(250));
    let (alice_user, alice) = records.add_user("alice", &[], false)?;
    let (_, bob) = records.add_user("bob", &[], false)?;
    let (admin_user, admin) = records.add_user("admin", &[], true)?;
    // Alice has booked one gpu-xs for the next day, so the walkthrough's GPU deploy works for
    // her and bob's is refused with the shortfall (SPEC section 10).
    let now = jiff::Timestamp::now();
    let booking = ReservationInput {
        gpus: Some(vec!["gpu-xs".into()]),
        start: Some(now.to_string()),
        end: Some((now + jiff::SignedDuration::from_hours(24)).to_string()),
        deployment: None,
        users: Some(vec![UserRef::Id(alice_user.id)]),
        course: None,
    };
    records.add_reservation(&admin_user, &booking)?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("export LLP_URL={url}");
    println!("export ALICE_TOKEN={alice}");
    println!("export BOB_TOKEN={bob}");
    println!("export ADMIN_TOKEN={admin}");

    let sim = Simulator::start(SimOptions::default())
        .await
        .context("cannot start the cluster simulator")?;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig("services"))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let metrics = Arc::new(llp_k8s::http::metrics::Metrics::default());
    let deadline = llp_k8s::cluster::calls::REQUEST_DEADLINE;
    let client = llp_k8s::cluster::calls::counted_client(config, metrics.api_calls(), deadline)?;
    let cluster = Cluster::start(client, "services");
    let cluster_handle = cluster.clone();
    cluster.caches.ready().await.context("the watch caches did not start")?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let usage: Arc<dyn llp_k8s::records::UsageStore> = Arc::new(records.clone());
    let state: AppState = AppParts {
        records: Arc::new(records.clone()),
        embedded: Some(records),
        cluster: Some(cluster),
        render: Arc::new(RenderConfig::default()),
        limits: Arc::new(LimitsTable::default()),
        locks: Arc::default(),
        shutdown: stopping,
        metrics,
        reservations: Arc::default(),
        follows: Arc::default(),
        orphans: Arc::default(),
        usage: llp_k8s::usage::Usage {
            store: Some(usage),
            energy: None,
        },
        status_memo: Arc::default(),
        terminals: Arc::new(llp_k8s::http::server::Terminals::new(
            llp_k8s::config::ServerLimits::default().terminals_per_user,
        )),
        terminal_idle: std::time::Duration::from_secs(llp_k8s::config::ServerLimits::default().terminal_idle_seconds),
        status_streams: Arc::new(llp_k8s::http::server::StatusStreams::new(
            llp_k8s::config::ServerLimits::default().status_streams_per_user,
        )),
    }
    .into();
    let reconcilers = super::spawn_reconcilers(&state);
    println!("# Try (the walkthrough is in README.md):");
    println!(
        r#"curl -s -H "Authorization: Bearer $ALICE_TOKEN" -H 'Content-Type: application/json' $LLP_URL/items/deployments -d '{{"title":"web","data":"containers: [{{name: web, image: nginx, ports: [{{name: http, port: 80}}]}}]"}}'"#
    );
    println!(r#"curl -s -X PUT -H "Authorization: Bearer $ALICE_TOKEN" $LLP_URL/kubernetes/deployments/$ID"#);
    println!(r#"curl -s -H "Authorization: Bearer $ALICE_TOKEN" $LLP_URL/kubernetes/deployments/$ID"#);
    println!(
        "# alice has booked one gpu-xs (nvidia.com/mig-1g.10gb) for a day: her GPU deploys work, bob's are refused"
    );
    let limits = llp_k8s::http::server::ServerLimits::default();
    llp_k8s::http::server::serve(listener, router(state), limits, async move {
        signalled.await;
        // End open log streams, so that the in-flight requests can finish.
        let _ = stop.send(true);
    })
    .await;
    for reconciler in reconcilers {
        let _ = reconciler.await; // it gives its lease up
    }
    // The service's watches end before the simulator does: they would report its closed
    // connections as errors.
    cluster_handle.stop();
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&temp);
    Ok(Outcome::Success)
}
