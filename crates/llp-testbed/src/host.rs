//! What a real node needs of this machine: Debian's container runtime (containerd, runc), CNI
//! plugins, iptables and the image tools (umoci, mmdebstrap; docker.io for the service's image), installed by the testbed itself when missing and it
//! runs as root; the kernel settings that let pods reach Services; and the machine's own
//! address, which the node announces (a kubelet refuses a loopback node IP).

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

/// The Debian packages a real node uses, with a program or file each provides.
const PACKAGES: &[(&str, &str)] = &[
    ("containerd", "/usr/bin/containerd"),
    ("runc", "/usr/sbin/runc"),
    ("containernetworking-plugins", "/usr/lib/cni/bridge"),
    ("iptables", "/usr/sbin/iptables"),
    ("conntrack", "/usr/sbin/conntrack"),
    ("socat", "/usr/bin/socat"),
    ("busybox-static", "/bin/busybox"),
    ("umoci", "/usr/bin/umoci"),
    ("mmdebstrap", "/usr/bin/mmdebstrap"),
    ("gcc", "/usr/bin/gcc"),
    ("util-linux", "/usr/bin/flock"),
    ("iproute2", "/usr/sbin/ip"),
    // Builds the service's own image from its Containerfile (testbed/images/service.sh).
    ("docker.io", "/usr/sbin/dockerd"),
];

/// The machine cannot run a real node.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Packages are missing and the testbed may not install them.
    #[error(
        "testbed real node: missing Debian packages {0}; install them with `apt-get install -y {0}` (as root), or run the testbed as root to have it install them"
    )]
    Missing(String),
    /// Installing them failed.
    #[error("testbed real node: `apt-get install -y {packages}` failed:\n{output}")]
    Install { packages: String, output: String },
    /// A kernel setting could not be made.
    #[error("testbed real node: cannot set {setting}: {source}")]
    Sysctl { setting: String, source: std::io::Error },
    /// No address to announce.
    #[error("testbed real node: this machine has no non-loopback IPv4 address for the node (set LLP_TESTBED_NODE_IP)")]
    NoAddress,
}

/// Installs the missing packages (as root), or says which are missing.
pub fn ensure_packages() -> Result<(), HostError> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages = missing.join(" ");
    if !is_root() {
        return Err(HostError::Missing(packages));
    }
    crate::say(&format!("installing Debian packages {packages} (about 30 s)"));
    let script = format!("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {packages}");
    let output = Command::new("sh").args(["-c", &script]).output();
    match output {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(HostError::Install {
            packages,
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
        Err(e) => Err(HostError::Install {
            packages,
            output: e.to_string(),
        }),
    }
}

/// Forwarding on, and bridged traffic through iptables (kube-proxy's Service rules must see a
/// pod's packets to another pod on the same bridge).
pub fn ensure_kernel_settings() -> Result<(), HostError> {
    for (setting, value) in [
        ("net/ipv4/ip_forward", "1"),
        ("net/bridge/bridge-nf-call-iptables", "1"),
    ] {
        let path = Path::new("/proc/sys").join(setting);
        if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
            continue;
        }
        std::fs::write(&path, value).map_err(|source| HostError::Sysctl {
            setting: setting.replace('/', "."),
            source,
        })?;
    }
    Ok(())
}

/// The address the real nodes announce: `LLP_TESTBED_NODE_IP`, or the machine's first global
/// IPv4 address.
pub fn node_address() -> Result<IpAddr, HostError> {
    if let Some(ip) = std::env::var("LLP_TESTBED_NODE_IP").ok().and_then(|v| v.parse().ok()) {
        return Ok(ip);
    }
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .map_err(|_| HostError::NoAddress)?;
    // `2: eth0    inet 192.0.2.2/24 brd …`
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| !line.contains(crate::node::BRIDGE_PREFIX))
        .find_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .ok_or(HostError::NoAddress)
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}
