//! A real Kubernetes control plane for llp-k8s's tests and local trials: etcd,
//! kube-apiserver, kube-controller-manager and kube-scheduler of the pinned upstream release,
//! kwok playing the kubelets of N worker nodes, and M real nodes (a kubelet on containerd,
//! kube-proxy) that run real containers. The API server runs with RBAC, ServiceAccount token
//! issuance, the Node authorizer and its default admission plugins, as a real cluster does.
//!
//! [`Testbed::up`] builds the programs once ([`binaries`], [`images`]), makes fresh
//! credentials ([`pki`]), starts the components ([`process`], [`node`]), and creates the nodes,
//! the default StorageClass and the namespaces ([`bootstrap`]); a small provisioner
//! ([`provisioner`]) binds claims. Dropping the testbed, or the end of the process that
//! started it, stops every component and removes what real nodes leave on the machine.
#![forbid(unsafe_code)]

pub mod binaries;
pub mod bootstrap;
pub mod dns;
pub mod host;
pub mod images;
pub mod kwok;
pub mod node;
pub mod pki;
pub mod process;
pub mod provisioner;

use binaries::Binaries;
use llp_sim::ClusterSpec;
use pki::Pki;
use process::Component;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// The nodes and namespaces, as for the simulator (its control-plane node included).
    pub cluster: ClusterSpec,
    /// Real nodes (a kubelet and containerd each) beside the kwok ones.
    pub real_nodes: u32,
    /// How long the components may take to become ready.
    pub ready_within: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cluster: ClusterSpec::default(),
            real_nodes: 0,
            ready_within: Duration::from_secs(120),
        }
    }
}

