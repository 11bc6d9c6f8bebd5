use super::*;
use serde_json::{Value, json};

const NO_CLAIMS: &[PersistentVolumeClaim] = &[];
const NO_PODS: &[CachedPod] = &[];

fn mk_sts(replicas: i32, current: i32, ready: i32) -> CachedStatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": "sd-42"},
        "spec": {"replicas": replicas, "selector": {}, "serviceName": "sd-42", "template": {}},
        "status": {"replicas": current, "currentReplicas": current, "readyReplicas": ready},
    }))
    .unwrap()
}

fn mk_pod(name: &str, phase: &str, container_status: Value) -> CachedPod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx", "resources": {"limits": {"memory": "16Gi"}}}]},
        "status": {"phase": phase, "containerStatuses": [container_status]},
    }))
    .unwrap()
}

fn running() -> Value {
    json!({"name": "app", "image": "nginx", "imageID": "", "ready": true, "started": true, "restartCount": 0, "state": {"running": {}}})
}

fn waiting(reason: &str, last: Value) -> Value {
    json!({"name": "app", "image": "registry/app:1", "imageID": "", "ready": false, "started": false, "restartCount": 3,
        "state": {"waiting": {"reason": reason, "message": "detail from the kubelet"}}, "lastState": last})
}

fn mk_claim(name: &str, phase: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": phase, "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]},
    }))
    .unwrap()
}

fn only_container(status: &DeploymentStatus) -> &ContainerStatus {
    &status.pods[0].containers[0]
}

#[test]
fn a_running_deployment_has_the_seeds_shape() {
    let status = from_objects(
        &mk_sts(1, 1, 1),
        &[mk_pod("sd-42-0", "Running", running())],
        &[mk_claim("mydata-sd-42-0", "Bound")],
        None,
    );
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["replicas"], 1);
    assert_eq!(json["currentReplicas"], 1);
    assert_eq!(
        json["pods"][0],
        json!({"name": "sd-42-0", "phase": "Running", "containers": [{"name": "app", "ready": true, "started": true, "restartCount": 0}], "initContainers": []})
    );
    assert_eq!(
        json["volumes"][0],
        json!({"name": "mydata", "claim": "mydata-sd-42-0", "phase": "Bound", "capacity": "1Gi", "requested": "1Gi",
            "type": "ReadWriteOnce", "shared": false})
    );
}

#[test]
fn a_growing_volume_shows_both_sizes_and_what_happens() {
    let mut claim = mk_claim("mydata-sd-42-0", "Bound");
    claim
        .spec
        .as_mut()
        .unwrap()
        .resources
        .as_mut()
        .unwrap()
        .requests
        .as_mut()
        .unwrap()
        .insert(
            "storage".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("4Gi".into()),
        );
    let volume = |claim: &PersistentVolumeClaim| {
        from_objects(&mk_sts(1, 1, 1), NO_PODS, std::slice::from_ref(claim), None)
            .volumes
            .remove(0)
    };
    let growing = volume(&claim);
    assert_eq!(
        (growing.capacity.as_deref(), growing.requested.as_deref()),
        (Some("1Gi"), Some("4Gi"))
    );
    assert!(
        growing.resizing.as_deref().unwrap().contains("growing from 1Gi to 4Gi"),
        "{growing:?}"
    );
    claim.status.as_mut().unwrap().conditions = Some(vec![
        serde_json::from_value(json!({"type": "FileSystemResizePending", "status": "True"})).unwrap(),
    ]);
    let waiting = volume(&claim);
    assert!(
        waiting.resizing.as_deref().unwrap().contains("restart the deployment"),
        "{waiting:?}"
    );
    let done = volume(&mk_claim("mydata-sd-42-0", "Bound"));
    assert_eq!(done.resizing, None);
}

#[test]
fn pods_are_listed_by_ordinal() {
    let pods: Vec<CachedPod> = ["sd-42-10", "sd-42-2", "sd-42-0"]
        .iter()
        .map(|n| mk_pod(n, "Running", running()))
        .collect();
    let names: Vec<String> = from_objects(&mk_sts(11, 3, 3), &pods, NO_CLAIMS, None)
        .pods
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["sd-42-0", "sd-42-2", "sd-42-10"]);
}

