//! Real nodes: a kubelet of the pinned release on Debian's containerd and runc, a CNI bridge
//! and kube-proxy, so that pods really start, Services route, and logs, exec and crashes are
//! the kernel's and the kubelet's.
//!
//! Every real node lives in `<testbed>/node-<name>/`: its containerd (own socket, root and
//! state; network namespaces mounted under its state), its CNI configuration and addresses
//! (bridge `llptb<i>`, pods in `10.89.<i>.0/24`), its kubelet (own root folder, cgroups under
//! `/llp-testbed/<name>`, logs of pods). One kube-proxy serves the machine. Only one testbed
//! with real nodes runs on a machine at a time (a file lock: kube-proxy's rules and the
//! cgroup root are the machine's); [`cleanup_script`] removes what they leave behind (programs,
//! containers, mounts, bridges, Service rules, cgroups) when the testbed stops, when the
//! process that started it dies, and before the next one starts.

use crate::binaries::Binaries;
use crate::pki::{NodeCredentials, NodeIdentity, Pki};
use crate::process::Component;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Bridges of real nodes are named `llptb<i>`.
pub const BRIDGE_PREFIX: &str = "llptb";

/// The label every real node carries (`true`), beside the worker role.
pub const REAL_NODE_LABEL: &str = "llp-testbed/real-node";

/// The pods of all real nodes (each node gets a /24 of it).
pub const POD_CIDR: &str = "10.89.0.0/16";

/// The cluster DNS Service's address (in the API server's Service range).
pub const CLUSTER_DNS: &str = "10.96.0.10";

/// The addresses kwok gives its pods: never reachable (no network device has them), so with
/// real nodes a blackhole route keeps Service traffic to a kwok pod on this machine.
pub const KWOK_POD_CIDR: &str = "10.244.0.0/16";

/// The cgroup (in every hierarchy) the kubelets' pods live under.
const CGROUP_ROOT: &str = "llp-testbed";

/// The real nodes' names: `real-1`, `real-2`, …
pub fn identities(count: u32, address: IpAddr) -> Vec<NodeIdentity> {
    (1..=count)
        .map(|i| NodeIdentity {
            name: format!("real-{i}"),
            address,
        })
        .collect()
}

/// The file lock that makes real nodes one testbed's at a time.
pub fn lock_path() -> PathBuf {
    std::env::temp_dir().join("llp-testbed-real-nodes.lock")
}

/// One real node's files.
#[derive(Debug, Clone)]
pub struct NodeLayout {
    /// Its name.
    pub name: String,
    /// 1-based index: its bridge and pod range.
    pub index: u32,
    /// `<testbed>/node-<name>`.
    pub dir: PathBuf,
}

impl NodeLayout {
    pub fn new(testbed: &Path, index: u32, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            index,
            dir: testbed.join(format!("node-{name}")),
        }
    }

    /// containerd's socket.
    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd/containerd.sock")
    }

    fn bridge(&self) -> String {
        format!("{BRIDGE_PREFIX}{}", self.index)
    }

    fn pod_subnet(&self) -> String {
        format!("10.89.{}.0/24", self.index)
    }
}

/// containerd's configuration: the CRI plugin with a local pause image, runc on cgroupfs, CNI
/// from Debian's plugins, and `restrict_oom_score_adj` (no process here may lower its OOM
/// score, and the kubelet asks for −998 for every sandbox).
pub fn containerd_config(node: &NodeLayout) -> String {
    let dir = node.dir.join("containerd");
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
"#,
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        socket = node.containerd_socket().display(),
        pause = crate::images::PAUSE_IMAGE,
        cni = node.dir.join("net.d").display(),
    )
}

/// The CNI network: a bridge per node with its own /24, addresses from host-local (kept in
/// the node's folder), portmap for hostPorts. No masquerading: pods talk only to pods, to
/// Services and to this machine.
pub fn cni_config(node: &NodeLayout) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": format!("llp-testbed-{}", node.name),
        "plugins": [
            {
                "type": "bridge",
                "bridge": node.bridge(),
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": node.pod_subnet()}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": node.dir.join("cni-addresses"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    })
    .to_string()
}

