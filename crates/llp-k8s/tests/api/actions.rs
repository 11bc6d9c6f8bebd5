//! Scale, restart, delete, pods, logs and events: each with the owner, another user, and bad input.

use crate::helpers::{TestApp, app_on, code};
use axum::http::StatusCode;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use std::time::Duration;

const WITH_VOLUME: &str = "containers:\n  - {name: web, image: nginx, ports: [{name: http, port: 80}], volumeMounts: [{name: data, mountPath: /data}]}\nvolumes: [{name: data, size: 1Gi}]\n";

/// alice's and bob's running deployments: (alice's id, alice's pod, bob's id).
async fn two_deployments(app: &TestApp) -> (String, String, String) {
    let alice = app.create_record_with(&app.alice, json!({"data": WITH_VOLUME})).await;
    let bob = app.create_record(&app.bob).await;
    for (id, token) in [(&alice, &app.alice), (&bob, &app.bob)] {
        let (status, body) = app
            .call("PUT", &format!("/kubernetes/deployments/{id}"), token, None)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let pod = wait_for(app, &alice, &app.alice, |s| s["pods"][0]["phase"] == "Running").await["pods"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for(app, &bob, &app.bob, |s| s["pods"][0]["phase"] == "Running").await;
    (alice, pod, bob)
}

/// Polls the status of `id` as the holder of `token` until `done`.
async fn wait_for(app: &TestApp, id: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    app.status_until(id, token, done).await
}

crate::on_both_backends! {
async fn scale_takes_a_whole_number_within_the_limit_and_only_from_the_owner(backend) {
    let app = app_on(backend).await;
    let (alice, _, _) = two_deployments(&app).await;
    for bad in ["17", "-1", "abc", "1.5"] {
        let (status, body) = app
            .call(
                "PATCH",
                &format!("/kubernetes/deployments/{alice}?scale={bad}"),
                &app.alice,
                None,
            )
            .await;
        assert_eq!(
            (status, body["errors"][0]["extensions"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("scale")),
            "{bad}"
        );
    }
    let (status, _) = app
        .call("PATCH", &format!("/kubernetes/deployments/{alice}"), &app.alice, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "missing scale");
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/kubernetes/deployments/{alice}?scale=0"),
            &app.bob,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/kubernetes/deployments/{alice}?scale=2"),
            &app.alice,
            None,
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"replicas": 2, "success": true})));
    wait_for(&app, &alice, &app.alice, |s| {
        s["pods"].as_array().is_some_and(|p| p.len() == 2)
    })
    .await;
    app.call(
        "PATCH",
        &format!("/kubernetes/deployments/{alice}?scale=0"),
        &app.alice,
        None,
    )
    .await;
    let stopped = wait_for(&app, &alice, &app.alice, |s| s["pods"] == json!([])).await;
    assert_eq!(
        stopped["volumes"][0]["phase"], "Bound",
        "scaling to 0 keeps the volumes"
    );
}

