//! `llp-k8s sim --listen ADDR --kubeconfig PATH [--nodes N] [--gpus SPEC]`.

use super::Outcome;
use anyhow::Context;
use llp_sim::{ClusterSpec, SimOptions, Simulator};
use std::net::SocketAddr;
use std::path::Path;

pub fn run(listen: SocketAddr, kubeconfig: &Path, nodes: Option<u32>, gpus: Option<&str>) -> anyhow::Result<Outcome> {
    let cluster = match ClusterSpec::with_workers(nodes, gpus) {
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