/// Starting the testbed failed; the message says which step and shows the component's output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Build(#[from] binaries::BuildError),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error(transparent)]
    Spawn(#[from] process::SpawnError),
    #[error(transparent)]
    Host(#[from] host::HostError),
    #[error("testbed: {0}")]
    Io(#[from] std::io::Error),
    /// A component exited or did not become ready in time.
    #[error("testbed: {component} {what}; its last output:\n{output}")]
    NotReady {
        component: &'static str,
        what: String,
        output: String,
    },
    /// Creating the cluster's first objects failed.
    #[error("testbed: {step}: {source}")]
    Bootstrap { step: String, source: kube::Error },
}

/// A running control plane.
pub struct Testbed {
    /// The API server's URL (`https://127.0.0.1:PORT`).
    pub url: String,
    /// The Kubernetes release, e.g. `v1.37.2`.
    pub release: String,
    /// PEM of the CA that signed the API server's certificate.
    pub ca_pem: String,
    /// A cluster-admin bearer token.
    pub admin_token: String,
    /// The folder of credentials, data and logs (removed on drop).
    pub dir: PathBuf,
    /// Components in start order; stopped in reverse.
    components: Vec<Component>,
    /// Runs the provisioner (and nothing else).
    runtime: Option<tokio::runtime::Runtime>,
    /// Removes `dir` (and what real nodes leave) when the process ends without dropping the
    /// testbed; holds the real-node lock.
    cleanup: process::RemoveOnExit,
    /// etcd's client port.
    etcd_port: u16,
    /// How kube-apiserver was started, to start it again.
    apiserver: (PathBuf, Vec<String>),
    /// The real nodes' folders (their containerd sockets).
    real_nodes: Vec<node::NodeLayout>,
    /// The folder of the real nodes' images (and the Debian root file system they share).
    images: Option<PathBuf>,
    /// The address real nodes announce.
    node_address: Option<std::net::IpAddr>,
}

impl Testbed {
    /// Builds (once) and starts a control plane with `options`, returning when it is ready:
    /// nodes Ready and untainted, the default StorageClass in place, every namespace with its
    /// default ServiceAccount. Blocking; callable from inside an async runtime.
    pub fn up(options: Options) -> Result<Testbed, Error> {
        std::thread::spawn(move || up_blocking(options))
            .join()
            .unwrap_or_else(|_| Err(Error::Io(std::io::Error::other("the start-up thread panicked"))))
    }

    /// An admin kubeconfig (YAML) whose context uses `namespace`.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        kubeconfig(&self.url, &self.ca_pem, &self.admin_token, namespace)
    }

    /// A kube client configuration for `token` (the admin's or a ServiceAccount's).
    pub fn client_config(&self, token: &str, namespace: &str) -> kube::Config {
        let mut config = kube::Config::new(self.url.parse().expect("the testbed URL is valid"));
        config.root_cert = Some(vec![pem_to_der(&self.ca_pem)]);
        config.auth_info.token = Some(token.to_owned().into());
        config.default_namespace = namespace.to_owned();
        config
    }

    /// The log file of a component (`etcd`, `kube-apiserver`, …), to read when a test fails.
    pub fn log(&self, component: &str) -> Option<&Path> {
        self.components
            .iter()
            .find(|c| c.name == component)
            .map(|c| c.log.as_path())
    }

    /// Compacts etcd's history up to its current revision, as the API server does every five
    /// minutes: a watch resumed from an older resourceVersion then gets 410 Gone.
    pub fn compact_etcd(&self) -> Result<u64, Error> {
        let etcd = format!("http://127.0.0.1:{}", self.etcd_port);
        let post = |path: &str, body: &str| -> Result<serde_json::Value, Error> {
            let out = std::process::Command::new("curl")
                .args(["-sf", "-X", "POST", &format!("{etcd}{path}"), "-d", body])
                .output()?;
            serde_json::from_slice(&out.stdout)
                .map_err(|e| Error::Io(std::io::Error::other(format!("etcd {path}: {e}"))))
        };
        let range = post("/v3/kv/range", r#"{"key": "AA=="}"#)?;
        let revision: u64 = range["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        post(
            "/v3/kv/compaction",
            &format!(r#"{{"revision": "{revision}", "physical": true}}"#),
        )?;
        Ok(revision)
    }

    /// Kills kube-apiserver, as a crash would, and starts it again on the same port and
    /// storage, returning when it is ready: every client's watch breaks and is resumed from
    /// where it was. (A graceful stop would first send watchers a bookmark of the latest
    /// resourceVersion, which lets them resume even from a compacted history.)
    pub fn restart_apiserver(&mut self) -> Result<(), Error> {
        let index = self
            .components
            .iter()
            .position(|c| c.name == "kube-apiserver")
            .expect("an API server");
        self.components[index].kill();
        let (program, args) = &self.apiserver;
        self.components[index] = Component::start("kube-apiserver", &self.dir, program, args)?;
        let config = self.client_config(&self.admin_token, "default");
        let deadline = Instant::now() + Duration::from_secs(60);
        let components = &mut self.components;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    runtime.block_on(async {
                        let admin = kube::Client::try_from(config).map_err(|source| Error::Bootstrap {
                            step: "connect as admin".into(),
                            source,
                        })?;
                        bootstrap::wait_ready(&admin, components, deadline).await
                    })
                })
                .join()
                .unwrap_or_else(|_| Err(Error::Io(std::io::Error::other("the restart thread panicked"))))
        })
    }

    /// The address real nodes announce (this machine's), when there are real nodes.
    pub fn node_address(&self) -> Option<std::net::IpAddr> {
        self.node_address
    }

    /// The folder of the real nodes' image archives, with `debian-rootfs.tar`, the Debian root
    /// file system they are made of.
    pub fn images_dir(&self) -> Option<&Path> {
        self.images.as_deref()
    }

    /// Imports an image archive (OCI or `docker save`) into every real node's containerd.
    pub fn import_image(&self, archive: &Path) -> Result<(), Error> {
        for node in &self.real_nodes {
            images::import_archive(archive, &node.containerd_socket())?;
        }
        Ok(())
    }

    /// Stops every component, newest first, and removes the folder.
    pub fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        while let Some(mut component) = self.components.pop() {
            component.stop();
        }
        self.cleanup.now();
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A kubeconfig (YAML) for `server` trusting `ca_pem` and sending `token`.
pub fn kubeconfig(server: &str, ca_pem: &str, token: &str, namespace: &str) -> String {
    llp_sim::kubeconfig::render(server, Some(ca_pem), token, namespace).replace("llp-sim", "llp-testbed")
}