#[test]
fn a_crash_loop_names_the_exit_code_and_the_previous_logs() {
    let last = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
    let status = from_objects(
        &mk_sts(1, 1, 0),
        &[mk_pod("sd-42-0", "Running", waiting("CrashLoopBackOff", last))],
        NO_CLAIMS,
        None,
    );
    let c = only_container(&status);
    assert_eq!(c.reason.as_deref(), Some("CrashLoopBackOff"));
    let message = c.message.as_deref().unwrap();
    assert!(
        message.contains("exited with code 1") && message.contains("previous=true") && message.contains("3 restarts"),
        "{message}"
    );
}

#[test]
fn a_crashed_container_between_restarts_is_crash_looping_too() {
    // Kubernetes 1.37's kubelet shows the run that just ended most of the time between restarts.
    let mut between = waiting(
        "CrashLoopBackOff",
        json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
    );
    between["state"] = json!({"terminated": {"exitCode": 3, "reason": "Error"}});
    let status = from_objects(
        &mk_sts(1, 1, 0),
        &[mk_pod("sd-42-0", "Running", between)],
        NO_CLAIMS,
        None,
    );
    let c = only_container(&status);
    assert_eq!(c.reason.as_deref(), Some("CrashLoopBackOff"));
    let message = c.message.as_deref().unwrap();
    assert!(
        message.contains("keeps crashing") && message.contains("exited with code 3"),
        "{message}"
    );

    // The first failure is not a loop yet, and a run that completed is no crash.
    for (restarts, state) in [
        (0, json!({"terminated": {"exitCode": 3, "reason": "Error"}})),
        (2, json!({"terminated": {"exitCode": 0, "reason": "Completed"}})),
    ] {
        let mut status = waiting("x", json!({}));
        status["restartCount"] = json!(restarts);
        status["state"] = state;
        let answer = from_objects(
            &mk_sts(1, 1, 0),
            &[mk_pod("sd-42-0", "Running", status)],
            NO_CLAIMS,
            None,
        );
        assert_ne!(only_container(&answer).reason.as_deref(), Some("CrashLoopBackOff"));
    }
}

#[test]
fn an_oom_kill_names_the_memory_limit() {
    let last = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}});
    let status = from_objects(
        &mk_sts(1, 1, 0),
        &[mk_pod("sd-42-0", "Running", waiting("CrashLoopBackOff", last))],
        NO_CLAIMS,
        None,
    );
    let message = only_container(&status).message.clone().unwrap();
    assert!(
        message.contains("memory limit of 16Gi") && message.contains("raise `memory`"),
        "{message}"
    );
}

#[test]
fn an_image_that_cannot_be_pulled_is_named() {
    let status = from_objects(
        &mk_sts(1, 0, 0),
        &[mk_pod("sd-42-0", "Pending", waiting("ImagePullBackOff", json!({})))],
        NO_CLAIMS,
        None,
    );
    assert!(
        only_container(&status)
            .message
            .as_deref()
            .unwrap()
            .contains("`registry/app:1` cannot be pulled")
    );
}

fn config_error(kubelet_says: &str) -> String {
    let mut container = waiting("CreateContainerConfigError", json!({}));
    container["state"]["waiting"]["message"] = json!(kubelet_says);
    let status = from_objects(
        &mk_sts(1, 0, 0),
        &[mk_pod("sd-42-0", "Pending", container)],
        NO_CLAIMS,
        None,
    );
    only_container(&status).message.clone().unwrap()
}

#[test]
fn a_missing_secret_or_config_key_is_named_with_the_route_that_sets_it() {
    assert_eq!(
        config_error("couldn't find key token in Secret services/sd-42"),
        "cannot start: the secret key `token` (used by `fromSecret: token`) is not set; set it with PUT /kubernetes/deployments/{id}/secret"
    );
    assert_eq!(
        config_error("couldn't find key mode in ConfigMap services/sd-42"),
        "cannot start: the config key `mode` (used by `fromConfig: mode`) is not set; set it with PUT /kubernetes/deployments/{id}/config"
    );
    assert!(
        config_error("secret \"sd-42\" not found")
            .starts_with("cannot start: no secret is set for this deployment yet")
    );
    assert!(config_error("configmap \"sd-42\" not found").contains("PUT /kubernetes/deployments/{id}/config"));
    let other = config_error("detail from the kubelet");
    assert!(
        other.contains("detail from the kubelet") && other.contains("`fromSecret`"),
        "{other}"
    );
}

