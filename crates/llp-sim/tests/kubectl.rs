//! Fidelity: the stock kubectl on the machine drives the simulator over TLS with a token,
//! and prints what it prints against a real cluster.

mod common;

use common::{TestSim, manifest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_nodes() {
    let t = TestSim::start().await;
    let nodes = t.kubectl_ok(&["get", "nodes"]).await;
    assert!(nodes.starts_with("NAME"), "{nodes}");
    for node in ["control-plane", "worker-1", "worker-2", "worker-3"] {
        assert!(
            nodes.lines().any(|l| l.starts_with(node) && l.contains("Ready")),
            "{node} missing in\n{nodes}"
        );
    }
    let resources = t.kubectl_ok(&["api-resources"]).await;
    for kind in ["StatefulSet", "PersistentVolumeClaim", "Ingress", "Event"] {
        assert!(resources.contains(kind), "{kind} missing in\n{resources}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_wait_logs_scale_restart_events_delete() {
    let t = TestSim::start().await;
    let file = t.write("web.yaml", &manifest("web", "nginx:1.27", 2));
    let created = t.kubectl_ok(&["apply", "--validate=false", "-f", &file]).await;
    assert_eq!(created.trim(), "statefulset.apps/web created\nservice/web created");
    let again = t.kubectl_ok(&["apply", "--validate=false", "-f", &file]).await;
    // "configured" for the StatefulSet, as on a real cluster: volumeClaimTemplates has no
    // merge key and comes back with defaults, so kubectl re-sends it (kubernetes#66450).
    assert_eq!(again.trim(), "statefulset.apps/web configured\nservice/web unchanged");

    let rollout = t
        .kubectl_ok(&["rollout", "status", "statefulset/web", "--timeout=20s"])
        .await;
    assert!(rollout.contains("roll out complete"), "{rollout}");
    t.kubectl_ok(&["wait", "--for=condition=Ready", "pod/web-0", "--timeout=20s"])
        .await;

    let pods = t.kubectl_ok(&["get", "pods"]).await;
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    for pod in ["web-0", "web-1"] {
        let row: Vec<&str> = pods
            .lines()
            .find(|l| l.starts_with(pod))
            .unwrap_or_else(|| panic!("{pod} in\n{pods}"))
            .split_whitespace()
            .collect();
        assert_eq!(&row[1..4], ["1/1", "Running", "0"], "{pods}");
    }

    let json = t.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "json"]).await;
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        list["items"][0]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "data-web-0"
    );
    let claims = t.kubectl_ok(&["get", "pvc"]).await;
    assert!(
        claims
            .lines()
            .any(|l| l.starts_with("data-web-1") && l.contains("Bound") && l.contains("1Gi")),
        "{claims}"
    );

    let logs = t.kubectl_ok(&["logs", "web-0"]).await;
    assert!(logs.contains("main started (nginx:1.27)"), "{logs}");
    let stamped = t.kubectl_ok(&["logs", "web-0", "--timestamps"]).await;
    assert!(
        stamped.lines().all(|l| l
            .split(' ')
            .next()
            .is_some_and(|ts| ts.parse::<jiff::Timestamp>().is_ok())),
        "{stamped}"
    );

    let scaled = t.kubectl_ok(&["scale", "statefulset", "web", "--replicas=3"]).await;
    assert_eq!(scaled.trim(), "statefulset.apps/web scaled");
    t.kubectl_until(&["get", "pods", "web-2"], |out| out.contains("Running"))
        .await;

    let restarted = t.kubectl_ok(&["rollout", "restart", "statefulset/web"]).await;
    assert_eq!(restarted.trim(), "statefulset.apps/web restarted");
    let template = t
        .kubectl_ok(&[
            "get",
            "statefulset",
            "web",
            "-o",
            "jsonpath={.spec.template.metadata.annotations}",
        ])
        .await;
    assert!(template.contains("kubectl.kubernetes.io/restartedAt"), "{template}");
    let rollout = t
        .kubectl_ok(&["rollout", "status", "statefulset/web", "--timeout=30s"])
        .await;
    assert!(rollout.contains("roll out complete: 3 new pods"), "{rollout}");

    let events = t
        .kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=web-0"])
        .await;
    for reason in ["Scheduled", "Pulling", "Started"] {
        assert!(events.contains(reason), "{reason} missing in\n{events}");
    }
    assert!(
        !events.contains("web-1"),
        "the field selector keeps other pods' events out:\n{events}"
    );

    t.kubectl_ok(&["delete", "pod", "web-1"]).await;
    let killing = t
        .kubectl_until(&["get", "events", "--field-selector", "reason=Killing"], |out| {
            out.contains("web-1")
        })
        .await;
    assert!(killing.contains("Stopping container main"), "{killing}");
    t.kubectl_until(&["get", "pods", "web-1"], |out| out.contains("Running"))
        .await;

    let deleted = t.kubectl_ok(&["delete", "statefulset", "web"]).await;
    assert_eq!(deleted.trim(), "statefulset.apps \"web\" deleted");
    t.kubectl_until(&["get", "pods", "-l", "app=web", "-o", "name"], |out| {
        out.trim().is_empty()
    })
    .await;
    let claims = t.kubectl_ok(&["get", "pvc", "-o", "name"]).await;
    assert!(
        claims.contains("data-web-0"),
        "claims are retained by default:\n{claims}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply() {
    let t = TestSim::start().await;
    let file = t.write("ssa.yaml", &manifest("ssa", "nginx:1.27", 1));
    let applied = t
        .kubectl_ok(&["apply", "--server-side", "--validate=false", "-f", &file])
        .await;
    assert_eq!(
        applied.trim(),
        "statefulset.apps/ssa serverside-applied\nservice/ssa serverside-applied"
    );
    let changed = t.write("ssa2.yaml", &manifest("ssa", "nginx:1.28", 1));
    t.kubectl_ok(&["apply", "--server-side", "--validate=false", "-f", &changed])
        .await;
    let image = t
        .kubectl_ok(&[
            "get",
            "statefulset",
            "ssa",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await;
    assert_eq!(image, "nginx:1.28");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_container_loops_and_keeps_its_previous_logs() {
    let t = TestSim::start().await;
    let file = t.write("crash.yaml", &manifest("boom", "example/crash:1", 1));
    t.kubectl_ok(&["apply", "--validate=false", "-f", &file]).await;
    // Between restarts kubectl shows the crash (`Error`) first and `CrashLoopBackOff` at the
    // kubelet's next sync, as Kubernetes 1.37's kubelet reports them.
    let restarted = |out: &str| out.lines().nth(1).and_then(|l| l.split_whitespace().nth(3)) != Some("0");
    t.kubectl_until(&["get", "pods", "boom-0"], |out| {
        out.contains("Error") && restarted(out)
    })
    .await;
    let pods = t
        .kubectl_until(&["get", "pods", "boom-0"], |out| out.contains("CrashLoopBackOff"))
        .await;
    assert!(pods.contains("0/1"), "{pods}");
    let previous = t.kubectl_ok(&["logs", "boom-0", "--previous"]).await;
    assert!(previous.contains("fatal error, exiting with code 1"), "{previous}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_new_lines_until_stopped() {
    let t = TestSim::start().await;
    let file = t.write("f.yaml", &manifest("follow", "nginx:1.27", 1));
    t.kubectl_ok(&["apply", "--validate=false", "-f", &file]).await;
    t.kubectl_ok(&["wait", "--for=condition=Ready", "pod/follow-0", "--timeout=20s"])
        .await;
    let mut command = std::process::Command::new("timeout");
    command
        .args(["2", "kubectl", "--cache-dir"])
        .arg(t.kubeconfig.with_extension("cache"))
        .args(["logs", "-f", "follow-0"])
        .env("KUBECONFIG", &t.kubeconfig);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(124), "still following when stopped: {text}");
    assert!(text.contains("main started"), "{text}");
    assert!(
        text.lines().filter(|l| l.contains("is running")).count() >= 2,
        "new lines arrive while following:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unschedulable_gpu_pod_stays_pending_with_the_schedulers_words() {
    let t = TestSim::start().await;
    let file = t.write(
        "gpu.yaml",
        &manifest("gpu", "trainer:1", 1).replace(r#"memory: 1Gi}"#, r#"memory: 1Gi, nvidia.com/gpu: "9"}"#),
    );
    t.kubectl_ok(&["apply", "--validate=false", "-f", &file]).await;
    let events = t
        .kubectl_until(
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=gpu-0,reason=FailedScheduling",
            ],
            |out| out.contains("FailedScheduling"),
        )
        .await;
    assert!(
        events.contains("0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 3 Insufficient nvidia.com/gpu"),
        "{events}"
    );
    let pods = t.kubectl_ok(&["get", "pods", "gpu-0"]).await;
    assert!(pods.contains("Pending"), "{pods}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused() {
    let t = TestSim::start().await;
    let config = std::fs::read_to_string(&t.kubeconfig).unwrap();
    let token = t.sim.token.clone().unwrap();
    std::fs::write(&t.kubeconfig, config.replace(&token, "wrong")).unwrap();
    let out = t.kubectl(&["get", "pods"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Unauthorized") || stderr.contains("provide credentials"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kubectl_version_on_the_machine_reads_nodes_and_pods() {
    let t = TestSim::start().await;
    let file = t.write("v.yaml", &manifest("versions", "nginx:1.27", 1));
    t.kubectl_ok(&["apply", "--validate=false", "-f", &file]).await;
    t.kubectl_ok(&["wait", "--for=condition=Ready", "pod/versions-0", "--timeout=20s"])
        .await;
    // The kubectl on the PATH, and every versioned kubectl beside the binary it resolves to
    // (a dispatcher with `kubectl.1.NN` siblings on some machines); however many there are.
    let resolved = std::process::Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
        .unwrap();
    let resolved = std::path::PathBuf::from(String::from_utf8_lossy(&resolved.stdout).trim());
    let mut binaries = vec![std::path::PathBuf::from("kubectl")];
    if let Some(dir) = resolved.parent().and_then(|d| std::fs::read_dir(d).ok()) {
        binaries.extend(dir.filter_map(Result::ok).map(|e| e.path()).filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("kubectl.1."))
        }));
    }
    for binary in &binaries {
        let output = std::process::Command::new(binary)
            .env("KUBECONFIG", &t.kubeconfig)
            .arg("--cache-dir")
            .arg(
                t.kubeconfig
                    .with_extension(binary.file_name().unwrap().to_string_lossy().replace('.', "-")),
            )
            .args(["get", "pods", "versions-0"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("1/1") && stdout.contains("Running"),
            "{}:\n{stdout}",
            binary.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_table_rows_as_pods_change() {
    let t = TestSim::start().await;
    let file = t.write("w.yaml", &manifest("watched", "nginx:1.27", 1));
    let mut command = std::process::Command::new("timeout");
    command
        .args(["4", "kubectl", "--cache-dir"])
        .arg(t.kubeconfig.with_extension("watch-cache"))
        .args(["get", "pods", "-w"])
        .env("KUBECONFIG", &t.kubeconfig);
    let watching = tokio::task::spawn_blocking(move || command.output().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    t.kubectl_ok(&["apply", "--validate=false", "-f", &file]).await;
    let out = watching.await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("watched-0"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.iter().all(|r| r.len() == 5),
        "every row has the table's five columns:\n{text}"
    );
    assert!(
        rows.iter().any(|r| r[2] == "Running"),
        "the pod is seen Running:\n{text}"
    );
}
