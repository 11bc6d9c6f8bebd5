//! The command line as a user runs it: exit codes, stdout and stderr of SPEC section 8.

use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Output, Stdio};

#[path = "support/llp_api.rs"]
mod llp_api;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");

fn llp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
        .args(args)
        .output()
        .expect("run llp-k8s")
}

/// Stops `child` as a terminal or Kubernetes would (SIGTERM) and waits for it.
fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    child.wait().unwrap()
}

fn llp_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run llp-k8s");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn example(name: &str) -> String {
    format!("{EXAMPLES}/{name}")
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {output:?}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn validate_prints_the_normalised_spec() {
    let out = llp(&["validate", &example("seed.yaml")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let spec = json(&out);
    assert_eq!(spec["containers"][0]["cpu"], 8);
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["restartPolicy"], "Always");
    assert!(out.stderr.is_empty());
}

#[test]
fn validate_reports_every_problem_in_the_directus_shape_and_exits_1() {
    let out = llp_stdin(
        &["validate", "-"],
        "containers:\n  - name: ../../etc\n    image: x\n    cpu: \"8\"\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let body = json(&out);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["extensions"]["code"], "VALIDATION_FAILED");
    let fields: Vec<&str> = errors
        .iter()
        .map(|e| e["extensions"]["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"containers[0].name") && fields.contains(&"containers[0].cpu"),
        "{fields:?}"
    );
    assert_eq!(stderr(&out).lines().count(), 1, "one line on stderr: {}", stderr(&out));
}

#[test]
fn validate_reports_a_broken_file_as_the_files_not_as_a_record_field() {
    let dir = tempdir();
    let file = dir.join("app.yaml");
    std::fs::write(&file, "containers:\n  - name: web\n\timage: nginx\n").unwrap();
    let out = llp(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let error = &json(&out)["errors"][0];
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{}: is not valid YAML: line 3", file.display())),
        "{message}"
    );
    assert_eq!(error["extensions"]["field"], file.to_str().unwrap());
    let out = llp_stdin(&["validate", "-"], "containers: [\n");
    assert!(
        json(&out)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("stdin: ")
    );
}

#[test]
fn validate_checks_the_record_exposed_fields() {
    let dir = tempdir();
    let record = dir.join("record.json");
    std::fs::write(
        &record,
        r#"{"exposed_service": "web", "exposed_port": 8080, "exposed_hostname": "app"}"#,
    )
    .unwrap();
    let out = llp(&[
        "validate",
        &example("minimal.yaml"),
        "--record",
        record.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["errors"][0]["extensions"]["field"], "exposed_port");

    std::fs::write(
        &record,
        r#"{"exposed_service": "web", "exposed_port": 80, "exposed_hostname": "app"}"#,
    )
    .unwrap();
    let out = llp(&[
        "validate",
        &example("minimal.yaml"),
        "--record",
        record.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["expose"]["hostname"], "app");
}

#[test]
fn validate_applies_the_limits_of_a_group() {
    let yaml = "containers: [{name: big, image: x, cpu: 200}]\n";
    assert_eq!(llp_stdin(&["validate", "-"], yaml).status.code(), Some(1));
    assert_eq!(
        llp_stdin(&["validate", "-", "--group", "management"], yaml)
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn an_unreadable_file_is_a_failure_with_one_line() {
    let out = llp(&["validate", "/nonexistent/spec.yaml"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("/nonexistent/spec.yaml"));
}

#[test]
fn a_usage_error_exits_2() {
    assert_eq!(llp(&["validate"]).status.code(), Some(2));
    assert_eq!(llp(&["validate", "x", "--frobnicate"]).status.code(), Some(2));
    assert_eq!(llp(&["launch"]).status.code(), Some(2));
}

#[test]
fn render_prints_the_objects_as_yaml_documents() {
    let out = llp(&["render", &example("record.json"), "--namespace", "lab"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("multi-document YAML");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["StatefulSet", "Service", "Ingress", "NetworkPolicy"]);
    assert!(docs.iter().all(|d| d["metadata"]["namespace"] == "lab"));
    assert_eq!(
        docs[0]["metadata"]["labels"]["llp.kitegg.de/owner"],
        "7c1e2d3f-0a1b-4c5d-8e9f-a0b1c2d3e4f5"
    );
}

#[test]
fn render_takes_the_owner_from_the_flag_or_asks_for_it() {
    let dir = tempdir();
    let record = dir.join("record.json");
    std::fs::write(
        &record,
        r#"{"id": 7, "data": "containers: [{name: web, image: nginx}]"}"#,
    )
    .unwrap();
    let out = llp(&["render", record.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "no owner anywhere: {}", stderr(&out));
    let out = llp(&["render", record.to_str().unwrap(), "--owner", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let docs: Vec<Value> = serde_saphyr::from_multiple(std::str::from_utf8(&out.stdout).unwrap()).unwrap();
    assert_eq!(docs[0]["metadata"]["name"], "sd-7");
    assert_eq!(docs[0]["metadata"]["labels"]["llp.kitegg.de/owner"], "alice");
}

#[test]
fn render_refuses_an_invalid_record_with_the_error_body() {
    let out = llp_stdin(
        &["render", "-"],
        r#"{"id": 1, "user_created": "u", "data": "containers: [{name: web, image: x, cpu: 99}]"}"#,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["errors"][0]["extensions"]["field"], "containers[0].cpu");

    let out = llp_stdin(&["render", "-"], "not json");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["errors"][0]["extensions"]["field"], "record");
}

#[test]
fn schema_prints_the_json_schema() {
    let out = llp(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema = json(&out);
    assert!(schema["$schema"].as_str().unwrap().contains("2020-12"));
    assert_eq!(schema["required"], serde_json::json!(["containers"]));
    assert_eq!(schema["additionalProperties"], false);
    let container = schema["$defs"]["Container"]["properties"]
        .as_object()
        .expect("container properties");
    for key in [
        "name",
        "image",
        "cpu",
        "memory",
        "gpu",
        "gpuCount",
        "volumeMounts",
        "fsGroup",
    ] {
        assert!(container.contains_key(key), "schema lacks {key}");
    }
}

/// A fresh directory under the target dir (no extra crate needed for two files).
fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "llp-cli-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn sim_refuses_an_unknown_gpu_resource() {
    let out = llp(&[
        "sim",
        "--listen",
        "127.0.0.1:0",
        "--kubeconfig",
        "/tmp/unused",
        "--gpus",
        "amd.com/gpu=1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("amd.com/gpu"), "{}", stderr(&out));
}

#[test]
fn sim_writes_a_kubeconfig_kubectl_can_use() {
    let dir = tempdir();
    let (mut child, kubeconfig) = start_sim(&dir, &["--nodes", "2", "--gpus", "nvidia.com/gpu=1"]);
    let nodes = Command::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .args([
            "--cache-dir",
            dir.join("cache").to_str().unwrap(),
            "get",
            "nodes",
            "-o",
            "name",
        ])
        .output()
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let names = String::from_utf8_lossy(&nodes.stdout);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["node/control-plane", "node/worker-1", "node/worker-2"],
        "{}",
        String::from_utf8_lossy(&nodes.stderr)
    );
}

#[test]
fn users_add_prints_a_token_once_and_stores_only_its_hash() {
    let dir = tempdir();
    let db = dir.join("users.sqlite");
    let out = llp(&[
        "users",
        "add",
        "alice",
        "--group",
        "management",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("llp_") && token.len() > 40, "{token}");
    // The database and its write-ahead log hold the user, but never the token itself.
    let stored: Vec<u8> = std::fs::read_dir(&dir)
        .unwrap()
        .flat_map(|f| std::fs::read(f.unwrap().path()).unwrap())
        .collect();
    assert!(stored.windows(5).any(|w| w == b"alice"), "the user is stored");
    assert!(
        !stored.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token itself is not in the database"
    );
    let second = llp(&["users", "add", "bob", "--db", db.to_str().unwrap()]);
    assert_ne!(String::from_utf8(second.stdout).unwrap().trim(), token);
}

#[test]
fn demo_prints_the_exports_first_and_serves() {
    use std::io::{BufRead, Read, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut exports = Vec::new();
    for _ in 0..4 {
        exports.push(lines.next().unwrap().unwrap());
    }
    let names: Vec<&str> = exports.iter().map(|l| l.split('=').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "export LLP_URL",
            "export ALICE_TOKEN",
            "export BOB_TOKEN",
            "export ADMIN_TOKEN"
        ]
    );
    let url = exports[0].trim_start_matches("export LLP_URL=http://").to_owned();
    assert!(
        exports[1..]
            .iter()
            .all(|l| l.split('=').nth(1).is_some_and(|t| t.starts_with("llp_"))),
        "{exports:?}"
    );
    // The service answers once the curl hints are printed.
    assert!(lines.next().unwrap().unwrap().starts_with('#'));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let answer = loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(&url) {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            break answer;
        }
        assert!(std::time::Instant::now() < deadline, "the demo never answered");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // SIGTERM: a clean stop, nothing reported, no temporary directory left.
    let status = terminate(&mut child);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(!stderr.contains("WARN") && !stderr.contains("ERROR"), "{stderr}");
    let temp = std::env::temp_dir().join(format!("llp-k8s-demo-{}", child.id()));
    assert!(!temp.exists(), "{} was left behind", temp.display());
}

#[test]
fn serve_without_a_cluster_says_why_once_suggests_the_demo_and_leaves_nothing() {
    let dir = tempdir();
    let out = Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
        .arg("serve")
        .current_dir(&dir)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("HOME", &dir)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "the cause once: {err}"
    );
    assert!(err.contains("llp-k8s demo") && err.contains("KUBECONFIG"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_reaches_the_cluster_of_the_kubeconfig_and_becomes_ready() {
    use std::io::{Read, Write};
    let dir = tempdir();
    let (mut sim, kubeconfig) = start_sim(&dir, &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let port = llp_api::free_port();
    let database = dir.join("serve.sqlite");
    let mut serve = start_serve(&kubeconfig, port, &[("LLP_DATABASE", database.to_str().unwrap())]);
    let ready = loop {
        let answer = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|mut stream| {
                stream
                    .write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                answer
            });
        if answer.as_deref().is_some_and(|a| a.starts_with("HTTP/1.1 200")) || std::time::Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    serve.kill().unwrap();
    sim.kill().unwrap();
    let _ = (serve.wait(), sim.wait());
    assert!(
        ready.as_deref().is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "{ready:?}"
    );
}

#[test]
fn serve_with_the_llp_api_but_no_url_says_which_setting_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
        .arg("serve")
        .env("LLP_RECORD_SOURCE", "directus")
        .env("LLP_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("records.directus.url (LLP_URL)"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_the_llp_api_as_record_source_acts_for_its_users_only() {
    let api = llp_api::llp_api();
    let alice = api.add_user("alice", llp_api::Role::Student).await;
    let bob = api.add_user("bob", llp_api::Role::Student).await;
    let id = api
        .create_record(
            &alice,
            serde_json::json!({"title": "web", "data": "containers: [{name: web, image: nginx}]"}),
        )
        .await;
    let dir = tempdir();
    let (mut sim, kubeconfig) = start_sim(&dir, &[]);
    let port = llp_api::free_port();
    // The documented example file, switched to the LLP API by the environment alone.
    let mut serve = start_serve(
        &kubeconfig,
        port,
        &[("LLP_RECORD_SOURCE", "directus"), ("LLP_URL", &api.url)],
    );
    let url = format!("http://127.0.0.1:{port}");
    let ready = llp_api::answers_ok(&format!("{url}/readyz"), std::time::Duration::from_secs(20)).await;
    let http = llp_api::client();
    let deployment = format!("{url}/kubernetes/deployments/{id}");
    let put = |token: &str| http.put(&deployment).bearer_auth(token).send();
    let (alices, bobs) = (put(&alice).await.unwrap().status(), put(&bob).await.unwrap().status());
    let items = http
        .get(format!("{url}/items/deployments"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .status();
    serve.kill().unwrap();
    sim.kill().unwrap();
    let _ = (serve.wait(), sim.wait());
    assert!(ready, "serve did not get ready");
    assert_eq!((alices.as_u16(), bobs.as_u16()), (201, 403));
    assert_eq!(items.as_u16(), 404, "the LLP API serves the records itself");
}

/// Runs `llp-k8s serve` with the documented example configuration against the cluster of
/// `kubeconfig`, on `port`, with `env` overriding the file.
fn start_serve(kubeconfig: &std::path::Path, port: u16, env: &[(&str, &str)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
        .args([
            "serve",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.example.toml"),
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("LLP_LISTEN", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs `llp-k8s sim` on a free port with `extra` flags; returns it and its kubeconfig once written.
fn start_sim(dir: &std::path::Path, extra: &[&str]) -> (std::process::Child, std::path::PathBuf) {
    let kubeconfig = dir.join("sim.kubeconfig");
    let child = Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !kubeconfig.exists() {
        assert!(std::time::Instant::now() < deadline, "no kubeconfig written");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The file appears before it is completely written.
    std::thread::sleep(std::time::Duration::from_millis(100));
    (child, kubeconfig)
}

#[test]
fn reservations_add_list_and_remove_book_gpus_in_the_embedded_file() {
    let dir = tempdir();
    let db = dir.join("bookings.sqlite");
    let db = db.to_str().unwrap();
    assert!(llp(&["users", "add", "alice", "--db", db]).status.success());
    let add = |extra: &[&str]| {
        let mut args = vec!["reservations", "add", "--db", db];
        args.extend_from_slice(extra);
        llp(&args)
    };
    let booked = add(&[
        "--user",
        "alice",
        "--gpus",
        "gpu-xs,gpu-xs",
        "--end",
        "2099-01-01T00:00:00Z",
    ]);
    assert_eq!(booked.status.code(), Some(0), "{}", stderr(&booked));
    let id = String::from_utf8(booked.stdout).unwrap().trim().to_owned();
    let list = llp(&["reservations", "list", "--db", db]);
    let text = String::from_utf8(list.stdout).unwrap();
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("{id}\t")))
        .expect("the booking is listed");
    assert!(row.contains("gpu-xs,gpu-xs") && row.ends_with("alice"), "{row}");

    // Mistakes name what is wrong; nothing is booked.
    let nobody = add(&["--user", "carol", "--gpus", "gpu-xs", "--end", "2099-01-01T00:00:00Z"]);
    assert_ne!(nobody.status.code(), Some(0));
    assert!(
        stderr(&nobody).contains("no user has the name or id `carol`"),
        "{}",
        stderr(&nobody)
    );
    let backwards = add(&[
        "--user",
        "alice",
        "--gpus",
        "gpu-xs",
        "--start",
        "2099-01-02T00:00:00Z",
        "--end",
        "2099-01-01T00:00:00Z",
    ]);
    assert!(
        stderr(&backwards).contains("before it starts"),
        "{}",
        stderr(&backwards)
    );
    let slug = add(&["--user", "alice", "--gpus", "a100", "--end", "2099-01-01T00:00:00Z"]);
    assert!(
        stderr(&slug).contains("`a100` is not a GPU profile"),
        "{}",
        stderr(&slug)
    );

    let removed = llp(&["reservations", "remove", &id, "--db", db]);
    assert_eq!(removed.status.code(), Some(0), "{}", stderr(&removed));
    let list = llp(&["reservations", "list", "--db", db]);
    assert_eq!(
        String::from_utf8(list.stdout).unwrap().lines().count(),
        1,
        "only the header is left"
    );
}

/// `llp-k8s demo` on a free port, once it is about to answer: the process and its exports
/// (`LLP_URL`, `ALICE_TOKEN`, …).
fn start_demo() -> (std::process::Child, std::collections::HashMap<String, String>) {
    start_demo_with(&[])
}

/// [`start_demo`] with more arguments.
fn start_demo_with(extra: &[&str]) -> (std::process::Child, std::collections::HashMap<String, String>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut vars = std::collections::HashMap::new();
    for _ in 0..4 {
        let line = lines.next().unwrap().unwrap();
        let (name, value) = line.trim_start_matches("export ").split_once('=').unwrap();
        vars.insert(name.to_owned(), value.to_owned());
    }
    // The hints come once the service is about to answer.
    while !lines.next().unwrap().unwrap().contains("gpu-xs") {}
    let _ = rustls::crypto::ring::default_provider().install_default();
    (child, vars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_sees_a_record_deleted_from_its_file_by_another_program() {
    let dir = tempdir();
    let db = dir.join("records.sqlite");
    let (mut child, vars) = start_demo_with(&["--db", db.to_str().unwrap()]);
    let http = reqwest::Client::new();
    let (url, token) = (&vars["LLP_URL"], &vars["ALICE_TOKEN"]);
    let record = create_record(
        &http,
        url,
        token,
        &serde_json::json!({"title": "web", "data": "containers: [{name: web, image: nginx}]"}),
    )
    .await;
    let item = format!("{url}/items/deployments/{}", record["data"]["id"].as_str().unwrap());
    let read = || async {
        http.get(&item)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(read().await, 200);
    let file = rusqlite::Connection::open(&db).unwrap();
    assert_eq!(file.execute("DELETE FROM deployments", []).unwrap(), 1);
    let gone = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while read().await != 404 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    terminate(&mut child);
    assert!(gone.is_ok(), "the demo kept serving a record deleted from its file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_a_training_run_to_completion_and_again() {
    let (mut child, vars) = start_demo();
    let http = reqwest::Client::new();
    let (url, token) = (&vars["LLP_URL"], &vars["ALICE_TOKEN"]);
    let run = serde_json::json!({"title": "run", "data": "containers: [{name: train, image: trainer, cpu: 1, memory: 1}]\nreplicas: 2\nrestartPolicy: Never"});
    let record = create_record(&http, url, token, &run).await;
    let deployment = format!(
        "{url}/kubernetes/deployments/{}",
        record["data"]["id"].as_str().unwrap()
    );
    let put = http.put(&deployment).bearer_auth(token).send().await.unwrap();
    assert_eq!(put.status().as_u16(), 201);
    let status = |http: reqwest::Client| {
        let (deployment, token) = (deployment.clone(), token.clone());
        async move {
            let answer = http.get(&deployment).bearer_auth(&token).send().await.unwrap();
            answer.json::<Value>().await.unwrap()
        }
    };
    // The demo's cluster pulls an image in 1.5 s and completes a run's container after 5 s.
    let done = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let s = status(http.clone()).await;
            if s["run"]["state"] == "Complete" {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    })
    .await;
    terminate(&mut child);
    let done = done.expect("the run completes");
    assert_eq!(done["run"]["succeeded"], 2, "{done}");
    assert!(
        done["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["phase"] == "Succeeded"),
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_lets_alice_deploy_on_her_gpu_booking_and_tells_bob_what_he_lacks() {
    let (mut child, vars) = start_demo();
    let http = reqwest::Client::new();
    let url = &vars["LLP_URL"];
    let gpu = serde_json::json!({"title": "training", "data": "containers: [{name: train, image: pytorch/pytorch, gpu: nvidia.com/mig-1g.10gb}]"});
    let mut answers = Vec::new();
    for user in ["ALICE_TOKEN", "BOB_TOKEN"] {
        let token = &vars[user];
        let record = create_record(&http, url, token, &gpu).await;
        let id = record["data"]["id"].as_str().unwrap();
        let deployed = http
            .put(format!("{url}/kubernetes/deployments/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        answers.push((deployed.status().as_u16(), deployed.json::<Value>().await.unwrap()));
    }
    terminate(&mut child);
    assert_eq!(answers[0].0, 201, "{}", answers[0].1);
    assert_eq!(answers[1].0, 400, "{}", answers[1].1);
    assert_eq!(answers[1].1["errors"][0]["extensions"]["code"], "NOT_ENOUGH_RESOURCES");
    assert!(
        answers[1].1["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("needs 1 × nvidia.com/mig-1g.10gb (gpu-xs) for 1 replica; your reservations active now cover 0"),
        "{}",
        answers[1].1
    );
}

#[test]
fn a_reader_that_stops_reading_is_not_an_error() {
    // `llp-k8s schema | head -1`: the pipe's reader is gone before the schema is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
        .arg("schema")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_unknown_group_is_a_usage_error_naming_the_known_ones() {
    let out = llp(&["validate", &example("seed.yaml"), "--group", "managment"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no group `managment`") && stderr(&out).contains("management"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn users_need_a_name_of_their_own() {
    let dir = tempdir();
    let db = dir.join("names.sqlite");
    let db = db.to_str().unwrap();
    assert!(llp(&["users", "add", "alice", "--db", db]).status.success());
    let again = llp(&["users", "add", "alice", "--db", db]);
    assert_eq!(again.status.code(), Some(3));
    assert!(
        stderr(&again).contains("a user named `alice` exists already"),
        "{}",
        stderr(&again)
    );
    assert!(again.stdout.is_empty(), "no token printed");
    let blank = llp(&["users", "add", " ", "--db", db]);
    assert!(stderr(&blank).contains("a user needs a name"), "{}", stderr(&blank));
}

/// Two `llp-k8s serve` processes on one SQLite file and one cluster (the simulator), as two
/// replicas behind one Service: records made through one are served by the other, and deploys
/// sent to both at once never pass the quota (3 deployments), round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_one_file_share_records_and_never_pass_a_quota_together() {
    let dir = tempdir();
    let (mut sim, kubeconfig) = start_sim(&dir, &[]);
    let database = dir.join("shared.sqlite");
    let out = llp(&["users", "add", "alice", "--db", database.to_str().unwrap()]);
    let alice = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let config = dir.join("quota.toml");
    std::fs::write(&config, "[limits.default.quota]\ndeployments = 3\n").unwrap();
    let ports = [llp_api::free_port(), llp_api::free_port()];
    let mut replicas: Vec<_> = ports
        .iter()
        .map(|port| {
            Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
                .args(["serve", "--config", config.to_str().unwrap()])
                .env("KUBECONFIG", &kubeconfig)
                .env("LLP_LISTEN", format!("127.0.0.1:{port}"))
                .env("LLP_DATABASE", &database)
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let urls: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    let outcome = async move {
        for url in &urls {
            let ready = llp_api::answers_ok(&format!("{url}/readyz"), std::time::Duration::from_secs(30)).await;
            assert!(ready, "{url} did not get ready");
        }
        let http = llp_api::client();
        for round in 0..20 {
            let mut ids = Vec::new();
            for n in 0..8 {
                // Made through one replica, deployed through the other.
                let made: Value = http
                    .post(format!("{}/items/deployments", urls[n % 2]))
                    .bearer_auth(&alice)
                    .json(&serde_json::json!({"data": "containers: [{name: web, image: nginx, cpu: 1, memory: 0.1}]"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                ids.push((n, made["data"]["id"].as_str().unwrap().to_owned()));
            }
            let puts = ids.iter().map(|(n, id)| {
                let url = format!("{}/kubernetes/deployments/{id}", urls[(n + 1) % 2]);
                let request = http.put(url).bearer_auth(&alice);
                async move { request.send().await.unwrap().status().as_u16() }
            });
            let statuses = futures::future::join_all(puts).await;
            let admitted: Vec<&String> = ids
                .iter()
                .zip(&statuses)
                .filter(|(_, s)| **s == 201)
                .map(|((_, id), _)| id)
                .collect();
            assert_eq!(admitted.len(), 3, "round {round}: {statuses:?}");
            assert!(
                statuses.iter().all(|s| *s == 201 || *s == 400),
                "round {round}: {statuses:?}"
            );
            for id in admitted {
                let deleted = http
                    .delete(format!("{}/kubernetes/deployments/{id}", urls[round % 2]))
                    .bearer_auth(&alice)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(deleted.status().as_u16(), 200);
                // Both replicas have seen it go before the next round.
                for url in &urls {
                    let gone = format!("{url}/kubernetes/deployments/{id}");
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                    while http.get(&gone).bearer_auth(&alice).send().await.unwrap().status() != 404 {
                        assert!(std::time::Instant::now() < deadline, "{url} still shows {id}");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                }
            }
        }
    };
    let result = tokio::spawn(outcome).await;
    for replica in &mut replicas {
        let _ = terminate(replica);
    }
    sim.kill().unwrap();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// Creates a record through the service at `url` with `token`; the answer.
async fn create_record(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> Value {
    http.post(format!("{url}/items/deployments"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The most memory the process `pid` has held, in MiB (`VmHWM`).
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_that_expands_to_megabytes_is_refused_at_once_within_a_fixed_memory_bound() {
    let (mut child, vars) = start_demo();
    let (url, token) = (vars["LLP_URL"].clone(), vars["ALICE_TOKEN"].clone());
    let http = reqwest::Client::new();
    let before = peak_mib(child.id());
    // 30 KB of text aliased 900 times: 27 MB of strings if expanded, from a 35 KB body.
    let attack = format!("k: &a {}\nv: [{}]\n", "x".repeat(30 * 1024), vec!["*a"; 900].join(", "));
    // A record of Alice's to send the attack to as a deployment's `data` too.
    let record = create_record(
        &http,
        &url,
        &token,
        &serde_json::json!({"title": "bomb", "data": attack}),
    )
    .await;
    let id = record["data"]["id"].as_str().unwrap().to_owned();
    let sends = (0..40).map(|i| {
        let (http, url, token, id, attack) = (http.clone(), url.clone(), token.clone(), id.clone(), attack.clone());
        async move {
            let request = if i % 2 == 0 {
                http.put(format!("{url}/kubernetes/deployments/{id}/secret"))
                    .json(&Value::String(attack))
            } else {
                http.put(format!("{url}/kubernetes/deployments/{id}"))
            };
            let answer = request.bearer_auth(&token).send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.text().await.unwrap())
        }
    });
    for (status, body) in futures::future::join_all(sends).await {
        assert_eq!(status, 400, "{body}");
        assert!(
            body.contains("too large once its anchors and aliases are expanded"),
            "{body}"
        );
    }
    let after = peak_mib(child.id());
    terminate(&mut child);
    eprintln!("peak memory of the demo: {before} MiB before, {after} MiB after 40 hostile bodies at once");
    // Before the budget, each of these built 27 MB of strings: 40 at once, a gigabyte.
    assert!(after < before + 100, "{before} MiB before, {after} MiB after");
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_asks_the_service_and_prints_its_answer_without_deploying() {
    let (mut child, vars) = start_demo();
    let (url, alice, bob) = (&vars["LLP_URL"], &vars["ALICE_TOKEN"], &vars["BOB_TOKEN"]);
    let http = reqwest::Client::new();
    let web = json!({"title": "web", "data": "containers: [{name: web, image: nginx}]"});
    let created = create_record(&http, url, alice, &web).await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let dir = tempdir();
    let file = dir.join("record.json");
    let preview = |token: &str, record: Value| {
        std::fs::write(&file, record.to_string()).unwrap();
        Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
            .args(["preview", file.to_str().unwrap()])
            .env("LLP_URL", url)
            .env("LLP_TOKEN", token)
            .output()
            .unwrap()
    };

    // The file's YAML, not the stored one's, is what is tried.
    let three = json!({"id": id, "data": "replicas: 3\ncontainers: [{name: web, image: nginx}]"});
    let out = preview(alice, three.clone());
    assert!(out.status.success(), "{}", stderr(&out));
    let answer = json(&out);
    assert_eq!(answer["dryRun"], true);
    assert_eq!(answer["spec"]["replicas"], 3, "{answer:#}");
    assert!(
        answer["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["kind"] == "StatefulSet"),
        "{answer:#}"
    );
    let status = http
        .get(format!("{url}/kubernetes/deployments/{id}"))
        .bearer_auth(alice)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404, "a preview deploys nothing");

    // A refusal: the error body on stdout, exit 1.
    let out = preview(alice, json!({"id": id, "data": "containers: [{name: web}]"}));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(json(&out)["errors"][0]["extensions"]["field"], "containers[0].image");
    let out = preview(bob, three.clone());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["errors"][0]["extensions"]["code"], "NOT_FOUND");
    // Without a service to ask: a usage error saying what to give.
    let out = Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
        .args(["preview", file.to_str().unwrap()])
        .env_remove("LLP_URL")
        .env("LLP_TOKEN", alice)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("LLP_URL"), "{}", stderr(&out));
    terminate(&mut child);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_shows_alices_gpu_deployment_accruing_in_the_demo() {
    let (mut child, vars) = start_demo();
    let (url, alice, bob) = (&vars["LLP_URL"], &vars["ALICE_TOKEN"], &vars["BOB_TOKEN"]);
    let http = reqwest::Client::new();
    let training = json!({"title": "training", "data": "containers: [{name: train, image: pytorch/pytorch, gpu: nvidia.com/mig-1g.10gb}]"});
    let id = create_record(&http, url, alice, &training).await["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = http
        .put(format!("{url}/kubernetes/deployments/{id}"))
        .bearer_auth(alice)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201, "alice's booking covers it");
    let usage = |token: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_llp-k8s"))
            .arg("usage")
            .args(args)
            .env("LLP_URL", url)
            .env("LLP_TOKEN", token)
            .output()
            .unwrap()
    };
    // The accountant looks every 10 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let used = loop {
        let out = usage(alice, &["--by", "deployment"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let rows = json(&out)["data"].clone();
        if let Some(row) = rows.as_array().unwrap().iter().find(|r| r["key"] == id.as_str()) {
            break row["gpuSeconds"].as_f64().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no usage of {id}: {rows}");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    assert!(used > 0.0);
    let csv = usage(alice, &["--by", "profile", "--csv"]);
    let text = String::from_utf8(csv.stdout).unwrap();
    assert!(
        text.starts_with("profile,gpuSeconds,bookedSeconds,wattHours\n\"gpu-xs\","),
        "{text}"
    );
    let bobs = usage(bob, &[]);
    assert_eq!(
        json(&bobs)["data"],
        json!([]),
        "bob used nothing, and sees nobody else's"
    );
    let bad = usage(alice, &["--by", "team"]);
    assert_eq!(bad.status.code(), Some(1));
    terminate(&mut child);
}
