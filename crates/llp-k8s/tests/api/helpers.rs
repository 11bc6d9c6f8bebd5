//! A service with an embedded record store and three users: alice, bob and an admin.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use llp_k8s::cluster::Cluster;
use llp_k8s::http::{AppParts, AppState, router};
use llp_k8s::records::RecordSource;
use llp_k8s::records::embedded::EmbeddedStore;
use llp_sim::{ClusterSpec, SimOptions, Simulator, Timings};
use llp_spec::{LimitsTable, RenderConfig};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

pub struct TestApp {
    pub state: AppState,
    /// Shuts the service down (ends log streams).
    pub stop: tokio::sync::watch::Sender<bool>,
    pub sim: Option<Simulator>,
    /// How the service reaches the cluster, for another replica to do the same.
    pub cluster_config: Option<kube::Config>,
    /// The backend the cluster runs on.
    pub backend: Backend,
    pub alice: String,
    pub bob: String,
    pub admin: String,
    /// The record store's directory, removed with the app.
    _scratch: Scratch,
}

/// A directory removed when dropped, so that tests leave nothing in the temp directory.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn app() -> TestApp {
    let dir = std::env::temp_dir().join(format!("llp-api-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = EmbeddedStore::open(&dir.join("llp.sqlite")).unwrap();
    let (_, alice) = store.add_user("alice", &[], false).unwrap();
    let (_, bob) = store.add_user("bob", &[], false).unwrap();
    let (_, admin) = store.add_user("root", &[], true).unwrap();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let state: AppState = AppParts {
        records: Arc::new(store.clone()),
        embedded: Some(store.clone()),
        cluster: None,
        render: Arc::new(RenderConfig::default()),
        limits: Arc::new(LimitsTable::default()),
        locks: Arc::default(),
        shutdown: stopping,
        metrics: Arc::default(),
        reservations: Arc::default(),
        follows: Arc::default(),
        orphans: Arc::default(),
        usage: llp_k8s::usage::Usage {
            store: Some(Arc::new(store)),
            energy: None,
        },
        status_memo: Arc::default(),
        terminals: Arc::new(llp_k8s::http::server::Terminals::new(
            llp_k8s::config::ServerLimits::default().terminals_per_user,
        )),
        terminal_idle: std::time::Duration::from_secs(llp_k8s::config::ServerLimits::default().terminal_idle_seconds),
        status_streams: Arc::new(llp_k8s::http::server::StatusStreams::new(
            llp_k8s::config::ServerLimits::default().status_streams_per_user,
        )),
    }
    .into();
    TestApp {
        state,
        alice,
        bob,
        admin,
        sim: None,
        cluster_config: None,
        backend: Backend::Sim,
        stop,
        _scratch: Scratch(dir),
    }
}

/// The app against a fresh simulator, its caches synced.
pub async fn app_with_cluster() -> TestApp {
    app_with_sim(SimOptions::default()).await
}

/// The app against a fresh simulator started with `options` (fast timings).
pub async fn app_with_sim(options: SimOptions) -> TestApp {
    app_with_sim_timings(options, Timings::fast()).await
}

/// [`app_with_sim`] with the simulated cluster's `timings`.
pub async fn app_with_sim_timings(options: SimOptions, timings: Timings) -> TestApp {
    let mut app = app();
    let cluster = ClusterSpec {
        timings,
        ..ClusterSpec::default()
    };
    let sim = Simulator::start(SimOptions { cluster, ..options }).await.unwrap();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig("services")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let deadline = llp_k8s::cluster::calls::REQUEST_DEADLINE;
    let client =
        llp_k8s::cluster::calls::counted_client(config.clone(), app.state.metrics.api_calls(), deadline).unwrap();
    let cluster = Cluster::start(client, "services");
    cluster.caches.ready().await.unwrap();
    app.state.cluster = Some(cluster);
    app.sim = Some(sim);
    app.cluster_config = Some(config);
    app
}

/// The app against a fresh simulator reached through a [`Relay`] that can freeze, with
/// `deadline` for each Kubernetes API request.
pub async fn app_behind_relay(deadline: std::time::Duration) -> (TestApp, Relay) {
    let mut app = app();
    let cluster = ClusterSpec {
        timings: Timings::fast(),
        ..ClusterSpec::default()
    };
    let sim = Simulator::start(SimOptions {
        cluster,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let yaml = sim.kubeconfig("services");
    let server = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .expect("a server in the kubeconfig")
        .to_owned();
    let relay = Relay::start(server.parse().unwrap()).await;
    let yaml = yaml.replace(&server, &relay.addr.to_string());
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = llp_k8s::cluster::calls::counted_client(config, app.state.metrics.api_calls(), deadline).unwrap();
    let mut cluster = Cluster::start_probing(client, "services", std::time::Duration::from_millis(200));
    cluster.stale_after = 2 * deadline;
    cluster.caches.ready().await.unwrap();
    app.state.cluster = Some(cluster);
    app.sim = Some(sim);
    (app, relay)
}

/// A TCP relay in front of an API server that can freeze: while frozen it accepts
/// connections and holds every byte, as a stopped (SIGSTOP) API server would, until thawed.
pub struct Relay {
    /// Where clients connect.
    pub addr: std::net::SocketAddr,
    frozen: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    thawed(&mut watch).await;
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (client_in, client_out) = client.into_split();
                    let (server_in, server_out) = server.into_split();
                    tokio::join!(
                        pump(client_in, server_out, watch.clone()),
                        pump(server_in, client_out, watch)
                    );
                });
            }
        });
        Self { addr, frozen }
    }

    /// Stops relaying.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Relays again.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

