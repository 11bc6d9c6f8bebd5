//! Runs to completion (`restartPolicy` `OnFailure`/`Never`): a Job instead of a StatefulSet,
//! its status, the logs and events of its finished pods, running it again, scaling, deleting,
//! and GPU reservations, always with two users.

use crate::helpers::{TestApp, app_with_cluster, code, pod_names};
use axum::http::StatusCode;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use serde_json::{Value, json};

/// A run of `replicas` pods with a volume of its own.
fn training_run(replicas: u32, image: &str) -> Value {
    json!({"title": "train", "data": format!(
        "containers: [{{name: train, image: {image}, cpu: 1, memory: 1, volumeMounts: [{{name: ckpt, mountPath: /ckpt}}]}}]\n\
         volumes: [{{name: ckpt, size: 1Gi}}]\nreplicas: {replicas}\nrestartPolicy: Never\n"
    )})
}

async fn complete(app: &TestApp, id: &str, replicas: usize) -> Value {
    app.status_until(id, &app.alice, |s| {
        s["run"]["state"] == "Complete"
            && s["run"]["succeeded"] == replicas
            && s["pods"]
                .as_array()
                .is_some_and(|p| p.len() == replicas && p.iter().all(|p| p["phase"] == "Succeeded"))
    })
    .await
}