async fn restart_sets_the_restart_annotation_for_the_owner_only(backend) {
    let app = app_on(backend).await;
    let (alice, _, _) = two_deployments(&app).await;
    let (status, _) = app
        .call(
            "GET",
            &format!("/kubernetes/deployments/{alice}/hooks/restart"),
            &app.bob,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .call(
            "POST",
            &format!("/kubernetes/deployments/{alice}/hooks/restart"),
            &app.alice,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true, "as the extension answered: {body}");
    assert!(body["restartedAt"].is_string(), "{body}");
    let sets: Api<StatefulSet> = app.cluster().api();
    let sts = sets.get(&format!("sd-{alice}")).await.unwrap();
    let annotations = sts.spec.unwrap().template.metadata.unwrap().annotations.unwrap();
    assert!(annotations.contains_key("kubectl.kubernetes.io/restartedAt"));
}

async fn logs_events_and_pod_deletion_are_served_only_for_the_deployments_own_pods(backend) {
    let app = app_on(backend).await;
    let (alice, pod, bob) = two_deployments(&app).await;
    // bob names alice's pod under his own deployment, and under hers: both 404.
    for (id, what) in [(&bob, "logs"), (&bob, "events"), (&alice, "logs"), (&alice, "events")] {
        let (status, _) = app
            .call(
                "GET",
                &format!("/kubernetes/deployments/{id}/{what}/{pod}"),
                &app.bob,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what} via {id}");
    }
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/kubernetes/deployments/{bob}/pods/{pod}"),
            &app.bob,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let logs = app
        .raw(
            "GET",
            &format!("/kubernetes/deployments/{alice}/logs/{pod}?timestamps=true"),
            &app.alice,
        )
        .await;
    assert_eq!(logs.0, StatusCode::OK);
    assert!(
        logs.1.contains(&app.started_line("web", "nginx")) && logs.1.contains('Z'),
        "{}",
        logs.1
    );
    let (status, body) = app
        .call(
            "GET",
            &format!("/kubernetes/deployments/{alice}/logs/{pod}?sinceSeconds=0"),
            &app.alice,
            None,
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sinceSeconds"))
    );
    let (status, _) = app
        .call(
            "GET",
            &format!("/kubernetes/deployments/{alice}/logs/{pod}?previous=maybe"),
            &app.alice,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, events) = app
        .call(
            "GET",
            &format!("/kubernetes/deployments/{alice}/events/{pod}"),
            &app.alice,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let reasons: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    // A real scheduler may first report FailedScheduling while the pod's claim binds.
    let scheduled = reasons.iter().position(|r| *r == "Scheduled").expect("Scheduled");
    let started = reasons.iter().position(|r| *r == "Started").expect("Started");
    assert!(scheduled < started, "oldest first: {reasons:?}");
    // Oldest first, to the second (within a second, the order they were written in).
    let seconds: Vec<&str> = events.as_array().unwrap().iter().map(|e| &e["creationTimestamp"].as_str().unwrap()[..19]).collect();
    assert!(seconds.windows(2).all(|w| w[0] <= w[1]), "oldest first: {seconds:?}");
    assert!(events[scheduled]["note"].as_str().unwrap().contains(&pod));

    let (status, body) = app
        .call(
            "DELETE",
            &format!("/kubernetes/deployments/{alice}/pods/{pod}"),
            &app.alice,
            None,
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"deleted": pod})));
}

async fn delete_removes_every_object_of_the_deployment_and_only_for_the_owner(backend) {
    let app = app_on(backend).await;
    let (alice, _, bob) = two_deployments(&app).await;
    let (status, _) = app
        .call("DELETE", &format!("/kubernetes/deployments/{alice}"), &app.bob, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .call("DELETE", &format!("/kubernetes/deployments/{alice}"), &app.alice, None)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"deleted": alice})));
    let client = app.state.cluster.as_ref().unwrap().client.clone();
    let label = ListParams::default().labels(&format!("llp.kitegg.de/deployment={alice}"));
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let services = Api::<Service>::namespaced(client.clone(), &app.cluster().namespace)
                .list(&label)
                .await
                .unwrap()
                .items
                .len();
            let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &app.cluster().namespace)
                .list(&label)
                .await
                .unwrap()
                .items
                .len();
            let (status, body) = app
                .call("GET", &format!("/kubernetes/deployments/{alice}"), &app.alice, None)
                .await;
            if services == 0 && claims == 0 && status == StatusCode::NOT_FOUND && code(&body) == "NOT_FOUND" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("everything of alice's deployment is gone");
    let (status, _) = app
        .call("GET", &format!("/kubernetes/deployments/{bob}"), &app.bob, None)
        .await;
    assert_eq!(status, StatusCode::OK, "bob's deployment is untouched");
}

