//! What a user does to a running deployment on the real node: restart it, scale it, delete a
//! pod of it; and what its volumes keep through that.

use crate::node::{delete, deploy, first_container, first_pod, logs_until, ok, status_until, take_turn};
use axum::http::StatusCode;
use serde_json::json;

/// The run id a container printed first (`run <uuid>`).
fn run_id(logs: &str) -> String {
    logs.lines()
        .find_map(|l| l.strip_prefix("run "))
        .unwrap_or_else(|| panic!("no run line in {logs:?}"))
        .to_owned()
}

/// Restart replaces the pod (a new run of the container), scale adds and removes pods, and
/// scale 0 stops every pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_starts_a_new_run_and_scale_adds_and_removes_pods() {
    let (_turn, app) = take_turn().await;
    let id = deploy(
        &app,
        "containers: [{name: app, image: busybox, cpu: 1, memory: 0.1, \
         command: [sh, -c, 'echo \"run $(cat /proc/sys/kernel/random/uuid)\"; sleep 3600']}]",
    )
    .await;
    let status = status_until(&app, &id, 90, |s| first_container(s)["ready"] == true).await;
    let pod = first_pod(&status);
    let first = run_id(&logs_until(&app, &id, &pod, "", "run ", 30).await);

    ok(&app, "POST", &format!("/kubernetes/deployments/{id}/hooks/restart")).await;
    let uri = format!("/kubernetes/deployments/{id}/logs/{pod}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let (status, logs) = app.raw("GET", &uri, &app.alice).await;
        if status == StatusCode::OK && logs.contains("run ") && run_id(&logs) != first {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new run after the restart: {logs}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    ok(&app, "PATCH", &format!("/kubernetes/deployments/{id}?scale=2")).await;
    status_until(&app, &id, 90, |s| {
        s["pods"]
            .as_array()
            .is_some_and(|p| p.len() == 2 && p.iter().all(|p| p["containers"][0]["ready"] == true))
    })
    .await;
    ok(&app, "PATCH", &format!("/kubernetes/deployments/{id}?scale=0")).await;
    status_until(&app, &id, 90, |s| s["pods"].as_array().is_some_and(Vec::is_empty)).await;
    delete(&app, &id).await;
}

/// What a container writes to its volume is there again after its pod is deleted (and the
/// StatefulSet made it anew), and after the volume grew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_keeps_its_data_through_a_pod_delete_and_growing() {
    let (_turn, app) = take_turn().await;
    let yaml = |size: &str| {
        format!(
            "containers: [{{name: app, image: busybox, cpu: 1, memory: 0.1, volumeMounts: [{{name: data, mountPath: /data}}], \
             command: [sh, -c, 'if [ -f /data/first ]; then echo \"found $(cat /data/first)\"; \
             else cat /proc/sys/kernel/random/uuid > /data/first; echo wrote; fi; sleep 3600']}}]\n\
             volumes: [{{name: data, size: {size}}}]"
        )
    };
    let id = app
        .create_record_with(&app.alice, json!({"title": "volume", "data": yaml("1Gi")}))
        .await;
    ok_created(&app, &id).await;
    let status = status_until(&app, &id, 90, |s| first_container(s)["ready"] == true).await;
    let pod = first_pod(&status);
    logs_until(&app, &id, &pod, "", "wrote", 30).await;

    ok(&app, "DELETE", &format!("/kubernetes/deployments/{id}/pods/{pod}")).await;
    logs_until(&app, &id, &pod, "", "found ", 90).await;

    let (code, body) = app
        .call(
            "PATCH",
            &format!("/items/deployments/{id}"),
            &app.alice,
            Some(json!({"data": yaml("2Gi")})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    ok(&app, "PUT", &format!("/kubernetes/deployments/{id}")).await;
    status_until(&app, &id, 60, |s| s["volumes"][0]["capacity"] == "2Gi").await;
    ok(&app, "DELETE", &format!("/kubernetes/deployments/{id}/pods/{pod}")).await;
    logs_until(&app, &id, &pod, "", "found ", 90).await;
    delete(&app, &id).await;
}

/// A `ReadWriteMany` volume is one volume of its owner: what one deployment writes there,
/// another deployment of hers that declares it reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_volume_written_by_one_deployment_is_read_by_another_of_the_same_owner() {
    let (_turn, app) = take_turn().await;
    let shared = "volumes: [{name: datasets, size: 1Gi}]";
    let mount = "volumeMounts: [{name: datasets, mountPath: /shared, type: ReadWriteMany}]";
    let writer = deploy(
        &app,
        &format!(
            "containers: [{{name: writer, image: busybox, cpu: 1, memory: 0.1, {mount}, \
             command: [sh, -c, 'echo written-by-the-writer > /shared/hello; sleep 3600']}}]\n{shared}"
        ),
    )
    .await;
    status_until(&app, &writer, 90, |s| first_container(s)["ready"] == true).await;
    let reader = deploy(
        &app,
        &format!(
            "containers: [{{name: reader, image: busybox, cpu: 1, memory: 0.1, {mount}, \
             command: [sh, -c, 'until [ -f /shared/hello ]; do sleep 1; done; cat /shared/hello; sleep 3600']}}]\n{shared}"
        ),
    )
    .await;
    let status = status_until(&app, &reader, 90, |s| first_container(s)["ready"] == true).await;
    logs_until(&app, &reader, &first_pod(&status), "", "written-by-the-writer", 60).await;
    delete(&app, &reader).await;
    delete(&app, &writer).await;
}

async fn ok_created(app: &crate::helpers::TestApp, id: &str) {
    let (status, body) = app
        .call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
