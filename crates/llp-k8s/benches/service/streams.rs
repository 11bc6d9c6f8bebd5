//! Status streams under load (issue 25): BENCH_STREAMS (1,000) streams open at once, ten to a
//! deployment; the service's memory per open stream; and, for BENCH_STREAM_EVENTS (200)
//! events this benchmark writes for the followed pods, the time from the event reaching a
//! watch (this process's own, beside the service's) to its frame arriving on each stream
//! that follows the pod (p50, p99), and from its create. The service should make no
//! Kubernetes API request meanwhile.

use super::{Owner, env, metrics_sum, ms, percentile, rss_mib};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When each note arrived, by note: at the bench's watch, or on the streams.
type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// A followed deployment: its owner's token, its id and one of its pods.
struct Followed {
    token: String,
    id: String,
    pod: String,
}

pub async fn measure(source: &str, service_pid: u32, url: &str, owners: &[Owner], kubeconfig: &str) {
    let count = env("BENCH_STREAMS", 1000);
    if count == 0 {
        return;
    }
    let http = reqwest::Client::new();
    let deployments = count.div_ceil(10);
    let mut followed = Vec::new();
    'owners: for n in 0.. {
        for owner in owners {
            if followed.len() == deployments {
                break 'owners;
            }
            let Some(id) = owner.records.get(n) else { break 'owners };
            let status: Value = http
                .get(format!("{url}/kubernetes/deployments/{id}"))
                .bearer_auth(&owner.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let pod = status["pods"][0]["name"].as_str().unwrap().to_owned();
            followed.push(Followed {
                token: owner.token.clone(),
                id: id.clone(),
                pod,
            });
        }
    }

    let before = rss_mib(service_pid);
    let frames: Arrivals = Arc::default();
    let (opened, mut open) = tokio::sync::mpsc::channel(count);
    let streams: Vec<_> = (0..count)
        .map(|i| {
            let target = &followed[i % followed.len()];
            let request = http
                .get(format!("{url}/kubernetes/deployments/{}/stream", target.id))
                .bearer_auth(&target.token);
            let (frames, opened) = (frames.clone(), opened.clone());
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                let mut body = response.bytes_stream();
                let mut told_open = false;
                let mut buffer = String::new();
                while let Some(chunk) = body.next().await {
                    let Ok(chunk) = chunk else { return };
                    let now = Instant::now();
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buffer.find("\n\n") {
                        let frame: String = buffer.drain(..end + 2).collect();
                        if !told_open && frame.contains("event: status") {
                            told_open = true;
                            let _ = opened.send(()).await;
                        }
                        if let Some(note) = bench_note(&frame) {
                            frames.lock().unwrap().entry(note).or_default().push(now);
                        }
                    }
                }
            })
        })
        .collect();
    for _ in 0..count {
        tokio::time::timeout(Duration::from_secs(120), open.recv())
            .await
            .expect("every stream opens within 2 minutes");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_mib(service_pid);

    // This process's own watch of the pods' events, as the service's is.
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let events: Api<Event> = Api::namespaced(client, "services");
    let watched: Arrivals = Arc::default();
    let (ready, mut listed) = tokio::sync::mpsc::channel(1);
    let watch = {
        let (events, watched) = (events.clone(), watched.clone());
        tokio::spawn(async move {
            let config = watcher::Config::default().fields("involvedObject.kind=Pod");
            let mut stream = std::pin::pin!(watcher(events, config));
            while let Some(event) = stream.next().await {
                let now = Instant::now();
                match event {
                    Ok(watcher::Event::InitDone) => {
                        let _ = ready.send(()).await;
                    }
                    Ok(watcher::Event::Apply(e)) => {
                        if let Some(note) = e.message.filter(|m| m.starts_with("llp-bench-")) {
                            watched.lock().unwrap().entry(note).or_default().push(now);
                        }
                    }
                    _ => {}
                }
            }
        })
    };
    listed.recv().await.unwrap();

    let rounds = env("BENCH_STREAM_EVENTS", 200);
    let requests_before = requests_but_probes(&http, url).await;
    let kinds_before = requests_by_kind(&http, url).await;
    let mut created = HashMap::new();
    for round in 0..rounds {
        let target = &followed[round % followed.len()];
        let note = format!("llp-bench-{}-{round}", std::process::id());
        let now = jiff::Timestamp::now().to_string();
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": format!("{}.{note}", target.pod)},
            "involvedObject": {"kind": "Pod", "name": target.pod, "namespace": "services", "apiVersion": "v1"},
            "reason": "Bench", "message": note, "type": "Normal", "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": "llp-k8s-bench"},
        }))
        .unwrap();
        created.insert(note, Instant::now());
        events.create(&PostParams::default(), &event).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every stream of a deployment gets each of its events.
    let per_deployment = |round: usize| {
        (0..count)
            .filter(|i| i % followed.len() == round % followed.len())
            .count()
    };
    let expected: usize = (0..rounds).map(per_deployment).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    while frames.lock().unwrap().values().map(Vec::len).sum::<usize>() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requests = requests_but_probes(&http, url).await - requests_before;
    // Which they were: periodic work of the service (leader leases), not the streams'.
    let which: Vec<String> = requests_by_kind(&http, url)
        .await
        .into_iter()
        .filter_map(|(kind, n)| {
            let more = n - kinds_before.get(&kind).copied().unwrap_or(0);
            (more > 0).then(|| format!("{kind}: {more}"))
        })
        .collect();

    let (frames, watched) = (frames.lock().unwrap().clone(), watched.lock().unwrap().clone());
    let (mut from_watch, mut from_create, mut ahead) = (Vec::new(), Vec::new(), 0);
    for (note, arrivals) in &frames {
        let Some(seen) = watched.get(note).and_then(|t| t.first()) else {
            continue;
        };
        for arrived in arrivals {
            if arrived < seen {
                ahead += 1;
            }
            from_watch.push(arrived.saturating_duration_since(*seen));
            from_create.push(arrived.saturating_duration_since(created[note]));
        }
    }
    from_watch.sort();
    from_create.sort();
    println!(
        "[{source}] {count} status streams open over {} deployments: {:.1} KiB of service memory per stream ({before:.0} MiB before, {after:.0} MiB with them open)",
        followed.len(),
        (after - before) * 1024.0 / count as f64
    );
    println!(
        "[{source}] a pod event to its frames ({} of {expected} frames arrived, {rounds} events): after the event reached a watch p50 {}, p99 {}, max {} ({ahead} frames came first); after its create p50 {}, p99 {}; Kubernetes API requests of the service meanwhile, besides its health probes: {requests} ({})",
        from_watch.len(),
        ms(percentile(&from_watch, 0.50)),
        ms(percentile(&from_watch, 0.99)),
        ms(from_watch.last().copied().unwrap_or_default()),
        ms(percentile(&from_create, 0.50)),
        ms(percentile(&from_create, 0.99)),
        which.join(", "),
    );
    watch.abort();
    streams.iter().for_each(tokio::task::JoinHandle::abort);
}

/// The note of a bench event in an SSE `event` frame.
fn bench_note(frame: &str) -> Option<String> {
    if !frame.contains("event: event") {
        return None;
    }
    let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
    let value: Value = serde_json::from_str(data).ok()?;
    value["note"]
        .as_str()
        .filter(|n| n.starts_with("llp-bench-"))
        .map(str::to_owned)
}

/// The service's Kubernetes API requests but its health probes (`GET /version` every 5 s).
/// The service's Kubernetes API requests so far by kind (the counter's labels).
async fn requests_by_kind(http: &reqwest::Client, url: &str) -> std::collections::BTreeMap<String, u64> {
    let text = super::metrics_text(http, url).await;
    text.lines()
        .filter_map(|line| line.strip_prefix("llp_k8s_kube_api_requests_total{"))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once("} ")?;
            Some((labels.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn requests_but_probes(http: &reqwest::Client, url: &str) -> u64 {
    metrics_sum(http, url, |l| {
        l.starts_with("llp_k8s_kube_api_requests_total{") && !l.contains("resource=\"discovery\"")
    })
    .await
}