/// What real nodes need, made ready before anything starts.
struct RealNodes {
    binaries: Binaries,
    dns: Binaries,
    images: PathBuf,
    address: std::net::IpAddr,
    identities: Vec<pki::NodeIdentity>,
}

fn prepare_real_nodes(count: u32) -> Result<Option<RealNodes>, Error> {
    if count == 0 {
        return Ok(None);
    }
    host::ensure_packages()?;
    host::ensure_kernel_settings()?;
    let address = host::node_address()?;
    // The images are mostly downloads and file copies: made while Go compiles.
    let images = std::thread::spawn(images::ensure_built);
    let binaries = binaries::ensure_node_built()?;
    let dns = binaries::ensure_dns_built()?;
    let images = images
        .join()
        .map_err(|_| Error::Io(std::io::Error::other("the image build thread panicked")))??;
    Ok(Some(RealNodes {
        binaries,
        dns,
        images,
        address,
        identities: node::identities(count, address),
    }))
}

fn up_blocking(options: Options) -> Result<Testbed, Error> {
    let binaries = binaries::ensure_built()?;
    let real = prepare_real_nodes(options.real_nodes)?;
    // The first build takes minutes; the time to get ready counts from here.
    let started = Instant::now();
    let dir = fresh_dir()?;
    let identities = real.as_ref().map(|r| r.identities.clone()).unwrap_or_default();
    let pki = pki::generate(&dir, &identities)?;
    let cleanup_script = dir.join("cleanup-nodes.sh");
    if let Some(real) = &real {
        std::fs::write(&cleanup_script, node::cleanup_script(&real.binaries.path("kube-proxy")))?;
    }
    let lock = node::lock_path();
    let cleanup =
        process::RemoveOnExit::arrange(&dir, real.as_ref().map(|_| (lock.as_path(), cleanup_script.as_path())))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut testbed = Testbed {
        url: String::new(),
        release: binaries.release.clone(),
        ca_pem: pki.ca_pem.clone(),
        admin_token: pki.admin.token.clone(),
        dir: dir.clone(),
        components: Vec::new(),
        runtime: None,
        cleanup,
        etcd_port: 0,
        apiserver: (binaries.path("kube-apiserver"), Vec::new()),
        real_nodes: Vec::new(),
        images: real.as_ref().map(|r| r.images.clone()),
        node_address: real.as_ref().map(|r| r.address),
    };
    let deadline = started + options.ready_within;

    let etcd = free_port()?;
    testbed.components.push(start_etcd(&binaries, &dir, etcd)?);
    wait_for_port(&mut testbed.components, "etcd", etcd, deadline)?;

    let apiserver = free_port()?;
    testbed.url = format!("https://127.0.0.1:{apiserver}");
    testbed.etcd_port = etcd;
    testbed.apiserver.1 = apiserver_args(&pki, etcd, apiserver, real.as_ref().map(|r| r.address));
    testbed.components.push(Component::start(
        "kube-apiserver",
        &dir,
        &testbed.apiserver.0,
        &testbed.apiserver.1,
    )?);
    let admin =
        runtime.block_on(async { kube::Client::try_from(testbed.client_config(&testbed.admin_token, "default")) });
    let admin = admin.map_err(|source| Error::Bootstrap {
        step: "connect as admin".into(),
        source,
    })?;
    runtime.block_on(bootstrap::wait_ready(&admin, &mut testbed.components, deadline))?;

    let kwok_port = free_port()?;
    start_components(&mut testbed, &binaries, &pki, kwok_port)?;
    runtime.block_on(bootstrap::create_cluster(
        &admin,
        &options.cluster,
        &binaries.release,
        kwok_port,
        real.is_some(),
    ))?;
    runtime.spawn(provisioner::run(admin.clone(), dir.join("volumes")));
    if let Some(real) = &real {
        start_real_nodes(&mut testbed, real, &pki)?;
        let dns_port = free_port()?;
        testbed.components.push(dns::start(
            &dir.join("node-dns"),
            &real.dns,
            &testbed.url,
            &pki.ca_pem,
            &pki.coredns.token,
            real.address,
            dns_port,
        )?);
        runtime.block_on(dns::create_objects(&admin, real.address, dns_port))?;
        runtime.block_on(bootstrap::label_real_nodes(
            &admin,
            &real.identities,
            &mut testbed.components,
            deadline,
        ))?;
    }
    runtime.block_on(bootstrap::wait_settled(
        &admin,
        &options.cluster,
        &mut testbed.components,
        deadline,
    ))?;
    testbed.runtime = Some(runtime);
    say(&format!(
        "Kubernetes {} ready at {} in {:.1} s{}",
        binaries.release,
        testbed.url,
        started.elapsed().as_secs_f64(),
        match options.real_nodes {
            0 => String::new(),
            n => format!(" ({n} real node{})", if n == 1 { "" } else { "s" }),
        }
    ));
    Ok(testbed)
}

