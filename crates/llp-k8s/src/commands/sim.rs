//! `llp-k8s sim --listen ADDR --kubeconfig PATH [--nodes N] [--gpus SPEC]`.

use super::Outcome;
use anyhow::Context;
use llp_sim::controller::cluster::parse_gpus;
use llp_sim::{ClusterSpec, NodeSpec, SimOptions, Simulator};
use std::net::SocketAddr;
use std::path::Path;

pub fn run(listen: SocketAddr, kubeconfig: &Path, nodes: Option<u32>, gpus: Option<&str>) -> anyhow::Result<Outcome> {
    let cluster = match cluster(nodes, gpus) {
        Ok(cluster) => cluster,
        Err(message) => {
            eprintln!("llp-k8s: {message}");
            return Ok(Outcome::Usage);
        }
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let sim = Simulator::start(SimOptions {
            listen,
            cluster,
            ..SimOptions::default()
        })
        .await?;
        std::fs::write(kubeconfig, sim.kubeconfig("services"))
            .with_context(|| format!("cannot write {}", kubeconfig.display()))?;
        println!("llp-sim listening on {}", sim.url);
        println!("export KUBECONFIG={}", kubeconfig.display());
        tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
        sim.stop().await;
        Ok(Outcome::Success)
    })
}

/// The default cluster, or a control-plane node and `nodes` workers with `gpus` each.
fn cluster(nodes: Option<u32>, gpus: Option<&str>) -> Result<ClusterSpec, String> {
    let mut cluster = ClusterSpec::default();
    if nodes.is_none() && gpus.is_none() {
        return Ok(cluster);
    }
    let gpus = parse_gpus(gpus.unwrap_or("nvidia.com/gpu=2")).map_err(|e| format!("--gpus: {e}"))?;
    let gpus: Vec<(&str, u32)> = gpus.iter().map(|(r, n)| (r.as_str(), *n)).collect();
    let control_plane = cluster.nodes.remove(0);
    cluster.nodes = std::iter::once(control_plane)
        .chain((1..=nodes.unwrap_or(3)).map(|i| NodeSpec::worker(&format!("worker-{i}"), &gpus)))
        .collect();
    Ok(cluster)
}