async fn thawed(frozen: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = frozen.wait_for(|f| !*f).await;
}

async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        thawed(&mut frozen).await;
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// The app against the shared real control plane (llp-testbed), in a namespace of its own,
/// acting as the manifest's ServiceAccount (real RBAC), its caches synced.
pub async fn app_with_testbed() -> TestApp {
    app_with_testbed_of(crate::testbed::shared()).await
}

/// The same on `testbed` (one a test has to itself, to restart its API server, say).
pub async fn app_with_testbed_of(testbed: &llp_testbed::Testbed) -> TestApp {
    let mut app = app();
    let (namespace, config) = crate::testbed::service_account_in_fresh_namespace_of(testbed, "t").await;
    let deadline = llp_k8s::cluster::calls::REQUEST_DEADLINE;
    let client =
        llp_k8s::cluster::calls::counted_client(config.clone(), app.state.metrics.api_calls(), deadline).unwrap();
    let cluster = Cluster::start(client, &namespace);
    cluster.caches.ready().await.unwrap();
    app.state.render = Arc::new(RenderConfig {
        namespace: namespace.clone(),
        ..RenderConfig::default()
    });
    app.state.cluster = Some(cluster);
    app.cluster_config = Some(config);
    app.backend = Backend::Real;
    app
}

/// The cluster a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The built-in simulator (fast).
    Sim,
    /// The real control plane of llp-testbed (the judge).
    Real,
}

/// The app against a fresh cluster of `backend`.
pub async fn app_on(backend: Backend) -> TestApp {
    match backend {
        Backend::Sim => app_with_cluster().await,
        Backend::Real => app_with_testbed().await,
    }
}

/// Declares each `async fn name(backend) { … }` as two tests, `name::on_simulator` and
/// `name::on_kubernetes`, running the same body against each backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block)*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($backend: $crate::helpers::Backend) $body
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_simulator() {
                    run($crate::helpers::Backend::Sim).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_kubernetes() {
                    run($crate::helpers::Backend::Real).await
                }
            }
        )*
    };
}

/// A name no other app of this process (nor of another test process) has: two tests that
/// start at the same instant once shared a directory, and its users.
fn uuid_like() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}-{:?}", std::process::id(), std::time::Instant::now())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

impl TestApp {
    /// The same app with `records` as its record source (and no `/items/deployments`).
    pub fn with_records(mut self, records: Arc<dyn RecordSource>) -> Self {
        self.state.records = records;
        self.state.embedded = None;
        self
    }

    /// The cluster the service deploys to (only in `app_with_cluster`).
    pub fn cluster(&self) -> &Cluster {
        self.state.cluster.as_ref().expect("an app with a cluster")
    }

    /// A client that may do what the service may not (create a ResourceQuota, say): the
    /// simulator's token is unrestricted; on Kubernetes, the testbed's admin.
    pub fn admin_client(&self) -> kube::Client {
        match self.backend {
            Backend::Sim => self.cluster().client.clone(),
            Backend::Real => crate::testbed::admin(),
        }
    }

    /// A line the logs of a started container hold: the simulator's containers say so by name
    /// and image; kwok (no container runtime) serves one fixed log file for every container.
    pub fn started_line(&self, container: &str, image: &str) -> String {
        match self.backend {
            Backend::Sim => format!("{container} started ({image})"),
            Backend::Real => "llp-testbed: the container started".to_owned(),
        }
    }