/// Starts each real node's containerd (with the images) and kubelet, and the machine's
/// kube-proxy.
fn start_real_nodes(testbed: &mut Testbed, real: &RealNodes, pki: &Pki) -> Result<(), Error> {
    for (index, (identity, credentials)) in real.identities.iter().zip(&pki.nodes).enumerate() {
        let layout = node::NodeLayout::new(&testbed.dir, index as u32 + 1, &identity.name);
        testbed.components.push(node::start_containerd(&layout)?);
        let socket = layout.containerd_socket();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            bootstrap::check_running(&mut testbed.components)?;
            if Instant::now() > deadline {
                return Err(Error::NotReady {
                    component: "containerd",
                    what: format!("did not make {} in time", socket.display()),
                    output: testbed.components.last().map(|c| c.tail(30)).unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        images::import(&real.images, &socket)?;
        testbed.real_nodes.push(layout.clone());
        let port = free_port()?;
        testbed.components.push(node::start_kubelet(
            &layout,
            &real.binaries,
            &testbed.url,
            real.address,
            port,
            pki,
            credentials,
        )?);
    }
    let first = &real.identities[0].name;
    testbed.components.push(node::start_kube_proxy(
        &testbed.dir.join("node-kube-proxy"),
        &real.binaries,
        &testbed.url,
        pki,
        first,
        (free_port()?, free_port()?),
    )?);
    Ok(())
}

fn start_etcd(binaries: &Binaries, dir: &Path, port: u16) -> Result<Component, Error> {
    let peer = free_port()?;
    let client_url = format!("http://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let args = [
        "--name=testbed".to_owned(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=testbed={peer_url}"),
        // A throwaway store: durability buys nothing and costs seconds per test run.
        "--unsafe-no-fsync=true".to_owned(),
        "--log-level=warn".to_owned(),
    ];
    Ok(Component::start("etcd", dir, &binaries.path("etcd"), &args)?)
}

/// The API server's flags. Without real nodes it listens on loopback only and nothing calls
/// it through the `kubernetes` Service (whose endpoint may not be a loopback address); with
/// them, pods do (the service in-cluster), so it listens on the machine's address too and
/// publishes that as the Service's endpoint.
fn apiserver_args(pki: &Pki, etcd: u16, port: u16, node_address: Option<std::net::IpAddr>) -> Vec<String> {
    let p = |path: &Path| path.display().to_string();
    let reachable = match node_address {
        None => vec![
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            "--endpoint-reconciler-type=none".to_owned(),
        ],
        Some(address) => vec![
            "--bind-address=0.0.0.0".to_owned(),
            format!("--advertise-address={address}"),
        ],
    };
    reachable
        .into_iter()
        .chain([
            format!("--etcd-servers=http://127.0.0.1:{etcd}"),
            format!("--secure-port={port}"),
            format!("--tls-cert-file={}", p(&pki.apiserver_cert)),
            format!("--tls-private-key-file={}", p(&pki.apiserver_key)),
            format!("--client-ca-file={}", p(&pki.ca_cert)),
            format!("--token-auth-file={}", p(&pki.tokens)),
            "--authorization-mode=Node,RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", p(&pki.service_account_public_key)),
            format!("--service-account-signing-key-file={}", p(&pki.service_account_key)),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            // The default admission plugins plus NodeRestriction, as kubeadm sets them.
            "--enable-admission-plugins=NodeRestriction".into(),
            "--allow-privileged=true".into(),
            format!("--kubelet-client-certificate={}", p(&pki.kubelet_client_cert)),
            format!("--kubelet-client-key={}", p(&pki.kubelet_client_key)),
            // Kubelets (kwok's endpoint, real ones) show serving certificates of the testbed's CA.
            format!("--kubelet-certificate-authority={}", p(&pki.ca_cert)),
            "--kubelet-preferred-address-types=InternalIP".into(),
            "--profiling=false".into(),
        ])
        .collect()
}

fn start_components(testbed: &mut Testbed, binaries: &Binaries, pki: &Pki, kwok_port: u16) -> Result<(), Error> {
    let dir = testbed.dir.clone();
    let write_kubeconfig = |name: &str, token: &str| -> Result<String, Error> {
        let path = dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&path, kubeconfig(&testbed.url, &testbed.ca_pem, token, "default"))?;
        Ok(format!("--kubeconfig={}", path.display()))
    };
    let controller_manager = vec![
        write_kubeconfig("kube-controller-manager", &pki.controller_manager.token)?,
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        // Each controller acts as its own ServiceAccount, with its own RBAC, as in kubeadm.
        "--use-service-account-credentials=true".into(),
        format!(
            "--service-account-private-key-file={}",
            pki.service_account_key.display()
        ),
        format!("--root-ca-file={}", pki.ca_cert.display()),
    ];
    let scheduler = vec![
        write_kubeconfig("kube-scheduler", &pki.scheduler.token)?,
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
    ];
    let kwok_dir = dir.join("kwok");
    std::fs::create_dir_all(&kwok_dir)?;
    kwok::write_logs(&kwok_dir)?;
    let kwok_config = kwok_dir.join("kwok.yaml");
    std::fs::write(&kwok_config, kwok::config(&kwok_dir))?;
    let kwok = vec![
        write_kubeconfig("kwok", &pki.kwok.token)?,
        format!("--config={}", kwok_config.display()),
        format!(
            "--manage-nodes-with-annotation-selector={}=fake",
            bootstrap::KWOK_ANNOTATION
        ),
        format!("--server-address=127.0.0.1:{kwok_port}"),
        format!("--tls-cert-file={}", pki.kwok_cert.display()),
        format!("--tls-private-key-file={}", pki.kwok_key.display()),
        "--node-ip=127.0.0.1".into(),
        format!("--cidr={}", node::KWOK_POD_CIDR),
        "--node-lease-duration-seconds=40".into(),
    ];
    for (name, args) in [
        ("kube-controller-manager", controller_manager),
        ("kube-scheduler", scheduler),
        ("kwok", kwok),
    ] {
        testbed
            .components
            .push(Component::start(name, &dir, &binaries.path(name), &args)?);
    }
    Ok(())
}

/// A port free now on 127.0.0.1 (the component binds it a moment later).
fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(components: &mut [Component], name: &'static str, port: u16, deadline: Instant) -> Result<(), Error> {
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        bootstrap::check_running(components)?;
        if Instant::now() > deadline {
            let output = components
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.tail(30))
                .unwrap_or_default();
            return Err(Error::NotReady {
                component: name,
                what: format!("did not listen on port {port} in time"),
                output,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A new folder for one testbed.
fn fresh_dir() -> Result<PathBuf, Error> {
    let dir = std::env::temp_dir().join(format!(
        "llp-testbed-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Tells the person waiting what the testbed is doing. Written to the process's standard
/// error directly, which a test runner does not capture, so that a long first build is seen.
pub fn say(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "llp-testbed: {message}");
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap_or_default()
}