async fn a_deploy_right_after_delete_runs_with_fresh_volumes(backend) {
    let app = app_on(backend).await;
    let id = app.create_record_with(&app.alice, json!({"data": WITH_VOLUME})).await;
    let deployment = format!("/kubernetes/deployments/{id}");
    assert_eq!(app.call("PUT", &deployment, &app.alice, None).await.0, StatusCode::CREATED);
    let bound = |s: &Value| {
        s["pods"][0]["phase"] == "Running" && s["pods"][0]["containers"][0]["ready"] == true && s["volumes"][0]["phase"] == "Bound"
    };
    wait_for(&app, &id, &app.alice, bound).await;
    let claims: Api<PersistentVolumeClaim> = app.cluster().api();
    let claim_uids = || async {
        let mine = ListParams::default().labels(&format!("llp.kitegg.de/deployment={id}"));
        let list = claims.list(&mine).await.unwrap().items;
        list.into_iter().map(|c| c.metadata.uid.unwrap()).collect::<Vec<_>>()
    };
    let old_uids = claim_uids().await;
    assert_eq!(old_uids.len(), 1);

    assert_eq!(app.call("DELETE", &deployment, &app.alice, None).await.0, StatusCode::OK);
    // At once: the old pod is still terminating and holds its claim (pvc-protection).
    let (status, body) = app.call("PUT", &deployment, &app.alice, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    wait_for(&app, &id, &app.alice, bound).await;
    let new_uids = claim_uids().await;
    assert_eq!(new_uids.len(), 1);
    assert_ne!(new_uids, old_uids, "a fresh volume, not the deleted one");
}

async fn a_crashing_container_is_explained_and_its_previous_run_logged(backend) {
    let app = app_on(backend).await;
    let id = app.create_record_with(&app.alice, json!({"data": "containers: [{name: app, image: example/crash:1}]"})).await;
    assert_eq!(app.call("PUT", &format!("/kubernetes/deployments/{id}"), &app.alice, None).await.0, StatusCode::CREATED);
    let status = wait_for(&app, &id, &app.alice, |s| s["pods"][0]["containers"][0]["reason"] == "CrashLoopBackOff").await;
    let message = status["pods"][0]["containers"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("keeps crashing: its last run exited with code 1"), "{message}");
    let pod = status["pods"][0]["name"].as_str().unwrap();
    let (code, text) = app.raw("GET", &format!("/kubernetes/deployments/{id}/logs/{pod}?previous=true"), &app.alice).await;
    assert_eq!(code, StatusCode::OK, "{text}");
    assert!(text.contains(app.previous_line()), "{text}");
    let (code, _) = app.raw("GET", &format!("/kubernetes/deployments/{id}/logs/{pod}?previous=true"), &app.bob).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "not bob's");
}
async fn delete_removes_what_a_deploy_cut_off_partway_left(backend) {
    let app = app_on(backend).await;
    let id = app.create_record(&app.alice).await;
    // A deploy stopped after its Service (the cluster froze, the service was killed): no
    // workload, a Service labelled as the deployment's.
    let owner = llp_spec::names::label_value(&app.user_id(&app.alice));
    let left: Service = serde_json::from_value(json!({
        "metadata": {"name": format!("sd-{id}-web"), "labels": {
            "app.kubernetes.io/managed-by": "llp-k8s", "llp.kitegg.de/deployment": id,
            "llp.kitegg.de/owner": owner, "app": format!("sd-{id}")}},
        "spec": {"ports": [{"port": 80}], "selector": {"app": format!("sd-{id}")}},
    }))
    .unwrap();
    let services: Api<Service> = Api::namespaced(app.admin_client(), &app.cluster().namespace);
    services.create(&Default::default(), &left).await.unwrap();
    let label = format!("llp.kitegg.de/deployment={id}");
    while crate::helpers::labelled_services(&app, &id).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let uri = format!("/kubernetes/deployments/{id}");
    assert_eq!(app.call("DELETE", &uri, &app.bob, None).await.0, StatusCode::NOT_FOUND, "not bob's");
    let (status, body) = app.call("DELETE", &uri, &app.alice, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(services.list(&ListParams::default().labels(&label)).await.unwrap().items.is_empty(), "the Service went");
    while !crate::helpers::labelled_services(&app, &id).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = app.call("DELETE", &uri, &app.alice, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing is left: {body}");
}
}
