//! Containers that fail on the real node: a crash loop from a real exit code, an OOM kill by
//! the kernel, and a `fromSecret` key the kubelet cannot find, each as a user sees it.

use crate::node::{delete, deploy, first_container, first_pod, logs_until, status_until, take_turn};
use axum::http::StatusCode;
use serde_json::json;

/// A command that exits non-zero is restarted with back-off; the status says plainly that
/// it keeps crashing (whichever of the kubelet's two answers it gives between restarts),
/// and `previous=true` gives the crashed run's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_command_is_a_crash_loop_with_the_previous_runs_output() {
    let (_turn, app) = take_turn().await;
    let id = deploy(
        &app,
        "containers: [{name: app, image: busybox, cpu: 1, memory: 0.1, command: [sh, -c, 'echo about to fail; exit 3']}]",
    )
    .await;
    let status = status_until(&app, &id, 120, |s| {
        first_container(s)["restartCount"].as_i64() >= Some(1) && first_container(s)["reason"] == "CrashLoopBackOff"
    })
    .await;
    let message = first_container(&status)["message"].as_str().unwrap();
    assert!(
        message.contains("keeps crashing") && message.contains("exited with code 3"),
        "{message}"
    );
    let pod = first_pod(&status);
    logs_until(&app, &id, &pod, "previous=true", "about to fail", 30).await;
    delete(&app, &id).await;
}

/// A container that outgrows its memory is killed by the kernel; the status names the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgrowing_the_memory_limit_is_an_oom_kill_named_in_the_status() {
    let (_turn, app) = take_turn().await;
    // `tail` keeps a line it never finds the end of: it grows until the limit.
    let id = deploy(
        &app,
        "containers: [{name: app, image: busybox, cpu: 1, memory: 0.1, command: [sh, -c, 'echo filling memory; tail /dev/zero']}]",
    )
    .await;
    let status = status_until(&app, &id, 120, |s| {
        first_container(s)["message"]
            .as_str()
            .is_some_and(|m| m.contains("memory limit"))
    })
    .await;
    let container = first_container(&status);
    assert!(
        container["reason"] == "OOMKilled" || container["reason"] == "CrashLoopBackOff",
        "{container:#}"
    );
    delete(&app, &id).await;
}

/// A `fromSecret` key that was never set: the kubelet refuses to create the container, the
/// status names the key and the route that sets it, and setting it starts the container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_key_never_set_is_named_until_it_is_set() {
    let (_turn, app) = take_turn().await;
    let id = deploy(
        &app,
        "containers: [{name: app, image: busybox, cpu: 1, memory: 0.1, \
         environment: [{name: TOKEN, fromSecret: API_TOKEN}], command: [sh, -c, 'echo \"token: $TOKEN\"; sleep 3600']}]",
    )
    .await;
    let status = status_until(&app, &id, 60, |s| {
        first_container(s)["reason"] == "CreateContainerConfigError"
    })
    .await;
    let message = first_container(&status)["message"].as_str().unwrap();
    assert!(message.contains("secret"), "{message}");

    let (code, body) = app
        .call(
            "PUT",
            &format!("/kubernetes/deployments/{id}/secret"),
            &app.alice,
            Some(json!({"API_TOKEN": "s3cret"})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let status = status_until(&app, &id, 90, |s| first_container(s)["ready"] == true).await;
    logs_until(&app, &id, &first_pod(&status), "", "token: s3cret", 30).await;
    delete(&app, &id).await;
}

/// A run to completion ends by its containers' real exit codes: success is Complete, with the
/// finished pod's output still readable; failure is retried up to the backoff limit, then
/// Failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_to_completion_succeeds_or_fails_by_its_exit_code() {
    let (_turn, mut app) = take_turn().await;
    // One retry: the Job controller waits 10 s before it, 20 s before a second.
    app.state.render = std::sync::Arc::new(llp_spec::RenderConfig {
        job_backoff_limit: 1,
        ..(*app.state.render).clone()
    });
    let run = |command: &str| {
        format!(
            "containers: [{{name: train, image: busybox, cpu: 1, memory: 0.1, command: [sh, -c, '{command}']}}]\nrestartPolicy: Never"
        )
    };
    let good = deploy(&app, &run("echo trained; exit 0")).await;
    let done = status_until(&app, &good, 90, |s| s["run"]["state"] == "Complete").await;
    assert_eq!(done["run"]["succeeded"], 1, "{done:#}");
    logs_until(&app, &good, &first_pod(&done), "", "trained", 30).await;
    delete(&app, &good).await;

    let bad = deploy(&app, &run("echo failing; exit 2")).await;
    let failed = status_until(&app, &bad, 120, |s| s["run"]["state"] == "Failed").await;
    assert_eq!(failed["run"]["failed"], 2, "{failed:#}");
    assert!(failed["run"]["message"].is_string(), "{failed:#}");
    delete(&app, &bad).await;
}
