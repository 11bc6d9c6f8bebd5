//! The simulator at the size of a busy lab: 2,000 StatefulSets of 4 pods (8,000 pods) created
//! through the API while 50 watches follow every pod, plus a marker watch that measures how
//! long a change takes to reach a watcher under that load. Prints figures; asserts nothing.
//!
//! `cargo bench -p llp-sim --bench scale` (env: BENCH_STATEFULSETS, BENCH_WATCHES).

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use llp_sim::{SimOptions, Simulator};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU seconds (user + system) process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map_or(0.0, |f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum());
    ticks / 100.0
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn micros_now() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros()
}

fn stateful_set(i: usize) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": format!("bench-{i}"), "labels": {"bench": "yes"}},
        "spec": {
            "replicas": 4,
            "serviceName": format!("bench-{i}"),
            "selector": {"matchLabels": {"app": format!("bench-{i}")}},
            "template": {
                "metadata": {"labels": {"app": format!("bench-{i}")}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.27", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
            },
        },
    }))
    .unwrap()
}

/// The simulator runs in a child process (this same binary, re-executed) so that its memory
/// is measured apart from the benchmark's clients.
async fn serve_simulator() {
    let mut cluster = llp_sim::ClusterSpec::default();
    for node in &mut cluster.nodes {
        node.cpu = 10_000;
        node.memory_gi = 100_000;
    }
    cluster.timings.pull = Duration::from_millis(200);
    let sim = Simulator::start(SimOptions {
        cluster,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let path = std::env::temp_dir().join(format!("llp-sim-bench-{}.kubeconfig", std::process::id()));
    std::fs::write(&path, sim.kubeconfig("services")).unwrap();
    println!("{}", path.display());
    let _ = tokio::task::spawn_blocking(|| std::io::read_to_string(std::io::stdin())).await;
    sim.stop().await;
}

#[tokio::main]
async fn main() {
    if std::env::var_os("LLP_SIM_BENCH_SERVE").is_some() {
        return serve_simulator().await;
    }
    let sets_wanted = env("BENCH_STATEFULSETS", 2000);
    let watches = env("BENCH_WATCHES", 50);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("LLP_SIM_BENCH_SERVE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first_line,
    )
    .unwrap();
    let sim_pid = child.id();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&std::fs::read_to_string(first_line.trim()).unwrap()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    println!("llp-sim scale benchmark: {sets_wanted} StatefulSets x 4 pods, {watches} pod watches");
    println!("simulator resident memory at start: {:.0} MiB", rss_mib(sim_pid));
    let pod_events = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::new();
    // Each watch counts the event lines it receives without decoding them (the figure is the
    // simulator's fan-out, not this process's JSON parsing), and, like a real client, lists
    // again and resumes when it fell so far behind that its version expired (410).
    let relists = Arc::new(AtomicU64::new(0));
    for _ in 0..watches {
        let (client, counter, relists) = (client.clone(), pod_events.clone(), relists.clone());
        watchers.push(tokio::spawn(async move {
            let mut from = "0".to_owned();
            loop {
                let url = format!("/api/v1/pods?watch=true&resourceVersion={from}&timeoutSeconds=3600");
                let stream = client
                    .request_stream(http::Request::get(url).body(Vec::new()).unwrap())
                    .await
                    .unwrap();
                let mut lines = futures::AsyncBufReadExt::lines(stream);
                while let Some(Ok(line)) = lines.next().await {
                    if line.ends_with(r#""type":"ERROR"}"#) {
                        break;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                relists.fetch_add(1, Ordering::Relaxed);
                let list = Api::<Pod>::all(client.clone())
                    .list_metadata(&ListParams::default())
                    .await
                    .unwrap();
                counter.fetch_add(list.items.len() as u64, Ordering::Relaxed);
                from = list.metadata.resource_version.unwrap_or_else(|| "0".into());
            }
        }));
    }

    let markers: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let marker_watch = {
        let (api, latencies) = (markers.clone(), latencies.clone());
        tokio::spawn(async move {
            let mut stream = api
                .watch(&WatchParams::default().timeout(3600), "0")
                .await
                .unwrap()
                .boxed();
            while let Ok(Some(event)) = stream.try_next().await {
                if let WatchEvent::Added(cm) = event
                    && let Some(sent) = cm.data.and_then(|d| d.get("sent").and_then(|s| s.parse::<u128>().ok()))
                {
                    latencies.lock().unwrap().push((micros_now() - sent) as f64 / 1000.0);
                }
            }
        })
    };
    let marker_writer = {
        let api = markers.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": format!("marker-{i}")}, "data": {"sent": micros_now().to_string()}}),
                )
                .unwrap();
                let _ = api.create(&PostParams::default(), &cm).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "services");
    let started = Instant::now();
    futures::stream::iter(0..sets_wanted)
        .for_each_concurrent(32, |i| {
            let sets = sets.clone();
            async move {
                sets.create(&PostParams::default(), &stateful_set(i))
                    .await
                    .expect("create");
            }
        })
        .await;
    let create_secs = started.elapsed().as_secs_f64();
    println!(
        "created {sets_wanted} StatefulSets in {create_secs:.1} s: {:.0} objects/s",
        sets_wanted as f64 / create_secs
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "services");
    let target = sets_wanted * 4;
    let mut slowest_list = Duration::ZERO;
    let running = loop {
        let list_started = Instant::now();
        let list = pods.list(&ListParams::default()).await.unwrap();
        slowest_list = slowest_list.max(list_started.elapsed());
        let running = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        if running >= target || started.elapsed() > Duration::from_secs(900) {
            break running;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let all_secs = started.elapsed().as_secs_f64();
    println!(
        "{running}/{target} pods Running after {all_secs:.1} s ({:.0} pods/s end to end)",
        running as f64 / all_secs
    );
    println!(
        "slowest full pod list ({target} objects) during the run: {} ms",
        slowest_list.as_millis()
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "watch event latency under load ({} markers): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        pick(0.5),
        pick(0.99),
        pick(1.0)
    );
    let drain_started = Instant::now();
    let mut last = pod_events.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = pod_events.load(Ordering::Relaxed);
        if now == last || drain_started.elapsed() > Duration::from_secs(300) {
            break;
        }
        last = now;
    }
    println!(
        "pod watch events delivered: {last} to {watches} watches ({} each, {} relists after 410), settled {:.1} s after the pods ran",
        last / watches.max(1) as u64,
        relists.load(Ordering::Relaxed),
        drain_started.elapsed().as_secs_f64() - 2.0
    );
    println!("simulator resident memory at the end: {:.0} MiB", rss_mib(sim_pid));
    let before = cpu_seconds(sim_pid);
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!(
        "simulator CPU while the {target} pods just run: {:.0}% of one core",
        (cpu_seconds(sim_pid) - before) / 5.0 * 100.0
    );
    marker_writer.abort();
    marker_watch.abort();
    for w in watchers {
        w.abort();
    }
    drop(child.stdin.take());
    let _ = child.wait();
}
