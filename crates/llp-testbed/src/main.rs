//! `llp-testbed up --kubeconfig PATH [--nodes N] [--gpus SPEC] [--real-nodes M]`: a real
//! Kubernetes control plane (see the library) until Ctrl-C; `llp-testbed build` only builds
//! its programs.

use anyhow::Context;
use clap::{Parser, Subcommand};
use llp_testbed::{Options, Testbed};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "llp-testbed",
    about = "A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, real nodes) for llp-k8s"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Starts the control plane, writes an admin kubeconfig and runs until Ctrl-C.
    Up {
        /// Where to write the kubeconfig.
        #[arg(long)]
        kubeconfig: PathBuf,
        /// Worker nodes (default: the simulator's three workers).
        #[arg(long)]
        nodes: Option<u32>,
        /// GPUs per worker, e.g. `nvidia.com/gpu=2,nvidia.com/mig-1g.10gb=7`.
        #[arg(long)]
        gpus: Option<String>,
        /// Real nodes (kubelet, containerd, runc, a CNI bridge; one kube-proxy) that run real
        /// containers, beside the kwok workers. Needs root (or Debian's containerd, runc,
        /// containernetworking-plugins, iptables, umoci and mmdebstrap installed).
        #[arg(long, default_value_t = 0)]
        real_nodes: u32,
    },
    /// Builds the control plane's programs (done by `up` when needed).
    Build {
        /// Also the real nodes' programs (kubelet, kube-proxy, CoreDNS) and container images.
        #[arg(long)]
        real_nodes: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli.command) {
        eprintln!("llp-testbed: {error:#}");
        std::process::exit(1);
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Build { real_nodes } => {
            let binaries = llp_testbed::binaries::ensure_built()?;
            println!("{}", binaries.dir.display());
            if real_nodes {
                println!("{}", llp_testbed::binaries::ensure_node_built()?.dir.display());
                println!("{}", llp_testbed::binaries::ensure_dns_built()?.dir.display());
                println!("{}", llp_testbed::images::ensure_built()?.display());
            }
        }
        Command::Up {
            kubeconfig,
            nodes,
            gpus,
            real_nodes,
        } => {
            let cluster = llp_sim::ClusterSpec::with_workers(nodes, gpus.as_deref()).unwrap_or_else(|e| {
                eprintln!("llp-testbed: {e}");
                std::process::exit(2)
            });
            let testbed = Testbed::up(Options {
                cluster,
                real_nodes,
                ..Options::default()
            })?;
            std::fs::write(&kubeconfig, testbed.kubeconfig("services"))
                .with_context(|| format!("cannot write {}", kubeconfig.display()))?;
            println!(
                "llp-testbed: Kubernetes {} listening on {}",
                testbed.release, testbed.url
            );
            println!("export KUBECONFIG={}", kubeconfig.display());
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime
                .block_on(tokio::signal::ctrl_c())
                .context("cannot wait for Ctrl-C")?;
            drop(testbed);
        }
    }
    Ok(())
}