#[test]
fn an_unschedulable_pod_says_which_resource_is_missing() {
    let pod: CachedPod = serde_json::from_value(json!({
        "metadata": {"name": "sd-42-0"},
        "spec": {"containers": [{"name": "app"}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 3 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are available: 1 Preemption is not helpful for scheduling, 3 No preemption victims found for incoming pod."}]},
    }))
    .unwrap();
    let status = from_objects(&mk_sts(1, 0, 0), &[pod], NO_CLAIMS, None);
    let scheduling = status.pods[0].scheduling.clone().unwrap();
    assert!(
        scheduling.starts_with("waiting for a node with enough free nvidia.com/gpu"),
        "{scheduling}"
    );
    assert!(status.pods[0].containers.is_empty());
}

#[test]
fn a_pod_being_deleted_is_terminating() {
    let mut pod = mk_pod("sd-42-0", "Running", running());
    pod.metadata.deletion_timestamp = Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap());
    assert_eq!(
        from_objects(&mk_sts(1, 1, 1), &[pod], NO_CLAIMS, None).pods[0].phase,
        "Terminating"
    );
}

#[test]
fn a_claim_being_deleted_is_terminating() {
    let mut claim = mk_claim("data-sd-42-0", "Bound");
    claim.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()));
    let status = from_objects(&mk_sts(1, 0, 0), NO_PODS, &[claim], None);
    assert_eq!(status.volumes[0].phase, "Terminating");
}

#[test]
fn pods_the_cluster_refuses_to_create_are_explained_while_they_are_missing() {
    let event = "create Pod sd-42-0 in StatefulSet sd-42 failed error: pods \"sd-42-0\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=0, limited: pods=0";
    let status = from_objects(&mk_sts(1, 0, 0), NO_PODS, NO_CLAIMS, None).with_refused_pods(Some(event));
    assert_eq!(
        status.problem.as_deref(),
        Some(
            "the cluster refuses to create this deployment's pods: pods \"sd-42-0\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=0, limited: pods=0. Ask an administrator, or lower replicas or resources."
        )
    );
    let running = mk_pod("sd-42-0", "Running", waiting("ContainerCreating", json!({})));
    let status = from_objects(&mk_sts(1, 0, 0), &[running], NO_CLAIMS, None).with_refused_pods(Some(event));
    assert_eq!(status.problem, None, "an old refusal says nothing once the pods exist");
}

#[test]
fn the_reservation_notes_show_while_they_apply() {
    let annotated = |replicas: i32| {
        let mut sts = mk_sts(replicas, replicas, replicas);
        sts.metadata.annotations = Some(
            [
                (
                    crate::names::RESERVATION_ENDS_ANNOTATION.to_owned(),
                    "2026-11-27T18:00:00Z".to_owned(),
                ),
                (
                    crate::names::STOPPED_ANNOTATION.to_owned(),
                    "2026-11-27T18:00:00Z".to_owned(),
                ),
            ]
            .into(),
        );
        from_objects(&sts, NO_PODS, NO_CLAIMS, None)
    };
    let running = annotated(1);
    assert_eq!(running.reservation_ends.as_deref(), Some("2026-11-27T18:00:00Z"));
    assert_eq!(running.stopped, None, "scaled up again: no longer stopped");
    let stopped = annotated(0);
    assert_eq!(stopped.reservation_ends, None);
    assert_eq!(
        stopped.stopped.as_deref(),
        Some(
            "stopped: reservation ended at 27 Nov 18:00 UTC; the volumes are kept. Book GPUs, then scale up or deploy again."
        )
    );
}

#[test]
fn a_stop_over_budget_says_so_and_not_that_a_booking_ended() {
    let mut sts = mk_sts(0, 0, 0);
    sts.metadata.annotations = Some(
        [(
            crate::names::STOPPED_ANNOTATION.to_owned(),
            crate::names::STOPPED_OVER_BUDGET.to_owned(),
        )]
        .into(),
    );
    let note = from_objects(&sts, NO_PODS, NO_CLAIMS, None).stopped.unwrap();
    assert!(note.contains("held by your deployments started earlier"), "{note}");
    assert!(!note.contains("ended"), "{note}");
}