/// The kubelet's configuration. What these machines need (measured): cgroup v1 allowed, the
/// cgroupfs driver, swap tolerated. Images are never collected (none can be pulled again).
pub fn kubelet_config(
    node: &NodeLayout,
    address: IpAddr,
    port: u16,
    pki: &Pki,
    credentials: &NodeCredentials,
) -> String {
    serde_json::json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": address.to_string(),
        "port": port,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true},
            "x509": {"clientCAFile": pki.ca_cert},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": credentials.serving_cert,
        "tlsPrivateKeyFile": credentials.serving_key,
        "containerRuntimeEndpoint": format!("unix://{}", node.containerd_socket().display()),
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": format!("/{CGROUP_ROOT}/{}", node.name),
        "failCgroupV1": false,
        "failSwapOn": false,
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": "cluster.local",
        "resolvConf": node.dir.join("resolv.conf"),
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "podLogsDir": node.dir.join("pod-logs"),
        "volumePluginDir": node.dir.join("volume-plugins"),
        "serializeImagePulls": false,
        "registerNode": true,
        "rotateCertificates": false,
        "syncFrequency": "10s",
    })
    .to_string()
}

/// A kubeconfig (YAML) that shows a client certificate.
pub fn certificate_kubeconfig(server: &str, ca: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: llp-testbed\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: node\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: node\n  context: {{cluster: llp-testbed, user: node}}\ncurrent-context: node\n",
        ca.display(),
        cert.display(),
        key.display()
    )
}

/// kube-proxy's configuration: iptables mode, this machine's only kube-proxy (named after the
/// first real node), leaving conntrack's sysctls alone.
pub fn kube_proxy_config(kubeconfig: &Path, node: &str, healthz: u16, metrics: u16) -> String {
    serde_json::json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": kubeconfig},
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": node,
        "healthzBindAddress": format!("127.0.0.1:{healthz}"),
        "metricsBindAddress": format!("127.0.0.1:{metrics}"),
        "conntrack": {"maxPerCore": 0, "min": 0},
    })
    .to_string()
}

/// Writes a node's folders and files, and starts its containerd.
pub fn start_containerd(node: &NodeLayout) -> Result<Component, crate::Error> {
    for sub in [
        "containerd",
        "net.d",
        "cni-addresses",
        "kubelet",
        "pod-logs",
        "volume-plugins",
    ] {
        std::fs::create_dir_all(node.dir.join(sub))?;
    }
    let config = node.dir.join("containerd/config.toml");
    std::fs::write(&config, containerd_config(node))?;
    std::fs::write(node.dir.join("net.d/10-llp-testbed.conflist"), cni_config(node))?;
    // Pods of dnsPolicy Default get this, not the machine's resolvers.
    std::fs::write(node.dir.join("resolv.conf"), format!("nameserver {CLUSTER_DNS}\n"))?;
    for controller in cgroup_controllers() {
        std::fs::create_dir_all(controller.join(CGROUP_ROOT).join(&node.name))?;
    }
    let _ = std::process::Command::new("ip")
        .args(["route", "replace", "blackhole", KWOK_POD_CIDR])
        .status();
    let args = vec![format!("--config={}", config.display())];
    Ok(Component::start(
        leak(format!("containerd-{}", node.name)),
        &node.dir,
        Path::new("/usr/bin/containerd"),
        &args,
    )?)
}

/// Starts a node's kubelet, registering the node as `system:node:<name>`.
pub fn start_kubelet(
    node: &NodeLayout,
    binaries: &Binaries,
    server: &str,
    address: IpAddr,
    port: u16,
    pki: &Pki,
    credentials: &NodeCredentials,
) -> Result<Component, crate::Error> {
    let config = node.dir.join("kubelet.json");
    std::fs::write(&config, kubelet_config(node, address, port, pki, credentials))?;
    let kubeconfig = node.dir.join("kubelet.kubeconfig");
    std::fs::write(
        &kubeconfig,
        certificate_kubeconfig(server, &pki.ca_cert, &credentials.client_cert, &credentials.client_key),
    )?;
    let args = vec![
        format!("--config={}", config.display()),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--root-dir={}", node.dir.join("kubelet").display()),
        format!("--hostname-override={}", node.name),
        format!("--node-ip={address}"),
        format!("--node-labels={REAL_NODE_LABEL}=true"),
        "--v=1".into(),
    ];
    Ok(Component::start(
        leak(format!("kubelet-{}", node.name)),
        &node.dir,
        &binaries.path("kubelet"),
        &args,
    )?)
}