    /// A line the previous run's log of a crashed container holds.
    pub fn previous_line(&self) -> &'static str {
        match self.backend {
            Backend::Sim => "fatal error, exiting with code 1",
            Backend::Real => "llp-testbed: the previous run of the container exited",
        }
    }

    /// Polls the status of deployment `id` as the holder of `token` until `done` holds (at
    /// most 20 s), and returns that status.
    pub async fn status_until(&self, id: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        let uri = format!("/kubernetes/deployments/{id}");
        let last = std::sync::Mutex::new(Value::Null);
        let reached = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            loop {
                let (_, body) = self.call("GET", &uri, token, None).await;
                if done(&body) {
                    return body;
                }
                *last.lock().unwrap() = body;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await;
        reached.unwrap_or_else(|_| {
            panic!(
                "the deployment's status never reached the state; the last: {}",
                last.lock().unwrap()
            )
        })
    }

    /// Sends a request as the holder of `token` (none when empty); returns status and JSON.
    pub async fn call(&self, method: &str, uri: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if !token.is_empty() {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(json) => request
                .header("content-type", "application/json")
                .body(Body::from(json.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// The Kubernetes API requests the service has made so far, as its `/metrics` counts them
    /// (lists and watches of its caches included).
    pub async fn kube_api_requests(&self) -> u64 {
        let (status, text) = self.raw("GET", "/metrics", "").await;
        assert_eq!(status, StatusCode::OK);
        text.lines()
            .filter(|l| l.starts_with("llp_k8s_kube_api_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Sends a request as the holder of `token` and returns the response with its body
    /// unread (a stream a test keeps open).
    pub async fn open(&self, method: &str, uri: &str, token: &str) -> axum::response::Response {
        Self::open_on(&self.state, method, uri, token).await
    }

    /// [`TestApp::open`] on `state` (another replica).
    pub async fn open_on(state: &AppState, method: &str, uri: &str, token: &str) -> axum::response::Response {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        router(state.clone()).oneshot(request).await.unwrap()
    }

    /// Sends a request and returns status and the body as text.
    pub async fn raw(&self, method: &str, uri: &str, token: &str) -> (StatusCode, String) {
        let response = self.open(method, uri, token).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Creates a record as `token` and returns its id.
    pub async fn create_record(&self, token: &str) -> String {
        self.create_record_with(
            token,
            serde_json::json!({"title": "web", "data": "containers: [{name: web, image: nginx}]"}),
        )
        .await
    }

    /// Creates a record with `body` as `token` and returns its id.
    pub async fn create_record_with(&self, token: &str, body: Value) -> String {
        let (status, json) = self.call("POST", "/items/deployments", token, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json["data"]["id"].as_str().unwrap().to_owned()
    }

    /// Judges GPU reservations by a clock standing at `at` (RFC 3339) until the test moves
    /// it; returns the clock.
    pub fn set_clock(&mut self, at: &str) -> llp_k8s::reservations::Clock {
        let clock = llp_k8s::reservations::Clock::manual(at.parse().unwrap());
        self.state.reservations = Arc::new(llp_k8s::reservations::ReservationPolicy {
            settings: self.state.reservations.settings.clone(),
            clock: clock.clone(),
        });
        clock
    }

    /// A second replica of the service: the same record source and cluster, its own
    /// client, caches, in-process locks, metrics and per-replica stream caps.
    pub async fn replica(&self) -> AppState {
        let config = self.cluster_config.clone().expect("an app with a cluster");
        let deadline = llp_k8s::cluster::calls::REQUEST_DEADLINE;
        let client = llp_k8s::cluster::calls::counted_client(config, Default::default(), deadline).unwrap();
        let cluster = Cluster::start(client, &self.state.render.namespace);
        cluster.caches.ready().await.unwrap();
        AppParts {
            cluster: Some(cluster),
            locks: Arc::default(),
            metrics: Arc::default(),
            status_memo: Arc::default(),
            follows: Arc::new(llp_k8s::http::server::Follows::new(self.state.follows.max())),
            terminals: Arc::new(llp_k8s::http::server::Terminals::new(self.state.terminals.max())),
            status_streams: Arc::new(llp_k8s::http::server::StatusStreams::new(
                self.state.status_streams.max(),
            )),
            ..(*self.state).clone()
        }
        .into()
    }

    /// Sends a request to `state` (another replica) as the holder of `token`; status and JSON.
    pub async fn call_on(state: &AppState, method: &str, uri: &str, token: &str) -> (StatusCode, Value) {
        let response = Self::open_on(state, method, uri, token).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// A reservation reconciler of this service instance, named `holder` in its lease.
    pub fn reconciler(&self, holder: &str) -> llp_k8s::reservations::reconciler::Reconciler {
        llp_k8s::reservations::reconciler::Reconciler::new(
            self.state.records.clone(),
            self.cluster().clone(),
            self.state.reservations.clone(),
            holder,
        )
    }

    /// An orphan reconciler of this service instance, named `holder` in its lease, judging by
    /// `settings` (with nothing seen yet).
    pub fn orphan_reconciler(
        &self,
        holder: &str,
        settings: llp_k8s::orphans::OrphanSettings,
    ) -> llp_k8s::orphans::reconciler::OrphanReconciler {
        llp_k8s::orphans::reconciler::OrphanReconciler::new(
            self.state.records.clone(),
            self.cluster().clone(),
            llp_k8s::orphans::OrphanPolicy::new(settings),
            holder,
        )
    }

    /// Deletes record `id` from the record store behind the service's back, as a record
    /// deleted in the LLP itself is: its objects stay in the cluster.
    pub fn forget_record(&self, id: &str) {
        let store = self.state.embedded.as_ref().expect("the embedded store");
        let admin = store.authenticate(&self.admin).unwrap();
        store.delete(&admin, &llp_spec::RecordId::Text(id.to_owned())).unwrap();
    }

    /// Alice's deployment of `body`, deployed and with its first pod Running; its id and that
    /// pod's name.
    pub async fn running(&self, body: Value) -> (String, String) {
        self.running_as(&self.alice, body).await
    }

    /// [`TestApp::running`] for the holder of `token`.
    pub async fn running_as(&self, token: &str, body: Value) -> (String, String) {
        let id = self.create_record_with(token, body).await;
        let (status, answer) = self
            .call("PUT", &format!("/kubernetes/deployments/{id}"), token, None)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let status = self
            .status_until(&id, token, |s| s["pods"][0]["phase"] == "Running")
            .await;
        let pod = status["pods"][0]["name"].as_str().unwrap().to_owned();
        (id, pod)
    }

    /// The user id of the holder of `token`.
    pub fn user_id(&self, token: &str) -> String {
        self.state
            .embedded
            .as_ref()
            .unwrap()
            .authenticate(token)
            .unwrap()
            .id
            .clone()
    }

    /// Books `gpus` (slugs) for the holder of `token` from `start` to `end` (RFC 3339), for
    /// `deployment` when given, as the admin; returns the booking's id.
    pub async fn book(&self, token: &str, gpus: &[&str], deployment: Option<&str>, start: &str, end: &str) -> String {
        let body = serde_json::json!({
            "gpus": gpus, "start": start, "end": end, "deployment": deployment, "users": [self.user_id(token)],
        });
        let (status, json) = self
            .call("POST", "/items/gpu_reservations", &self.admin, Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json["data"]["id"].as_str().unwrap().to_owned()
    }

    /// Books `gpus` for the holder of `token`, for any of their deployments, from a day ago
    /// for a day ahead (the system clock, which the service judges by unless a test sets it).
    pub async fn book_today(&self, token: &str, gpus: &[&str]) -> String {
        let now = jiff::Timestamp::now();
        let day = jiff::SignedDuration::from_hours(24);
        self.book(token, gpus, None, &(now - day).to_string(), &(now + day).to_string())
            .await
    }
}

/// Serves `app` with `limits` on a free port of 127.0.0.1 (real connections: WebSocket
/// upgrades, sockets of one's own); its address.
pub async fn serve_with(app: &TestApp, limits: llp_k8s::http::server::ServerLimits) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = router(app.state.clone());
    tokio::spawn(llp_k8s::http::server::serve(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    addr
}

/// Opens a terminal (`/exec` with `query`) on pod `pod` of deployment `id` of the service
/// at `addr` as the holder of `token`, asking for `v5.channel.k8s.io`; the WebSocket, or the
/// refusal's status and body.
pub async fn open_terminal(
    addr: std::net::SocketAddr,
    (id, pod): (&str, &str),
    query: &str,
    token: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    (StatusCode, Value),
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("ws://{addr}/kubernetes/deployments/{id}/pods/{pod}/exec?{query}");
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "v5.channel.k8s.io".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => {
            assert_eq!(response.headers()["sec-websocket-protocol"], "v5.channel.k8s.io");
            Ok(socket)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
            let body = response.body().as_deref().unwrap_or_default();
            Err((status, serde_json::from_slice(body).unwrap_or(Value::Null)))
        }
        Err(other) => panic!("the terminal did not open: {other}"),
    }
}

/// The Directus error code of a body.
/// The names of the pods a status lists, in its order.
/// The Services of deployment `id` as the service's watch cache shows them.
pub fn labelled_services(app: &TestApp, id: &str) -> Vec<String> {
    llp_k8s::cluster::cache::Caches::labelled(&app.cluster().caches.services, id)
}

pub fn pod_names(status: &Value) -> Vec<String> {
    status["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
}
