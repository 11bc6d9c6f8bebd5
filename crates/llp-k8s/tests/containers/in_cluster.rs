//! The service from its own image, in the cluster: built from the repository's Containerfile
//! without a registry (`testbed/images/service.sh`), run by `deploy/llp-k8s.yaml` unchanged
//! but for the image and the LLP API's address (a real Directus), with in-cluster
//! configuration, its ServiceAccount and the real Role; the README's walkthrough through its
//! Service.

use crate::llp_api::{Role, client, llp_api};
use crate::node::take_turn;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

const MANIFESTS: &str = include_str!("../../../../deploy/llp-k8s.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_from_its_own_image_by_the_deploy_manifests_and_serves_the_walkthrough() {
    let (_turn, _app) = take_turn().await;
    let testbed = crate::testbed::with_real_node();
    let node: IpAddr = testbed.node_address().unwrap();
    let image = build_image(testbed.images_dir().unwrap()).await;
    testbed.import_image(&image).unwrap();

    let llp = llp_api();
    let directus = relay_to(node, llp.url.trim_start_matches("http://")).await;
    let admin = crate::testbed::admin_of(testbed);
    apply_manifests(&admin, &format!("http://{directus}")).await;
    let url = wait_for_the_service(&admin).await;
    both_replicas_ready(&admin).await;

    // The walkthrough, as alice and bob of the LLP, over HTTP through the Service.
    let alice = llp.add_user("alice-in-cluster", Role::Student).await;
    let bob = llp.add_user("bob-in-cluster", Role::Student).await;
    let http = client();
    let record = json!({"title": "My NGINX Service",
        "data": "containers: [{name: web, image: nginx, cpu: 1, memory: 0.25, ports: [{name: http, port: 80}]}]"});
    let id = llp.create_record(&alice, record).await;
    let deployment = format!("{url}/kubernetes/deployments/{id}");
    // The Service routes to the pod once kube-proxy has its endpoint (a moment after Ready).
    let put = poll(30, || async {
        http.put(&deployment).bearer_auth(&alice).send().await.ok()
    })
    .await
    .expect("the Service never routed to the service");
    if put.status() != 201 {
        let status = put.status();
        let body = put.text().await.unwrap();
        panic!(
            "PUT answered {status}: {body}\nthe service's log:\n{}",
            service_log(&admin).await
        );
    }

    let status = poll(120, || async {
        let body: Value = http
            .get(&deployment)
            .bearer_auth(&alice)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (body["pods"][0]["containers"][0]["ready"] == true).then_some(body)
    })
    .await
    .expect("alice's nginx never became ready through the in-cluster service");
    let pod = status["pods"][0]["name"].as_str().unwrap().to_owned();

    let bobs = http.get(&deployment).bearer_auth(&bob).send().await.unwrap();
    assert!(
        matches!(bobs.status().as_u16(), 403 | 404),
        "bob saw alice's deployment: {}",
        bobs.status()
    );

    // nginx answers at its pod's address (the test sends traffic to pods, not to Service IPs:
    // pod-to-Service routing is `serving`'s), and its access log comes through the service.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "services");
    let selector = format!("llp.kitegg.de/deployment={id}");
    let listed = pods.list(&ListParams::default().labels(&selector)).await.unwrap();
    let nginx_ip = listed
        .items
        .iter()
        .find_map(|p| p.status.as_ref()?.pod_ip.clone())
        .expect("alice's nginx pod has an address");
    let welcome = poll(60, || async {
        let text = text_of(http.get(format!("http://{nginx_ip}/"))).await?;
        text.contains("Welcome to nginx!").then_some(())
    })
    .await;
    assert!(welcome.is_some(), "nginx never answered at {nginx_ip}");
    let logs = poll(60, || async {
        let text = text_of(http.get(format!("{deployment}/logs/{pod}")).bearer_auth(&alice)).await?;
        text.contains("\"GET / HTTP/1.1\" 200").then_some(text)
    })
    .await;
    assert!(logs.is_some(), "nginx's own log never came through the service");

    // One replica after the other restarts (a rollout) while alice polls, deploys again and
    // follows a log through the Service: not one request fails.
    let load = Load::start(
        &http,
        &deployment,
        &alice,
        &format!("{deployment}/logs/{pod}?follow=true"),
    );
    restart_the_service(&admin).await;
    let load = load.stop().await;
    assert!(
        load.failures.is_empty(),
        "failed during the restart: {:#?}",
        load.failures
    );
    assert!(
        load.polls > 20 && load.deploys > 5 && load.follows > 0,
        "too little load to tell: {load:?}"
    );

    let deleted = http.delete(&deployment).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    let gone = poll(90, || async {
        let code = http.get(&deployment).bearer_auth(&alice).send().await.ok()?.status();
        (code == 404).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the deployment was still there after DELETE");
    Api::<Deployment>::namespaced(admin, "llp-system")
        .delete("llp-k8s", &kube::api::DeleteParams::foreground())
        .await
        .unwrap();
}

/// Alice's steady use of the service during a restart: status polls, deploys of the same
/// record, a followed log (resumed whenever it ends cleanly).
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(&'static str, u64, Vec<String>)>>,
}

/// What a [`Load`] did.
#[derive(Debug)]
struct Done {
    polls: u64,
    deploys: u64,
    follows: u64,
    failures: Vec<String>,
}

impl Load {
    fn start(http: &reqwest::Client, deployment: &str, token: &str, follow: &str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let repeat = |what: &'static str, method: reqwest::Method, url: String, pause: u64, expect: u16| {
            let (http, token, stop) = (http.clone(), token.to_owned(), stop.clone());
            tokio::spawn(async move {
                let (mut sent, mut failures) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    sent += 1;
                    let answer = http.request(method.clone(), &url).bearer_auth(&token).send().await;
                    match answer {
                        Ok(a) if a.status() == expect => {
                            // Read to the end: a followed log until the replica ends it.
                            if let Err(error) = a.bytes().await {
                                failures.push(format!("{what}: the body broke off: {error}"));
                            }
                        }
                        Ok(a) => failures.push(format!(
                            "{what}: {}: {}",
                            a.status(),
                            a.text().await.unwrap_or_default()
                        )),
                        Err(error) => failures.push(format!("{what}: {error}")),
                    }
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                (what, sent, failures)
            })
        };
        let tasks = vec![
            repeat("poll", reqwest::Method::GET, deployment.to_owned(), 50, 200),
            repeat("deploy", reqwest::Method::PUT, deployment.to_owned(), 300, 200),
            repeat("follow", reqwest::Method::GET, follow.to_owned(), 100, 200),
        ];
        Self { stop, tasks }
    }

    async fn stop(self) -> Done {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut done = Done {
            polls: 0,
            deploys: 0,
            follows: 0,
            failures: Vec::new(),
        };
        for task in self.tasks {
            // A followed log that never ends keeps its task: it has said what it had to.
            let Ok(Ok((what, sent, failures))) = tokio::time::timeout(Duration::from_secs(5), task).await else {
                done.follows += 1;
                continue;
            };
            match what {
                "poll" => done.polls = sent,
                "deploy" => done.deploys = sent,
                _ => done.follows += sent,
            }
            done.failures.extend(failures);
        }
        done
    }
}

/// Restarts the service's pods one after the other (`kubectl rollout restart`) and waits
/// until the new ones serve and the old ones are gone.
async fn restart_the_service(admin: &kube::Client) {
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "llp-system");
    let now = jiff::Timestamp::now().to_string();
    let patch =
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
    let patched = deployments
        .patch("llp-k8s", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    let generation = patched.metadata.generation.unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "llp-system");
    let done = poll(180, || async {
        let status = deployments.get("llp-k8s").await.ok()?.status?;
        let all = pods
            .list(&ListParams::default().labels("app=llp-k8s"))
            .await
            .ok()?
            .items
            .len();
        (status.observed_generation.unwrap_or_default() >= generation
            && status.updated_replicas == Some(2)
            && status.ready_replicas == Some(2)
            && status.replicas == Some(2)
            && all == 2)
            .then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "the rollout did not finish: {:#?}",
        deployments.get("llp-k8s").await.map(|d| d.status)
    );
}

/// The service's image, built from the Containerfile with the binary this test run built.
async fn build_image(images: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_llp-k8s")).canonicalize().unwrap();
    // The image is built with the repository as its context: a binary built outside it (a
    // `CARGO_TARGET_DIR` elsewhere) is copied in first.
    let relative = match binary.strip_prefix(&root) {
        Ok(inside) => inside.to_owned(),
        Err(_) => {
            let copy = root.join("target/image-input/llp-k8s");
            std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
            std::fs::copy(&binary, &copy).expect("the binary copied into the repository's target/");
            copy.strip_prefix(&root).unwrap().to_owned()
        }
    };
    let out = std::env::temp_dir().join(format!("llp-k8s-image-{}.tar", std::process::id()));
    let script = root.join("testbed/images/service.sh");
    let (rootfs, target) = (images.join("debian-rootfs.tar"), out.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg(script)
            .arg(rootfs)
            .arg(relative)
            .arg(target)
            .current_dir(&root)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "service.sh failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// A TCP relay on the node's address to `target` (Directus listens on loopback, which pods
/// cannot reach); its address.
async fn relay_to(node: IpAddr, target: &str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind((node, 0)).await.unwrap();
    let address = listener.local_addr().unwrap();
    let target = target.to_owned();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    address
}

/// Applies `deploy/llp-k8s.yaml` as the cluster's admin, changing only the image (a tag the
/// node has, so that it is not pulled) and, in the ConfigMap, the LLP API's URL and the pull
/// policy of the deployments (the node's images are not in a registry either).
async fn apply_manifests(admin: &kube::Client, llp_url: &str) {
    for name in ["llp-system", "services"] {
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        let _ = Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &namespace)
            .await;
    }
    let apply = PatchParams::apply("llp-k8s-tests").force();
    for mut document in serde_saphyr::from_multiple::<Value>(MANIFESTS).unwrap() {
        let kind = document["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "Deployment" => {
                document["spec"]["template"]["spec"]["containers"][0]["image"] = json!("llp-k8s:testbed");
            }
            "ConfigMap" => {
                let config = document["data"]["config.toml"].as_str().unwrap().to_owned();
                let config = config
                    .replace("https://llp.example.org", llp_url)
                    .replace("[cluster]\n", "[cluster]\nimage_pull_policy = \"IfNotPresent\"\n");
                assert!(config.contains(llp_url), "the ConfigMap names the LLP API's URL");
                document["data"]["config.toml"] = json!(config);
            }
            _ => {}
        }
        let (api_version, name) = (
            document["apiVersion"].as_str().unwrap().to_owned(),
            document["metadata"]["name"].as_str().unwrap().to_owned(),
        );
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        let resource =
            kube::discovery::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, version, &kind));
        let api: Api<kube::core::DynamicObject> = match document["metadata"]["namespace"].as_str() {
            Some(namespace) => Api::namespaced_with(admin.clone(), namespace, &resource),
            None => Api::all_with(admin.clone(), &resource),
        };
        api.patch(&name, &apply, &Patch::Apply(&document))
            .await
            .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
    }
}

