//! GPU usage: the accountant writes what pods hold, from the pods' own times, once however
//! many instances look and whoever leads; `/kubernetes/usage` reports it to its owner (and to
//! admins), by user, deployment, profile or booking, as JSON or CSV.

use crate::helpers::*;
use axum::http::StatusCode;
use jiff::Timestamp;
use llp_k8s::records::UsageStore;
use llp_k8s::usage::accountant::Accountant;
use llp_spec::usage::Hold;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const SMALL_GPU: &str = "containers: [{name: train, image: trainer, cpu: 1, memory: 1, gpu: nvidia.com/mig-1g.10gb}]";

fn store(app: &TestApp) -> Arc<dyn UsageStore> {
    app.state.usage.store.clone().expect("the embedded store keeps usage")
}

fn accountant(app: &TestApp, holder: &str) -> Accountant {
    Accountant::new(
        store(app),
        app.cluster().clone(),
        holder,
        // A lease lasts three rounds, in whole seconds.
        Duration::from_secs(1),
        app.state.metrics.gpu_seconds(),
    )
}

/// Deletes alice's deployment `id` and waits until the watch no longer shows its `pod`.
async fn delete_until_gone(app: &TestApp, id: &str, pod: &str) {
    let (status, _) = app
        .call("DELETE", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let gone = app
        .cluster()
        .caches
        .wait_for(Duration::from_secs(20), |caches| {
            caches
                .pods
                .state()
                .iter()
                .all(|p| p.metadata.name.as_deref() != Some(pod))
        })
        .await;
    assert!(gone, "the pod is gone");
}

async fn usage(app: &TestApp, token: &str, query: &str) -> Value {
    let (status, body) = app
        .call("GET", &format!("/kubernetes/usage?{query}"), token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn gpu_seconds(report: &Value, key: &str) -> f64 {
    report["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .map_or(0.0, |r| r["gpuSeconds"].as_f64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_pod_is_counted_from_its_own_start_to_its_end_once_whoever_looks() {
    let app = app_with_cluster().await;
    app.book_today(&app.alice, &["gpu-xs"]).await;
    let (id, pod) = app.running(json!({"title": "train", "data": SMALL_GPU})).await;
    // The pod runs a while with no accountant (the service down).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = app
        .cluster()
        .caches
        .pods
        .state()
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(&pod))
        .unwrap()
        .status
        .start_time
        .unwrap();

    let (first, second) = (accountant(&app, "first"), accountant(&app, "second"));
    let round = first
        .round(Timestamp::now())
        .await
        .unwrap()
        .expect("the first takes the lease");
    assert_eq!((round.seen, round.ended), (1, 0));
    assert_eq!(
        second.round(Timestamp::now()).await.unwrap(),
        None,
        "one accountant at a time"
    );
    let open = store(&app).open_holds().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].start, open[0].count, open[0].deployment.as_str()),
        (started, 1, id.as_str()),
        "from the pod's own start"
    );

    // The first stops renewing; once its lease has run out the second takes over and writes
    // the same hold again.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    // Stored to the microsecond.
    let handover = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap();
    assert!(
        second.round(handover).await.unwrap().is_some(),
        "the lease expired: a handover"
    );
    let alice = app.user_id(&app.alice);
    let running = usage(&app, &app.alice, "by=user").await;
    let used = gpu_seconds(&running, &alice);
    let elapsed = Timestamp::now().duration_since(started).as_secs_f64();
    assert!(used >= 4.5 && used <= elapsed + 0.1, "{used} of {elapsed} s");

    // The leader's next look adds what was held since its last to the counter.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last_look = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap();
    second.round(last_look).await.unwrap().unwrap();

    // Deleted: the pod's hold ends at the last look that saw it, and stays as it is.
    delete_until_gone(&app, &id, &pod).await;
    let round = second.round(Timestamp::now()).await.unwrap().unwrap();
    assert_eq!((round.seen, round.ended), (0, 1));
    let ended = usage(&app, &app.alice, "by=user").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    second.round(Timestamp::now()).await.unwrap();
    let later = usage(&app, &app.alice, "by=user").await;
    assert_eq!(
        gpu_seconds(&ended, &alice),
        gpu_seconds(&later, &alice),
        "an ended hold accrues no more"
    );
    let all = store(&app)
        .holds_between(Timestamp::UNIX_EPOCH, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "written by two accountants, counted once: {all:?}");
    assert_eq!(
        all[0].end,
        Some(last_look),
        "a pod that went away ends at the last look that saw it"
    );
    let held = last_look.duration_since(started).as_secs_f64();
    assert!(
        (gpu_seconds(&later, &alice) - held).abs() < 0.01,
        "{} vs {held}",
        gpu_seconds(&later, &alice)
    );

    // Prometheus: per profile, no user ids.
    let (_, metrics) = app.raw("GET", "/metrics", "").await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("llp_k8s_gpu_seconds_total{profile=\"gpu-xs\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    let counted = line.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    let between = last_look.duration_since(handover).as_secs_f64();
    assert!(
        (counted - between).abs() < 0.01,
        "the leader counts from its first look: {line}, {between}"
    );
}

fn hold(uid: &str, owner: &str, deployment: &str, (start, end): (&str, &str)) -> Hold {
    Hold {
        pod_uid: uid.into(),
        pod: format!("sd-{deployment}-0"),
        deployment: deployment.into(),
        owner: llp_spec::names::label_value(owner),
        gpu: llp_spec::spec::Gpu::Mig1g10gb,
        count: 1,
        start: start.parse().unwrap(),
        end: Some(end.parse().unwrap()),
        seen: end.parse().unwrap(),
    }
}

#[tokio::test]
async fn each_user_reads_their_own_usage_and_admins_everyones_as_json_or_csv() {
    let app = app();
    let (alice, bob) = (app.user_id(&app.alice), app.user_id(&app.bob));
    store(&app)
        .record(&[
            hold("a", &alice, "1", ("2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z")),
            hold("b", &alice, "2", ("2026-11-02T10:00:00Z", "2026-11-02T10:30:00Z")),
            hold("c", &bob, "3", ("2026-11-02T10:00:00Z", "2026-11-02T12:00:00Z")),
        ])
        .await
        .unwrap();
    let window = "from=2026-11-01&to=2026-11-03";
    let mine = usage(&app, &app.alice, &format!("{window}&by=user")).await;
    assert_eq!(
        mine["data"],
        json!([{"key": alice, "gpuSeconds": 5400.0}]),
        "alice's only"
    );
    let all = usage(&app, &app.admin, &format!("{window}&by=user")).await;
    assert_eq!((gpu_seconds(&all, &alice), gpu_seconds(&all, &bob)), (5400.0, 7200.0));
    let by_deployment = usage(&app, &app.bob, &format!("{window}&by=deployment")).await;
    assert_eq!(by_deployment["data"], json!([{"key": "3", "gpuSeconds": 7200.0}]));
    let by_profile = usage(&app, &app.admin, &format!("{window}&by=profile")).await;
    assert_eq!(by_profile["data"], json!([{"key": "gpu-xs", "gpuSeconds": 12600.0}]));
    // Cut to the window.
    let cut = usage(&app, &app.alice, "from=2026-11-02T10:15:00Z&to=2026-11-02T10:45:00Z").await;
    assert_eq!(gpu_seconds(&cut, &alice), 2700.0);

    // Booked against used: "booked 4 GPU-hours, used 1.5".
    let booking = app
        .book(
            &app.alice,
            &["gpu-xs"],
            None,
            "2026-11-02T08:00:00Z",
            "2026-11-02T12:00:00Z",
        )
        .await;
    let by_booking = usage(&app, &app.alice, &format!("{window}&by=booking")).await;
    let rows = by_booking["data"].as_array().unwrap();
    let row = rows.iter().find(|r| r["key"] == booking.as_str()).unwrap();
    assert_eq!(
        (row["gpuSeconds"].as_f64(), row["bookedSeconds"].as_f64()),
        (Some(3600.0), Some(14400.0))
    );
    let unbooked = rows.iter().find(|r| r["key"].is_null()).unwrap();
    assert_eq!(
        unbooked["gpuSeconds"], 1800.0,
        "one GPU booked, two used for half an hour"
    );
    let bobs = usage(&app, &app.bob, &format!("{window}&by=booking")).await;
    assert!(
        bobs["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["key"] != booking.as_str()),
        "not bob's booking: {bobs}"
    );

    // CSV for a spreadsheet.
    let request = axum::http::Request::builder()
        .uri(format!("/kubernetes/usage?{window}&by=deployment"))
        .header("authorization", format!("Bearer {}", app.admin))
        .header("accept", "text/csv")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(llp_k8s::http::router(app.state.clone()), request)
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert_eq!(
        text,
        "deployment,gpuSeconds,bookedSeconds,wattHours\n\"1\",3600,,\n\"2\",1800,,\n\"3\",7200,,\n"
    );

    // Bad input names its field; no token is a 401.
    for (query, field) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("by=team", "by"),
        ("from=2026-11-03&to=2026-11-01", "from"),
    ] {
        let (status, body) = app
            .call("GET", &format!("/kubernetes/usage?{query}"), &app.alice, None)
            .await;
        assert_eq!(
            (status, body["errors"][0]["extensions"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{query}: {body}"
        );
    }
    let (status, _) = app.call("GET", "/kubernetes/usage", "", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Power drawn: per pod, spans `[from, to)` of constant watts.
type Drawn = Vec<(&'static str, Vec<(&'static str, &'static str, f64)>)>;

/// A Prometheus HTTP API that answers range queries as Prometheus does: a sample of each pod
/// at every `step` from `start` to `end` where `drawn` has power; its base URL, and the
/// queries it was asked.
async fn fake_prometheus(drawn: Drawn) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let router = axum::Router::new().route(
        "/api/v1/query_range",
        axum::routing::get({
            let asked = asked.clone();
            move |axum::extract::RawQuery(query): axum::extract::RawQuery| {
                let query = query.unwrap_or_default();
                asked.lock().unwrap().push(query.clone());
                let params: std::collections::HashMap<String, String> = url_pairs(&query).into_iter().collect();
                let (start, end): (i64, i64) = (params["start"].parse().unwrap(), params["end"].parse().unwrap());
                let step: i64 = params["step"].trim_end_matches('s').parse().unwrap();
                let result: Vec<Value> = drawn
                    .iter()
                    .map(|(pod, spans)| {
                        let values: Vec<Value> = (0..)
                            .map(|n| start + n * step)
                            .take_while(|t| *t <= end)
                            .filter_map(|t| {
                                let watts = spans.iter().find_map(|(from, to, watts)| {
                                    let (from, to) =
                                        (from.parse::<Timestamp>().unwrap(), to.parse::<Timestamp>().unwrap());
                                    (from.as_second() <= t && t < to.as_second()).then_some(*watts)
                                })?;
                                Some(json!([t, watts.to_string()]))
                            })
                            .collect();
                        json!({"metric": {"pod": pod}, "values": values})
                    })
                    .collect();
                let body = json!({"status": "success", "data": {"resultType": "matrix", "result": result}});
                async move { axum::Json(body) }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, asked)
}

#[tokio::test]
async fn with_the_labs_prometheus_rows_add_the_energy_the_gpus_drew() {
    let mut app = app();
    let (alice, bob) = (app.user_id(&app.alice), app.user_id(&app.bob));
    store(&app)
        .record(&[
            hold("a", &alice, "1", ("2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z")),
            hold("c", &bob, "3", ("2026-11-02T10:00:00Z", "2026-11-02T12:00:00Z")),
        ])
        .await
        .unwrap();
    // Alice's pod drew 300 W for its hour; its name ran again later at 999 W (not hers then);
    // bob's 100 W for two hours.
    let (url, asked) = fake_prometheus(vec![
        (
            "sd-1-0",
            vec![
                ("2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z", 300.0),
                ("2026-11-02T11:30:00Z", "2026-11-02T12:00:00Z", 999.0),
            ],
        ),
        ("sd-3-0", vec![("2026-11-02T10:00:00Z", "2026-11-02T12:00:00Z", 100.0)]),
    ])
    .await;
    let settings = llp_k8s::usage::energy::EnergySettings {
        prometheus_url: url,
        ..Default::default()
    };
    app.state.usage.energy = llp_k8s::usage::energy::Prometheus::new(settings).map(Arc::new);
    let window = "from=2026-11-02&to=2026-11-03";
    let all = usage(&app, &app.admin, &format!("{window}&by=user")).await;
    let energy = |key: &str| {
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .unwrap()["wattHours"]
            .as_f64()
            .unwrap()
    };
    assert!((energy(&alice) - 300.0).abs() < 1e-6, "{all}");
    assert!((energy(&bob) - 200.0).abs() < 1e-6, "{all}");
    let query = asked.lock().unwrap()[0].clone();
    let query: Vec<(String, String)> = url_pairs(&query);
    assert_eq!(
        query[0],
        (
            "query".into(),
            "sum by (pod) (DCGM_FI_DEV_POWER_USAGE{namespace=\"services\"})".into()
        )
    );
    let mine = usage(&app, &app.alice, &format!("{window}&by=deployment")).await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 1, "alice's only: {mine}");
    let by_booking = usage(&app, &app.admin, &format!("{window}&by=booking")).await;
    assert!(
        by_booking["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("wattHours").is_none()),
        "{by_booking}"
    );

    // Prometheus gone: the rows without energy, saying why.
    let settings = llp_k8s::usage::energy::EnergySettings {
        prometheus_url: "http://127.0.0.1:9".into(),
        ..Default::default()
    };
    app.state.usage.energy = llp_k8s::usage::energy::Prometheus::new(settings).map(Arc::new);
    let without = usage(&app, &app.admin, &format!("{window}&by=user")).await;
    assert_eq!(gpu_seconds(&without, &alice), 3600.0);
    assert!(without["data"][0].get("wattHours").is_none(), "{without}");
    assert!(
        without["energy"]
            .as_str()
            .unwrap()
            .contains("Prometheus at http://127.0.0.1:9"),
        "{without}"
    );
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// A usage store that counts the reads of its open holds.
struct CountingReads {
    inner: Arc<dyn UsageStore>,
    reads: std::sync::atomic::AtomicUsize,
}

impl UsageStore for CountingReads {
    fn record<'a>(
        &'a self,
        holds: &'a [Hold],
    ) -> futures::future::BoxFuture<'a, Result<(), llp_k8s::records::RecordError>> {
        self.inner.record(holds)
    }

    fn open_holds(&self) -> futures::future::BoxFuture<'_, Result<Vec<Hold>, llp_k8s::records::RecordError>> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.open_holds()
    }

    fn holds_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> futures::future::BoxFuture<'_, Result<Vec<Hold>, llp_k8s::records::RecordError>> {
        self.inner.holds_between(from, to)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leading_accountant_reads_the_open_holds_once_and_still_ends_a_hold_whose_pod_went() {
    let app = app_with_cluster().await;
    app.book_today(&app.alice, &["gpu-xs"]).await;
    let (id, pod) = app.running(json!({"title": "train", "data": SMALL_GPU})).await;
    let counting = Arc::new(CountingReads {
        inner: store(&app),
        reads: Default::default(),
    });
    let leader = Accountant::new(
        counting.clone(),
        app.cluster().clone(),
        "leader",
        Duration::from_secs(1),
        app.state.metrics.gpu_seconds(),
    );
    for _ in 0..3 {
        let round = leader.round(Timestamp::now()).await.unwrap().expect("it leads");
        assert_eq!((round.seen, round.ended), (1, 0));
    }
    let reads = || counting.reads.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(reads(), 1, "read when it took the lease, remembered since");
    delete_until_gone(&app, &id, &pod).await;
    let round = leader.round(Timestamp::now()).await.unwrap().unwrap();
    assert_eq!((round.seen, round.ended), (0, 1), "ended from what it remembered");
    assert_eq!(reads(), 1);
    assert!(store(&app).open_holds().await.unwrap().is_empty());
}