crate::on_both_backends! {
async fn a_run_completes_keeps_its_logs_runs_again_and_goes(backend) {
    let app = crate::helpers::app_on(backend).await;
    let id = app.create_record_with(&app.alice, training_run(2, "trainer")).await;
    let deployment = format!("/kubernetes/deployments/{id}");
    let (status, spec) = app.call("PUT", &deployment, &app.alice, None).await;
    assert_eq!(status, StatusCode::CREATED, "{spec}");
    assert_eq!(spec["restartPolicy"], "Never");
    let namespace = app.cluster().namespace.clone();
    let jobs: Api<Job> = Api::namespaced(app.admin_client(), &namespace);
    let sets: Api<StatefulSet> = Api::namespaced(app.admin_client(), &namespace);
    let base = format!("sd-{id}");
    assert!(jobs.get_opt(&base).await.unwrap().is_some(), "a Job");
    assert!(sets.get_opt(&base).await.unwrap().is_none(), "no StatefulSet");

    let done = complete(&app, &id, 2).await;
    assert_eq!(done["run"]["completions"], 2, "{done}");
    assert!(done["run"]["completionTime"].is_string(), "{done}");
    assert_eq!(done["replicas"], 0, "a finished run wants no pods: {done}");
    assert_eq!(done["volumes"][0]["name"], "ckpt", "{done}");
    assert_eq!(done["volumes"][0]["claim"], format!("ckpt-{base}"), "{done}");
    let first = pod_names(&done);

    // A finished pod's logs and events stay readable, for its owner only.
    let pod = &first[0];
    let (status, logs) = app.raw("GET", &format!("{deployment}/logs/{pod}"), &app.alice).await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    assert!(logs.contains(&app.started_line("train", "trainer")), "{logs}");
    let (status, events) = app.call("GET", &format!("{deployment}/events/{pod}"), &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert!(!events.as_array().unwrap().is_empty(), "{events}");
    for path in [deployment.clone(), format!("{deployment}/logs/{pod}"), format!("{deployment}/events/{pod}")] {
        let (status, _) = app.call("GET", &path, &app.bob, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = app.call("POST", &format!("{deployment}/hooks/restart"), &app.bob, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Restart runs it again, with new pods; so does a PUT of a finished run.
    let (status, body) = app.call("POST", &format!("{deployment}/hooks/restart"), &app.alice, None).await;
    assert_eq!((status, &body["success"]), (StatusCode::OK, &json!(true)), "{body}");
    let again = app
        .status_until(&id, &app.alice, |s| {
            s["run"]["state"] == "Complete" && s["run"]["succeeded"] == 2 && pod_names(s).iter().all(|p| !first.contains(p))
        })
        .await;
    let second = pod_names(&again);
    let (status, body) = app.call("PUT", &deployment, &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.status_until(&id, &app.alice, |s| {
        s["run"]["state"] == "Complete" && s["run"]["succeeded"] == 2 && pod_names(s).iter().all(|p| !second.contains(p))
    })
    .await;

    // DELETE takes the Job, its pods and its claim.
    let (status, body) = app.call("DELETE", &deployment, &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.call("GET", &deployment, &app.alice, None).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    assert!(jobs.get_opt(&base).await.unwrap().is_none_or(|j| j.metadata.deletion_timestamp.is_some()));
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_stops_after_its_backoff_limit_and_says_so() {
    let app = app_with_cluster().await;
    let id = app.create_record_with(&app.alice, training_run(1, "crash:1")).await;
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let failed = app
        .status_until(&id, &app.alice, |s| s["run"]["state"] == "Failed")
        .await;
    // The default backoff limit of 3: the fourth failure ends the run.
    assert_eq!(failed["run"]["failed"], 4, "{failed}");
    let message = failed["run"]["message"].as_str().unwrap();
    assert!(
        message.contains("backoff limit") && message.contains("deploy again"),
        "{message}"
    );
    assert_eq!(
        failed["pods"].as_array().unwrap().len(),
        4,
        "every failed pod stays readable: {failed}"
    );
    let pod = failed["pods"][0]["name"].as_str().unwrap();
    let (status, logs) = app
        .raw("GET", &format!("/kubernetes/deployments/{id}/logs/{pod}"), &app.alice)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(logs.contains("fatal error"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_restart_policy_switches_between_statefulset_and_job() {
    let app = app_with_cluster().await;
    let service = json!({"data": "containers: [{name: web, image: nginx, cpu: 1, memory: 1}]\n"});
    let id = app.create_record_with(&app.alice, service).await;
    let deployment = format!("/kubernetes/deployments/{id}");
    assert_eq!(
        app.call("PUT", &deployment, &app.alice, None).await.0,
        StatusCode::CREATED
    );
    app.status_until(&id, &app.alice, |s| s["pods"][0]["phase"] == "Running")
        .await;
    let as_run =
        json!({"data": "containers: [{name: web, image: nginx, cpu: 1, memory: 1}]\nrestartPolicy: OnFailure\n"});
    app.call("PATCH", &format!("/items/deployments/{id}"), &app.alice, Some(as_run))
        .await;
    let (status, body) = app.call("PUT", &deployment, &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = app
        .status_until(&id, &app.alice, |s| s["run"]["state"] == "Complete")
        .await;
    assert_eq!(
        done["pods"].as_array().unwrap().len(),
        1,
        "the StatefulSet's pod is gone: {done}"
    );
    let sets: Api<StatefulSet> = Api::namespaced(app.admin_client(), &app.cluster().namespace);
    assert!(sets.get_opt(&format!("sd-{id}")).await.unwrap().is_none());

    // A run needs a pod; scaling one to 0 stops it instead.
    let zero = json!({"data": "containers: [{name: web, image: nginx}]\nrestartPolicy: Never\nreplicas: 0\n"});
    app.call("PATCH", &format!("/items/deployments/{id}"), &app.alice, Some(zero))
        .await;
    let (status, body) = app.call("PUT", &deployment, &app.alice, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["field"], "replicas", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_a_run_sets_how_many_pods_run_at_once() {
    let app = app_with_cluster().await;
    // Long enough to scale while it runs: the simulator's containers complete after a while.
    let id = app.create_record_with(&app.alice, training_run(4, "trainer")).await;
    let deployment = format!("/kubernetes/deployments/{id}");
    assert_eq!(
        app.call("PUT", &deployment, &app.alice, None).await.0,
        StatusCode::CREATED
    );
    let (status, body) = app
        .call("PATCH", &format!("{deployment}?scale=1"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jobs: Api<Job> = Api::namespaced(app.admin_client(), &app.cluster().namespace);
    let job = jobs.get(&format!("sd-{id}")).await.unwrap();
    assert_eq!(job.spec.unwrap().parallelism, Some(1));
    // Four completions, one at a time.
    complete(&app, &id, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_run_needs_a_booking_and_is_suspended_when_it_ends() {
    // Runs that do not finish on their own during the test.
    let timings = llp_sim::Timings {
        complete_after: std::time::Duration::from_secs(600),
        ..llp_sim::Timings::fast()
    };
    let app = crate::helpers::app_with_sim_timings(llp_sim::SimOptions::default(), timings).await;
    let gpu_run = json!({"data": "containers: [{name: train, image: trainer, cpu: 1, memory: 1, gpu: nvidia.com/mig-1g.10gb}]\nrestartPolicy: Never\n"});
    let id = app.create_record_with(&app.alice, gpu_run).await;
    let deployment = format!("/kubernetes/deployments/{id}");
    let (status, body) = app.call("PUT", &deployment, &app.alice, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "NOT_ENOUGH_RESOURCES"),
        "{body}"
    );

    let booking = app.book_today(&app.alice, &["gpu-xs"]).await;
    let (status, body) = app.call("PUT", &deployment, &app.alice, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.status_until(&id, &app.alice, |s| s["pods"][0]["phase"] == "Running")
        .await;
    // Bob's booking does not let Bob deploy Alice's run.
    let (status, _) = app.call("PUT", &deployment, &app.bob, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = app
        .call(
            "DELETE",
            &format!("/items/gpu_reservations/{booking}"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let reconciler = app.reconciler("jobs-test");
    // The reconciler may see the annotation it wrote a moment ago in its next round.
    let pass = reconciler.round().await.unwrap().expect("it holds the lease");
    assert_eq!(pass.stopped, [format!("sd-{id}")]);
    let stopped = app
        .status_until(&id, &app.alice, |s| {
            s["run"]["state"] == "Suspended" && s["stopped"].is_string() && s["run"]["active"] == 0
        })
        .await;
    assert!(
        stopped["stopped"].as_str().unwrap().contains("reservation ended"),
        "{stopped}"
    );
    // Booked again, a scale up lets it run on.
    app.book_today(&app.alice, &["gpu-xs"]).await;
    let (status, body) = app
        .call("PATCH", &format!("{deployment}?scale=1"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.status_until(&id, &app.alice, |s| {
        s["run"]["state"] == "Running" && s["stopped"].is_null()
    })
    .await;
}
