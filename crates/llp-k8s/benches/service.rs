//! The service under load: `cargo bench -p llp-k8s --bench service`.
//!
//! Three processes, so that each one's memory is its own: the simulator (this binary
//! re-executed), the service (`llp-k8s serve`, the real binary and configuration path) and
//! this load generator. For each record source (embedded SQLite, then a real Directus as the
//! LLP API) it deploys BENCH_DEPLOYMENTS records of 4 pods owned by 20 users, then has
//! BENCH_CLIENTS clients poll their deployments' status for BENCH_SECONDS seconds, and prints
//! requests per second, latency percentiles, the Kubernetes API requests the service made
//! (from its own `/metrics`), the time and API requests of one deploy, and the service's
//! resident memory idle and under load. BENCH_SOURCES picks the sources (`embedded,directus`);
//! BENCH_CLUSTER the cluster: `simulator` (default) or `kubernetes`, the real control plane of
//! llp-testbed (kube-apiserver, controllers, scheduler, kwok nodes; started in this process).

#[path = "../tests/support/llp_api.rs"]
mod llp_api;

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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// A child process killed when dropped (also when the benchmark panics).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The simulator, in this binary re-executed: big nodes, so 2,000 pods fit.
async fn serve_simulator() {
    let mut cluster = llp_sim::ClusterSpec::default();
    for node in &mut cluster.nodes {
        node.cpu = 10_000;
        node.memory_gi = 100_000;
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
    std::fs::write(&config, format!("listen = \"127.0.0.1:{port}\"\n{records}\n")).unwrap();
    let log = std::fs::File::create(dir.join("service.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("KUBECONFIG", kubeconfig)
        .env("LLP_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let ready = llp_api::answers_ok(&format!("{url}/readyz"), Duration::from_secs(30)).await;
    assert!(ready, "the service did not get ready: see {}", dir.display());
    (Running(child), url)
}

/// The Kubernetes API requests the service has made, from its `/metrics`.
async fn api_requests(http: &reqwest::Client, url: &str) -> u64 {
    counter(http, url, "llp_k8s_kube_api_requests_total{").await
}

/// The sum of a counter family of the service's `/metrics`.
async fn counter(http: &reqwest::Client, url: &str, prefix: &str) -> u64 {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A user's token and their records.
struct Owner {
    token: String,
    records: Vec<String>,
}

async fn put(http: &reqwest::Client, url: &str, owner: &Owner, id: &str) {
    let response = http
        .put(format!("{url}/kubernetes/deployments/{id}"))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
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

    // The rest, 16 at a time.
    let rest: Vec<(&Owner, &String)> = owners
        .iter()
        .flat_map(|o| o.records.iter().map(move |r| (o, r)))
        .skip(1)
        .collect();
    let before = api_requests(&http, url).await;
    let started = Instant::now();
    for chunk in rest.chunks(16) {
        futures::future::join_all(chunk.iter().map(|(owner, id)| put(&http, url, owner, id))).await;
    }
    let took = started.elapsed();
    let requests = api_requests(&http, url).await - before;
    println!(
        "[{source}] {} more deploys, 16 at a time: {:.1} s, {requests} Kubernetes API requests ({:.1} per deploy)",
        rest.len(),
        took.as_secs_f64(),
        requests as f64 / rest.len().max(1) as f64
    );
    let wanted = (rest.len() + 1) * 4;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut running = 0;
        for owner in owners {
            for id in &owner.records {
                running += running_pods(&http, url, &owner.token, id).await;
            }
        }
        if running >= wanted || Instant::now() > deadline {
            println!("[{source}] {running} of {wanted} pods Running");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled = rss_mib(service_pid);

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
    let records = format!(
        "[records]\nsource = \"directus\"\n[records.directus]\nurl = \"{}\"",
        api.url
    );
    let (service, url) = start_service(dir, &kubeconfig, &records).await;
    measure(&label("directus"), service.0.id(), &url, &owners).await;
}

#[tokio::main]
async fn main() {
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
