//! The service under load: `cargo bench -p llp-k8s --bench service`.
//!
//! Three processes, so that each one's memory is its own: the simulator (this binary
//! re-executed), the service (`llp-k8s serve`, the real binary and configuration path) and
//! this load generator. For each record source (embedded SQLite, then a real Directus as the
//! LLP API) it deploys BENCH_DEPLOYMENTS records of 4 pods owned by 20 users, then has
//! BENCH_CLIENTS clients poll their deployments' status for BENCH_SECONDS seconds, and prints
//! requests per second, latency percentiles, the Kubernetes API requests the service made
//! (from its own `/metrics`), the time and API requests of one deploy, and the service's
//! resident memory idle and under load, the service's CPU time per status request, the
//! latency of first deploys one at a time, and, with `wrk` installed, the same polling from
//! wrk; then the service restarted on that cluster (time until its caches are synced, its
//! memory then). The directus source's identities expire every BENCH_IDENTITY_SECONDS (5)
//! seconds, so the polling runs through expiries. BENCH_SOURCES picks the sources (`embedded,directus`);
//! BENCH_CLUSTER the cluster: `simulator` (default) or `kubernetes`, the real control plane of
//! llp-testbed (kube-apiserver, controllers, scheduler, kwok nodes; started in this process).
//! With the embedded source, BENCH_STREAMS (1,000; 0 skips) status streams follow the
//! deployments afterwards ([`streams`]).

#[path = "../tests/support/llp_api.rs"]
mod llp_api;
#[path = "service/streams.rs"]
mod streams;

use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USERS: usize = 20;
const RECORD_YAML: &str =
    "replicas: 4\ncontainers: [{name: web, image: nginx, cpu: 1, memory: 0.1, ports: [{name: http, port: 80}]}]";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmRSS:")
}

/// The most resident memory process `pid` has had so far (the kernel's high-water mark), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmHWM:")
}

fn proc_status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// CPU time process `pid` has used so far (user + system), from `/proc/<pid>/stat`.
/// CPU-seconds the whole machine has spent busy (every process, the kernel's work for them).
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait; 100 ticks/s.
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| ![3, 4].contains(i))
        .map(|(_, t)| t)
        .sum();
    busy / 100.0
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|t| t.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the name); 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

