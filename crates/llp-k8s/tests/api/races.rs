//! Limits hold under concurrency (SPEC section 6): deploys and scale-ups sent at once, half
//! through one replica of the service and half through another (own client, caches and
//! locks; the same records and cluster), never admit more than the group's quota or the GPU
//! booking, round after round; and every request that is not admitted is refused as the
//! user's 400, never a 5xx.

use crate::helpers::{TestApp, app_on, code};
use crate::on_both_backends;
use axum::http::StatusCode;
use futures::future::join_all;
use llp_k8s::http::AppState;
use serde_json::{Value, json};

/// Rounds per test: a race lost once in many would show.
const ROUNDS: usize = 20;

/// Alice's deployments in a replica's caches (not being deleted).
fn alices_in(state: &AppState, app: &TestApp) -> Vec<llp_k8s::cluster::workload::Deployed> {
    let owner = llp_spec::names::label_value(&app.user_id(&app.alice));
    let caches = &state.cluster.as_ref().unwrap().caches;
    llp_k8s::reservations::deployed(caches)
        .into_iter()
        .filter(|d| {
            d.meta()
                .labels
                .as_ref()
                .and_then(|l| l.get(llp_spec::names::OWNER_LABEL))
                == Some(&owner)
        })
        .collect()
}

/// Waits until both replicas' caches show alice's deployments as `done` says.
async fn settled(app: &TestApp, replica: &AppState, done: impl Fn(&[llp_k8s::cluster::workload::Deployed]) -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(done(&alices_in(&app.state, app)) && done(&alices_in(replica, app))) {
        assert!(tokio::time::Instant::now() < deadline, "the caches never settled");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Sends every `(method, uri)` as alice at once, alternating between the two replicas.
async fn at_once(app: &TestApp, replica: &AppState, requests: &[(&str, String)]) -> Vec<(StatusCode, Value)> {
    join_all(requests.iter().enumerate().map(|(i, (method, uri))| {
        let state = if i % 2 == 0 { &app.state } else { replica };
        TestApp::call_on(state, method, uri, &app.alice)
    }))
    .await
}

/// Asserts that exactly `admitted` answers are `ok` and every other one is a 400 `refusal`.
#[track_caller]
fn assert_admitted(round: usize, answers: &[(StatusCode, Value)], ok: StatusCode, admitted: usize, refusal: &str) {
    let passed = answers.iter().filter(|(s, _)| *s == ok).count();
    let refused = answers
        .iter()
        .filter(|(s, b)| *s == StatusCode::BAD_REQUEST && code(b) == refusal)
        .count();
    assert_eq!(
        (passed, refused),
        (admitted, answers.len() - admitted),
        "round {round}: {answers:?}"
    );
}

fn with_quota(app: &mut TestApp, quota: llp_spec::quota::Quota) {
    let mut table = llp_spec::LimitsTable::default();
    table.default.quota = quota;
    app.state.limits = std::sync::Arc::new(table);
}

const ONE_CORE: &str = "containers: [{name: web, image: nginx, cpu: 1, memory: 0.1}]";

on_both_backends! {
    /// 8 deploys at once against a quota of 3 deployments: 3 pass, every round.
    async fn concurrent_deploys_never_exceed_the_deployment_quota(backend) {
        let mut app = app_on(backend).await;
        with_quota(&mut app, llp_spec::quota::Quota { deployments: 3, ..Default::default() });
        let replica = app.replica().await;
        for round in 0..ROUNDS {
            let mut ids = Vec::new();
            for _ in 0..8 {
                ids.push(app.create_record_with(&app.alice, json!({"data": ONE_CORE})).await);
            }
            let puts: Vec<_> = ids.iter().map(|id| ("PUT", format!("/kubernetes/deployments/{id}"))).collect();
            let answers = at_once(&app, &replica, &puts).await;
            assert_admitted(round, &answers, StatusCode::CREATED, 3, "QUOTA_EXCEEDED");
            settled(&app, &replica, |d| d.len() == 3).await;
            for (id, (status, _)) in ids.iter().zip(&answers) {
                if *status == StatusCode::CREATED {
                    let (deleted, body) = app.call("DELETE", &format!("/kubernetes/deployments/{id}"), &app.alice, None).await;
                    assert_eq!(deleted, StatusCode::OK, "{body}");
                }
            }
            settled(&app, &replica, <[_]>::is_empty).await;
        }
    }

    /// Three deployments of one core each at 1 replica, 6 cores allowed: of three scale-ups
    /// to 3 replicas at once (2 more cores each) one fits, every round.
    async fn concurrent_scale_ups_never_exceed_the_cpu_quota(backend) {
        let mut app = app_on(backend).await;
        with_quota(&mut app, llp_spec::quota::Quota { cpu: 6, ..Default::default() });
        let replica = app.replica().await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            let id = app.create_record_with(&app.alice, json!({"data": ONE_CORE})).await;
            let (status, body) = app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            ids.push(id);
        }
        let replicas = |d: &[llp_k8s::cluster::workload::Deployed]| d.iter().map(|d| d.replicas()).sum::<u32>();
        settled(&app, &replica, |d| replicas(d) == 3).await;
        for round in 0..ROUNDS {
            let ups: Vec<_> = ids.iter().map(|id| ("PATCH", format!("/kubernetes/deployments/{id}?scale=3"))).collect();
            let answers = at_once(&app, &replica, &ups).await;
            assert_admitted(round, &answers, StatusCode::OK, 1, "QUOTA_EXCEEDED");
            settled(&app, &replica, |d| replicas(d) == 5).await;
            let downs: Vec<_> = ids.iter().map(|id| ("PATCH", format!("/kubernetes/deployments/{id}?scale=1"))).collect();
            for (status, body) in at_once(&app, &replica, &downs).await {
                assert_eq!(status, StatusCode::OK, "scaling down: {body}");
            }
            settled(&app, &replica, |d| replicas(d) == 3).await;
        }
    }
}

/// A GPU deployment of one `gpu-xs`.
const ONE_GPU: &str = "containers: [{name: train, image: trainer, cpu: 1, memory: 1, gpu: nvidia.com/mig-1g.10gb}]";

on_both_backends! {
    /// One booked gpu-xs: of 6 GPU deploys at once one is admitted; every round.
    async fn one_booking_admits_one_gpu_deployment_however_many_ask_at_once(backend) {
        let app = app_on(backend).await;
        app.book_today(&app.alice, &["gpu-xs"]).await;
        let replica = app.replica().await;
        for round in 0..ROUNDS {
            let mut ids = Vec::new();
            for _ in 0..6 {
                ids.push(app.create_record_with(&app.alice, json!({"data": ONE_GPU})).await);
            }
            let puts: Vec<_> = ids.iter().map(|id| ("PUT", format!("/kubernetes/deployments/{id}"))).collect();
            let answers = at_once(&app, &replica, &puts).await;
            assert_admitted(round, &answers, StatusCode::CREATED, 1, "NOT_ENOUGH_RESOURCES");
            settled(&app, &replica, |d| d.len() == 1).await;
            let winner = ids.iter().zip(&answers).find(|(_, (s, _))| *s == StatusCode::CREATED).unwrap().0.clone();
            let (deleted, body) = app.call("DELETE", &format!("/kubernetes/deployments/{winner}"), &app.alice, None).await;
            assert_eq!(deleted, StatusCode::OK, "{body}");
            settled(&app, &replica, <[_]>::is_empty).await;
        }
    }

    /// One booked gpu-xs, a GPU run and a GPU deployment at 0 replicas: a rerun of the one
    /// (which deletes its Job and makes it again, so for a moment no pod holds the GPU) and a
    /// scale-up of the other, at once: exactly one is admitted; every round.
    async fn a_rerun_and_a_scale_up_never_share_one_booked_gpu(backend) {
        let app = app_on(backend).await;
        app.book_today(&app.alice, &["gpu-xs"]).await;
        let replica = app.replica().await;
        let run = app.create_record_with(&app.alice, json!({"data": format!("{ONE_GPU}\nrestartPolicy: Never")})).await;
        let idle = app.create_record_with(&app.alice, json!({"data": format!("{ONE_GPU}\nreplicas: 0")})).await;
        for id in [&run, &idle] {
            let (status, body) = app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        settled(&app, &replica, |d| d.len() == 2).await;
        for round in 0..ROUNDS {
            let requests = [
                ("POST", format!("/kubernetes/deployments/{run}/hooks/restart")),
                ("PATCH", format!("/kubernetes/deployments/{idle}?scale=1")),
            ];
            let answers = at_once(&app, &replica, &requests).await;
            assert_admitted(round, &answers, StatusCode::OK, 1, "NOT_ENOUGH_RESOURCES");
            let (status, body) = app.call("PATCH", &format!("/kubernetes/deployments/{idle}?scale=0"), &app.alice, None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            // Both replicas see the run again and the other at 0 before the next round.
            settled(&app, &replica, |d| d.len() == 2 && d.iter().map(|d| d.replicas()).sum::<u32>() <= 1).await;
        }
    }
}