/// Starts the machine's kube-proxy, its files in `dir` (a `node-…` folder of the testbed, so
/// that the cleanup finds it).
pub fn start_kube_proxy(
    dir: &Path,
    binaries: &Binaries,
    server: &str,
    pki: &Pki,
    node: &str,
    ports: (u16, u16),
) -> Result<Component, crate::Error> {
    std::fs::create_dir_all(dir)?;
    let kubeconfig = dir.join("kube-proxy.kubeconfig");
    std::fs::write(
        &kubeconfig,
        llp_sim::kubeconfig::render(server, Some(&pki.ca_pem), &pki.kube_proxy.token, "default"),
    )?;
    let config = dir.join("kube-proxy.json");
    std::fs::write(&config, kube_proxy_config(&kubeconfig, node, ports.0, ports.1))?;
    let args = vec![format!("--config={}", config.display()), "--v=1".into()];
    Ok(Component::start(
        "kube-proxy",
        dir,
        &binaries.path("kube-proxy"),
        &args,
    )?)
}

/// The cgroup v1 hierarchies and the unified one (this machine's cgroups are hybrid).
fn cgroup_controllers() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists() && !p.is_symlink())
        .collect()
}

/// A shell script that removes what real nodes leave on this machine (run under the real-node
/// lock, so every match is a testbed's): kubelets, kube-proxy, containerds and their shims and
/// containers (every process in the kubelets' cgroups), the mounts under real nodes' folders,
/// the bridges, kube-proxy's rules (`kube-proxy --cleanup`) and the kubelet's, the cgroups
/// and the folders.
pub fn cleanup_script(kube_proxy: &Path) -> String {
    let tmp = std::env::temp_dir();
    format!(
        r#"# Written by llp-testbed: removes what its real nodes leave behind.
nodes='{tmp}/llp-testbed-[^/ ]*/node-'
pkill -KILL -f "$nodes" 2>/dev/null
for round in 1 2 3 4 5 6 7 8 9 10; do
    left=0
    for procs in $(find /sys/fs/cgroup/*/{root} -name cgroup.procs 2>/dev/null); do
        for pid in $(cat "$procs" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; left=1; done
    done
    [ $left = 0 ] && break
    sleep 0.3
done
pkill -KILL -f "$nodes" 2>/dev/null
awk '{{print $5}}' /proc/self/mountinfo | grep "^$nodes" | sort -r | while read -r point; do
    umount -l "$point" 2>/dev/null
done
for bridge in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{{print $2}}' | grep '^{bridge}'); do
    ip link delete "$bridge" 2>/dev/null
done
ip route del blackhole {kwok} 2>/dev/null
[ -x '{kube_proxy}' ] && '{kube_proxy}' --cleanup >/dev/null 2>&1
# The kubelet's own chains (kube-proxy's cleanup leaves them): the jumps to them, then them.
for tool in iptables ip6tables; do
    for table in filter nat mangle; do
        "$tool" -t $table -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-(FIREWALL|KUBELET-CANARY|IPTABLES-HINT)' |
            sed 's/^-A/-D/' | while read -r rule; do eval "$tool -t $table $rule" 2>/dev/null; done
        for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
            "$tool" -t $table -F $chain 2>/dev/null && "$tool" -t $table -X $chain 2>/dev/null
        done
    done
done
find /sys/fs/cgroup/*/{root} -depth -type d -exec rmdir {{}} \; 2>/dev/null
for dir in {tmp}/llp-testbed-*/node-*; do [ -d "$dir" ] && rm -rf "$dir"; done
true
"#,
        tmp = tmp.display(),
        root = CGROUP_ROOT,
        bridge = BRIDGE_PREFIX,
        kube_proxy = kube_proxy.display(),
        kwok = KWOK_POD_CIDR,
    )
}

/// Component names are `&'static str`; a testbed has a handful, made once per start.
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}