/// A child process killed when dropped (also when the benchmark panics).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The floor (issue 16): axum answering one status-sized JSON document from memory, after the
/// same bearer-token check a status request needs, in this binary re-executed: what a status
/// poll costs at least. Prints its port.
async fn serve_floor() {
    let document: axum::body::Bytes = std::env::var("LLP_SERVICE_BENCH_FLOOR").unwrap().into();
    let app = axum::Router::new().route(
        "/kubernetes/deployments/{id}",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let document = document.clone();
            async move {
                let authorized = headers
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("Bearer "));
                if !authorized {
                    return axum::http::StatusCode::UNAUTHORIZED.into_response();
                }
                ([(axum::http::header::CONTENT_TYPE, "application/json")], document).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    axum::serve(listener, app).await.unwrap();
}

/// Starts the floor server answering `document`; returns it and its URL.
fn start_floor(document: &str) -> (Running, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("LLP_SERVICE_BENCH_FLOOR", document)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    (Running(child), format!("http://127.0.0.1:{}", line.trim()))
}

/// The simulator, in this binary re-executed: big nodes, so 40,000 pods fit (issue 16's
/// scale run, `BENCH_DEPLOYMENTS=10000`).
async fn serve_simulator() {
    let mut cluster = llp_sim::ClusterSpec::default();
    for node in &mut cluster.nodes {
        node.cpu = 100_000;
        node.memory_gi = 1_000_000;
        node.pods = 100_000;
    }
    cluster.timings.pull = Duration::from_millis(200);
    let sim = llp_sim::Simulator::start(llp_sim::SimOptions {
        cluster,
        ..llp_sim::SimOptions::default()
    })
    .await
    .unwrap();
    let path = std::env::temp_dir().join(format!("llp-service-bench-{}.kubeconfig", std::process::id()));
    std::fs::write(&path, sim.kubeconfig("services")).unwrap();
    println!("{}", path.display());
    let _ = tokio::task::spawn_blocking(|| std::io::read_to_string(std::io::stdin())).await;
    sim.stop().await;
}

/// The cluster the service runs against, kept alive while it is held.
enum Cluster {
    Simulator(#[allow(dead_code)] Running),
    Kubernetes(#[allow(dead_code)] Box<llp_testbed::Testbed>),
}

/// BENCH_CLUSTER's cluster and the path of its kubeconfig.
fn start_cluster() -> (Cluster, String) {
    match std::env::var("BENCH_CLUSTER").as_deref() {
        Err(_) | Ok("simulator") => {
            let (sim, kubeconfig) = start_simulator();
            (Cluster::Simulator(sim), kubeconfig)
        }
        Ok("kubernetes") => {
            let mut cluster = llp_sim::ClusterSpec::default();
            for node in &mut cluster.nodes {
                node.cpu = 10_000;
                node.memory_gi = 100_000;
                node.pods = 10_000;
            }
            let testbed = llp_testbed::Testbed::up(llp_testbed::Options {
                cluster,
                ..llp_testbed::Options::default()
            })
            .expect("the real control plane starts");
            let path = testbed.dir.join("bench.kubeconfig");
            std::fs::write(&path, testbed.kubeconfig("services")).unwrap();
            (Cluster::Kubernetes(Box::new(testbed)), path.display().to_string())
        }
        Ok(other) => panic!("BENCH_CLUSTER: `simulator` or `kubernetes`, not `{other}`"),
    }
}

/// The label figures are printed under: the record source, and the cluster when it is real.
fn label(source: &str) -> String {
    match std::env::var("BENCH_CLUSTER").as_deref() {
        Ok("kubernetes") => format!("{source} on kubernetes"),
        _ => source.to_owned(),
    }
}

fn start_simulator() -> (Running, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("LLP_SERVICE_BENCH_SIM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    (Running(child), line.trim().to_owned())
}

/// `llp-k8s serve` with `records` (a TOML `[records]` table) against the simulator.
async fn start_service(dir: &std::path::Path, kubeconfig: &str, records: &str) -> (Running, String) {
    let port = llp_api::free_port();
    let config = dir.join("config.toml");
    // Quotas large enough for the load: each user holds BENCH_DEPLOYMENTS / 20 deployments.
    let quota = "deployments = 100000\ncpu = 1000000\nmemory = 10000000.0\ngpus = 100000\nstorage = 10000000\n";
    // A group's limits may only raise the default's (the service refuses to start otherwise).
    let quota = format!("[limits.default.quota]\n{quota}[limits.groups.management.quota]\n{quota}");
    // The streams' phase opens BENCH_STREAMS at once, from one address, for 20 users.
    let server = "[server]\nstatus_streams_per_user = 100000\nconnections_per_address = 100000\n";
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:{port}\"\n{records}\n{quota}{server}"),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("service.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("KUBECONFIG", kubeconfig)
        .env("LLP_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    // Ready means the watch caches hold their first full lists: minutes with 40,000 pods.
    let deadline = Instant::now() + Duration::from_secs(600);
    while !llp_api::answers_ok(&format!("{url}/readyz"), Duration::from_secs(1)).await {
        if let Some(exit) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.join("service.log")).unwrap_or_default();
            panic!("the service stopped ({exit}) before it was ready:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "the service did not get ready: see {}",
            dir.display()
        );
    }
    (Running(child), url)
}

/// The Kubernetes API requests the service has made, from its `/metrics`.
async fn api_requests(http: &reqwest::Client, url: &str) -> u64 {
    counter(http, url, "llp_k8s_kube_api_requests_total{").await
}

/// The service's deploy step timings so far: step → (seconds in all, deploys).
async fn deploy_steps(http: &reqwest::Client, url: &str) -> std::collections::BTreeMap<String, (f64, f64)> {
    let text = metrics_text(http, url).await;
    let mut steps = std::collections::BTreeMap::<String, (f64, f64)>::new();
    for line in text.lines() {
        let Some(rest) = line
            .strip_prefix("llp_k8s_deploy_step_duration_seconds_")
            .filter(|r| r.starts_with("sum{") || r.starts_with("count{"))
        else {
            continue;
        };
        let (Some(step), Some(value)) = (
            rest.split('"').nth(1),
            rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let entry = steps.entry(step.to_owned()).or_default();
        if rest.starts_with("sum{") {
            entry.0 = value;
        } else if rest.starts_with("count{") {
            entry.1 = value;
        }
    }
    steps
}

/// `record 0.4 ms, admission 1.2 ms, …`: the mean of each step between two readings.
fn step_means(
    before: &std::collections::BTreeMap<String, (f64, f64)>,
    after: &std::collections::BTreeMap<String, (f64, f64)>,
) -> String {
    after
        .iter()
        .map(|(step, (sum, count))| {
            let (sum0, count0) = before.get(step).copied().unwrap_or_default();
            let n = (count - count0).max(1.0);
            format!("{step} {:.1} ms", (sum - sum0) / n * 1000.0)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sum of a counter family of the service's `/metrics`.
/// The service's list requests for pods (the watch cache's lists, page by page).
const POD_LISTS: &str = "llp_k8s_kube_api_requests_total{verb=\"list\",resource=\"pods\"}";

/// The sum of the service's metrics whose line starts with `prefix`.
async fn counter(http: &reqwest::Client, url: &str, prefix: &str) -> u64 {
    metrics_sum(http, url, |line| line.starts_with(prefix)).await
}

/// The service's `/metrics`.
async fn metrics_text(http: &reqwest::Client, url: &str) -> String {
    http.get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The sum of the service's metrics whose line `pick` accepts.
async fn metrics_sum(http: &reqwest::Client, url: &str, pick: impl Fn(&str) -> bool) -> u64 {
    let text = metrics_text(http, url).await;
    text.lines()
        .filter(|l| pick(l))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A user's token and their records.
struct Owner {
    token: String,
    records: Vec<String>,
}

async fn put(http: &reqwest::Client, url: &str, owner: &Owner, id: &str) -> Duration {
    let sent = Instant::now();
    let response = http
        .put(format!("{url}/kubernetes/deployments/{id}"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    let took = sent.elapsed();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    took
}

async fn running_pods(http: &reqwest::Client, url: &str, token: &str, id: &str) -> usize {
    let status: Value = http
        .get(format!("{url}/kubernetes/deployments/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default();
    status["pods"]
        .as_array()
        .map_or(0, |pods| pods.iter().filter(|p| p["phase"] == "Running").count())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Deploys every record, then polls; prints the figures for `source`.
async fn measure(source: &str, service_pid: u32, url: &str, owners: &[Owner]) {
    let http = llp_api::client();
    let idle = rss_mib(service_pid);

    // One deploy, alone: its time, its API requests, and until its 4 pods run.
    let first = &owners[0];
    let before = api_requests(&http, url).await;
    let started = Instant::now();
    put(&http, url, first, &first.records[0]).await;
    let deploy_time = started.elapsed();
    let deploy_requests = api_requests(&http, url).await - before;
    while running_pods(&http, url, &first.token, &first.records[0]).await < 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let running_after = started.elapsed();
    println!(
        "[{source}] one deploy: {} and {deploy_requests} Kubernetes API requests; its 4 pods Running after {:.2} s",
        ms(deploy_time),
        running_after.as_secs_f64()
    );

    // The rest: the first 100 one at a time (each one's latency: a first deploy waits for the
    // watch cache to see its StatefulSet), then 16 at a time.
    let rest: Vec<(&Owner, &String)> = owners
        .iter()
        .flat_map(|o| o.records.iter().map(move |r| (o, r)))
        .skip(1)
        .collect();
    let alone = rest.len().min(100);
    let steps = deploy_steps(&http, url).await;
    let requests_before = api_requests(&http, url).await;
    let mut firsts = Vec::new();
    for (owner, id) in &rest[..alone] {
        firsts.push(put(&http, url, owner, id).await);
    }
    let first_requests = api_requests(&http, url).await - requests_before;
    let first_steps = step_means(&steps, &deploy_steps(&http, url).await);
    let (steps, requests_before) = (deploy_steps(&http, url).await, api_requests(&http, url).await);
    let mut agains = Vec::new();
    for (owner, id) in &rest[..alone] {
        agains.push(put(&http, url, owner, id).await);
    }
    let again_requests = api_requests(&http, url).await - requests_before;
    let again_steps = step_means(&steps, &deploy_steps(&http, url).await);
    println!(
        "[{source}] per deploy, one at a time: first {:.1} Kubernetes API requests, mean per step {first_steps}; again {:.1} requests, {again_steps}",
        first_requests as f64 / alone.max(1) as f64,
        again_requests as f64 / alone.max(1) as f64,
    );
    firsts.sort();
    agains.sort();
    println!(
        "[{source}] first deploys one at a time: p50 {}, p99 {}, max {} ({alone}); deploying them again: p50 {}, p99 {}",
        ms(percentile(&firsts, 0.50)),
        ms(percentile(&firsts, 0.99)),
        ms(firsts.last().copied().unwrap_or_default()),
        ms(percentile(&agains, 0.50)),
        ms(percentile(&agains, 0.99)),
    );
    let before = api_requests(&http, url).await;
    let started = Instant::now();
    for chunk in rest[alone..].chunks(16) {
        futures::future::join_all(chunk.iter().map(|(owner, id)| put(&http, url, owner, id))).await;
    }
    let took = started.elapsed();
    let requests = api_requests(&http, url).await - before;
    println!(
        "[{source}] {} more deploys, 16 at a time: {:.1} s, {requests} Kubernetes API requests ({:.1} per deploy); service resident memory now {:.0} MiB, at most {:.0} MiB so far",
        rest.len() - alone,
        took.as_secs_f64(),
        requests as f64 / (rest.len() - alone).max(1) as f64,
        rss_mib(service_pid),
        peak_rss_mib(service_pid)
    );
    let wanted = (rest.len() + 1) * 4;
    let deadline = Instant::now() + Duration::from_secs(300);
    let pod_lists = counter(&http, url, POD_LISTS).await;
    loop {
        let mut running = 0;
        for owner in owners {
            for id in &owner.records {
                running += running_pods(&http, url, &owner.token, id).await;
            }
        }
        if running >= wanted || Instant::now() > deadline {
            // A pod watch that falls behind the API server's history lists every pod again,
            // and the reflector holds both lists until the new one is whole.
            println!(
                "[{source}] {running} of {wanted} pods Running; service resident memory now {:.0} MiB, at most {:.0} MiB so far (the deploys and pod starts); pod list pages requested meanwhile: {} (0: no watch had to list again)",
                rss_mib(service_pid),
                peak_rss_mib(service_pid),
                counter(&http, url, POD_LISTS).await - pod_lists
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled = rss_mib(service_pid);
    // The same re-deploys once every pod runs: the simulator's controllers are idle, so what
    // is left is the service's own time.
    let mut idle_again = Vec::new();
    for (owner, id) in &rest[..alone] {
        idle_again.push(put(&http, url, owner, id).await);
    }
    idle_again.sort();
    println!(
        "[{source}] deploying them again once every pod runs: p50 {}, p99 {}, max {}",
        ms(percentile(&idle_again, 0.50)),
        ms(percentile(&idle_again, 0.99)),
        ms(idle_again.last().copied().unwrap_or_default()),
    );

    // The load: each client polls its owner's deployments in turn.
    let clients = env("BENCH_CLIENTS", 200);
    let seconds = env("BENCH_SECONDS", 20) as u64;
    let before = api_requests(&http, url).await;
    let watches_before = counter(&http, url, "llp_k8s_kube_api_requests_total{verb=\"watch\"").await;
    let llp_before = counter(&http, url, "llp_k8s_llp_api_requests_total{").await;
    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let peak = std::sync::Arc::new(std::sync::Mutex::new(0.0_f64));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            while Instant::now() < stop_at {
                let rss = rss_mib(service_pid);
                {
                    let mut peak = peak.lock().unwrap();
                    *peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    let cpu_before = cpu_seconds(service_pid);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let owner = &owners[i % owners.len()];
            let (http, token, records, url) =
                (http.clone(), owner.token.clone(), owner.records.clone(), url.to_owned());
            tokio::spawn(async move {
                let (mut latencies, mut errors, mut n) = (Vec::new(), 0_u64, i);
                while Instant::now() < stop_at {
                    let id = &records[n % records.len()];
                    n += 1;
                    let sent = Instant::now();
                    let ok = match http
                        .get(format!("{url}/kubernetes/deployments/{id}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                    {
                        Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    latencies.push(sent.elapsed());
                    errors += u64::from(!ok);
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds(service_pid) - cpu_before;
    sampler.await.unwrap();
    let during = api_requests(&http, url).await - before;
    latencies.sort();
    println!(
        "[{source}] status polling, {clients} clients for {seconds} s: {:.0} requests/s, p50 {}, p99 {}, max {}, {errors} errors of {}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len()
    );
    println!(
        "[{source}] service CPU per status request: {:.1} µs ({:.2} CPU-seconds for {} requests; the load generator shares the machine)",
        cpu * 1e6 / latencies.len().max(1) as f64,
        cpu,
        latencies.len()
    );
    let llp_during = counter(&http, url, "llp_k8s_llp_api_requests_total{").await - llp_before;
    let watches = counter(&http, url, "llp_k8s_kube_api_requests_total{verb=\"watch\"").await - watches_before;
    println!(
        "[{source}] Kubernetes API requests during the polling: {during} ({watches} of them the caches' watches renewed, {} others); LLP API requests: {llp_during}",
        during - watches
    );
    println!(
        "[{source}] service resident memory: {idle:.0} MiB idle before deploying, {settled:.0} MiB with {} deployments cached, {:.0} MiB peak under load",
        rest.len() + 1,
        *peak.lock().unwrap()
    );
    wrk(source, service_pid, url, first).await;
}

/// With `wrk` on the PATH (Debian's package), the same polling from an external load generator:
/// `wrk -t2 -c200` on one deployment's status, with the service's CPU per request; then the
/// same against the floor server answering that status document from memory, and the ratio.
async fn wrk(source: &str, service_pid: u32, url: &str, owner: &Owner) {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("[{source}] wrk: not installed (apt-get install wrk), skipped");
        return;
    }
    let id = &owner.records[0];
    let http = llp_api::client();
    // The bench clients' last refreshes may still be queued at the LLP API, which shares the
    // cores: wait until it has had nothing to do for a second (at most 30 s).
    let quiet_by = Instant::now() + Duration::from_secs(30);
    let mut llp_requests = counter(&http, url, "llp_k8s_llp_api_requests_total{").await;
    while Instant::now() < quiet_by {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = counter(&http, url, "llp_k8s_llp_api_requests_total{").await;
        if now == llp_requests {
            break;
        }
        llp_requests = now;
    }
    let waited = |cache: &'static str| {
        let http = http.clone();
        async move {
            let prefix = format!("llp_k8s_llp_cache_lookups_total{{cache=\"{cache}\",answer=\"waited\"}}");
            counter(&http, url, &prefix).await
        }
    };
    let llp_before = counter(&http, url, "llp_k8s_llp_api_requests_total{").await;
    let before = (
        waited("identities").await,
        waited("records").await,
        slow_llp_requests(&http, url).await,
    );
    let busy_before = machine_busy_seconds();
    let service_before = cpu_seconds(service_pid);
    let service = wrk_run(source, "llp-k8s", service_pid, url, &owner.token, id).await;
    let busy = machine_busy_seconds() - busy_before;
    let service_busy = cpu_seconds(service_pid) - service_before;
    let after = (
        waited("identities").await,
        waited("records").await,
        slow_llp_requests(&http, url).await,
    );
    let llp_during = counter(&http, url, "llp_k8s_llp_api_requests_total{").await - llp_before;
    // Polls that waited for the LLP API carry its latency; with refresh-ahead there should be
    // none. What else ran meanwhile (wrk itself, the LLP API, the simulator) shares the cores.
    let llp = if source.contains("directus") {
        format!(
            "{} polls waited for an identity and {} for a record from the LLP API; {llp_during} LLP API requests (refreshes), {} of them over 100 ms; ",
            after.0 - before.0,
            after.1 - before.1,
            after.2 - before.2
        )
    } else {
        String::new()
    };
    println!(
        "[{source}] during that wrk run: {llp}CPU-seconds: llp-k8s {service_busy:.1}, everything else {:.1} (wrk, the LLP API, the simulator)",
        busy - service_busy
    );
    let status = llp_api::client()
        .get(format!("{url}/kubernetes/deployments/{id}"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (floor, floor_url) = start_floor(&status);
    let floor_cpu = wrk_run(source, "the floor", floor.0.id(), &floor_url, &owner.token, id).await;
    println!(
        "[{source}] CPU per status poll: llp-k8s {service:.1} µs, floor {floor_cpu:.1} µs ({} bytes from memory): {:.1}x the floor",
        status.len(),
        service / floor_cpu.max(0.001)
    );
}

/// How many LLP API requests have taken over 100 ms (from the service's histogram).
async fn slow_llp_requests(http: &reqwest::Client, url: &str) -> u64 {
    let all = counter(http, url, "llp_k8s_llp_api_request_duration_seconds_count").await;
    let fast = metrics_sum(http, url, |l| {
        l.starts_with("llp_k8s_llp_api_request_duration_seconds_bucket") && l.contains("le=\"0.1\"")
    })
    .await;
    all.saturating_sub(fast)
}

/// One `wrk` run against `url` (served by process `pid`); prints its figures and returns the
/// CPU per request in µs.
async fn wrk_run(source: &str, what: &str, pid: u32, url: &str, token: &str, id: &str) -> f64 {
    let seconds = env("BENCH_SECONDS", 20);
    let clients = env("BENCH_CLIENTS", 200);
    let cpu_before = cpu_seconds(pid);
    let out = tokio::task::spawn_blocking({
        let (url, token, id) = (url.to_owned(), token.to_owned(), id.to_owned());
        move || {
            Command::new("wrk")
                .args([
                    "-t2",
                    &format!("-c{clients}"),
                    &format!("-d{seconds}s"),
                    "--latency",
                    "-H",
                ])
                .arg(format!("Authorization: Bearer {token}"))
                .arg(format!("{url}/kubernetes/deployments/{id}"))
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let cpu = cpu_seconds(pid) - cpu_before;
    let text = String::from_utf8_lossy(&out.stdout);
    let pick = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let requests: f64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let per_request = cpu * 1e6 / requests.max(1.0);
    println!(
        "[{source}] wrk -t2 -c{clients} -d{seconds}s on {what}: {}; latency {}, {}; CPU per request {per_request:.1} µs; {}",
        pick("Requests/sec"),
        pick("50%"),
        pick("99%"),
        pick("Non-2xx").if_empty("no errors")
    );
    per_request
}

trait IfEmpty {
    fn if_empty(self, other: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, other: &str) -> String {
        if self.is_empty() { other.to_owned() } else { self }
    }
}

fn deployments_per_user() -> usize {
    env("BENCH_DEPLOYMENTS", 500).div_ceil(USERS)
}

async fn embedded(dir: &std::path::Path) {
    let (_cluster, kubeconfig) = start_cluster();
    let db = dir.join("records.sqlite");
    let tokens: Vec<String> = (0..USERS)
        .map(|i| {
            let out = Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
                .args(["users", "add", &format!("user{i}"), "--db"])
                .arg(&db)
                .output()
                .unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .collect();
    let records = format!("[records]\nsource = \"embedded\"\ndatabase = \"{}\"", db.display());
    let (service, url) = start_service(dir, &kubeconfig, &records).await;
    let http = llp_api::client();
    let mut owners = Vec::new();
    for token in tokens {
        let mut ids = Vec::new();
        for n in 0..deployments_per_user() {
            let body: Value = http
                .post(format!("{url}/items/deployments"))
                .bearer_auth(&token)
                .json(&json!({"title": format!("bench {n}"), "data": RECORD_YAML}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            ids.push(body["data"]["id"].as_str().unwrap().to_owned());
        }
        owners.push(Owner { token, records: ids });
    }
    measure(&label("embedded"), service.0.id(), &url, &owners).await;
    streams::measure(&label("embedded"), service.0.id(), &url, &owners, &kubeconfig).await;
    drop(service);
    restarted(dir, &kubeconfig, &records, &label("embedded"), &owners).await;
}

/// The service started again on the cluster as the run left it: how long until it is ready
/// (every watch cache holds its first full list), its memory then, and its first status
/// answers (from the caches, not from the cluster).
async fn restarted(dir: &std::path::Path, kubeconfig: &str, records: &str, source: &str, owners: &[Owner]) {
    let started = Instant::now();
    let (service, url) = start_service(dir, kubeconfig, records).await;
    let ready = started.elapsed();
    let (rss, peak) = (rss_mib(service.0.id()), peak_rss_mib(service.0.id()));
    let http = llp_api::client();
    let before = api_requests(&http, &url).await;
    let owner = &owners[0];
    let running = running_pods(&http, &url, &owner.token, &owner.records[0]).await;
    let after = api_requests(&http, &url).await - before;
    let deployments: usize = owners.iter().map(|o| o.records.len()).sum();
    println!(
        "[{source}] restarted with {deployments} deployments in the cluster: ready (caches synced) after {:.2} s, {rss:.0} MiB resident (at most {peak:.0} MiB while listing); a status then: {running} pods Running, {after} Kubernetes API requests",
        ready.as_secs_f64()
    );
}

async fn directus(dir: &std::path::Path) {
    let api = llp_api::llp_api();
    let (_cluster, kubeconfig) = start_cluster();
    let mut owners = Vec::new();
    for i in 0..USERS {
        let token = api.add_user(&format!("user{i}"), llp_api::Role::Student).await;
        let mut ids = Vec::new();
        for n in 0..deployments_per_user() {
            ids.push(
                api.create_record(&token, json!({"title": format!("bench {n}"), "data": RECORD_YAML}))
                    .await,
            );
        }
        owners.push(Owner { token, records: ids });
    }
    // Identities and records expire every few seconds, so the polling runs through expiries
    // (with refresh-ahead and single flight they should not show in the tail).
    let records = format!(
        "[records]\nsource = \"directus\"\n[records.directus]\nurl = \"{}\"\nidentity_cache_seconds = {}",
        api.url,
        env("BENCH_IDENTITY_SECONDS", 5)
    );
    let (service, url) = start_service(dir, &kubeconfig, &records).await;
    measure(&label("directus"), service.0.id(), &url, &owners).await;
    drop(service);
    restarted(dir, &kubeconfig, &records, &label("directus"), &owners).await;
}

#[tokio::main]
async fn main() {
    if std::env::var_os("LLP_SERVICE_BENCH_FLOOR").is_some() {
        return serve_floor().await;
    }
    if std::env::var_os("LLP_SERVICE_BENCH_SIM").is_some() {
        return serve_simulator().await;
    }
    let deployments = deployments_per_user() * USERS;
    println!(
        "llp-k8s service benchmark: {deployments} deployments x 4 pods ({USERS} users), {} clients polling for {} s",
        env("BENCH_CLIENTS", 200),
        env("BENCH_SECONDS", 20)
    );
    let sources = std::env::var("BENCH_SOURCES").unwrap_or_else(|_| "embedded,directus".into());
    for source in sources.split(',') {
        let dir = std::env::temp_dir().join(format!("llp-service-bench-{}-{source}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        match source.trim() {
            "embedded" => embedded(&dir).await,
            "directus" => directus(&dir).await,
            other => panic!("BENCH_SOURCES: unknown source `{other}`"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