/// Waits until the service's pod is ready (its readiness probe: the LLP API and the watch
/// caches); the Service's URL.
async fn wait_for_the_service(admin: &kube::Client) -> String {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "llp-system");
    let ready = poll(120, || async {
        let list = pods.list(&ListParams::default().labels("app=llp-k8s")).await.ok()?;
        list.items
            .iter()
            .any(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .then_some(())
    })
    .await;
    if ready.is_none() {
        let list = pods.list(&ListParams::default()).await.unwrap();
        let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "llp-system");
        panic!(
            "the service's pod was never ready; its log:\n{}\n{:#?}\n{:#?}",
            service_log(admin).await,
            list.items.iter().map(|p| &p.status).collect::<Vec<_>>(),
            deployments.get("llp-k8s").await.map(|d| d.status)
        );
    }
    let service = Api::<Service>::namespaced(admin.clone(), "llp-system")
        .get("llp-k8s")
        .await
        .unwrap();
    let ip = service.spec.unwrap().cluster_ip.unwrap();
    format!("http://{ip}:80")
}

/// Waits until both of the service's replicas are ready.
async fn both_replicas_ready(admin: &kube::Client) {
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "llp-system");
    let ready = poll(120, || async {
        let status = deployments.get("llp-k8s").await.ok()?.status?;
        (status.ready_replicas == Some(2)).then_some(())
    })
    .await;
    assert!(ready.is_some(), "the service's two replicas were never both ready");
}

/// The in-cluster service's own log, to explain a failure.
async fn service_log(admin: &kube::Client) -> String {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "llp-system");
    let Ok(list) = pods.list(&ListParams::default().labels("app=llp-k8s")).await else {
        return "(no pod)".into();
    };
    let mut text = String::new();
    for pod in list.items {
        let name = pod.metadata.name.unwrap_or_default();
        let previous = kube::api::LogParams {
            previous: true,
            ..Default::default()
        };
        for params in [previous, Default::default()] {
            text.push_str(&pods.logs(&name, &params).await.unwrap_or_else(|e| e.to_string()));
        }
    }
    text
}

/// The body of `request`'s answer, if there was one.
async fn text_of(request: reqwest::RequestBuilder) -> Option<String> {
    request.send().await.ok()?.text().await.ok()
}

/// Calls `attempt` every half second until it returns something, for at most `seconds`.
async fn poll<T, F, Fut>(seconds: u64, attempt: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while tokio::time::Instant::now() < deadline {
        if let Some(found) = attempt().await {
            return Some(found);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}
