//! The control plane's credentials, made fresh for every start: a CA, the API server's serving
//! certificate, the client certificate it shows kubelets (kwok's endpoint and real ones),
//! kwok's serving certificate, each real node's credentials (a `system:node:<name>` client
//! certificate for the Node authorizer, a serving certificate for its kubelet), the
//! ServiceAccount token signing key, and static tokens for the admin and the components (the
//! API server's `--token-auth-file`). The CA's key never leaves memory.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};

/// A user of the static token file.
#[derive(Debug, Clone)]
pub struct StaticUser {
    /// The bearer token.
    pub token: String,
    /// The user name.
    pub name: &'static str,
    /// The groups.
    pub groups: &'static str,
}

/// The files written, by purpose.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (PEM): clients trust it, the API server takes client certificates from it.
    pub ca_cert: PathBuf,
    /// The CA certificate's PEM text.
    pub ca_pem: String,
    /// The API server's serving certificate and key.
    pub apiserver_cert: PathBuf,
    pub apiserver_key: PathBuf,
    /// What the API server shows a kubelet (kwok) when it asks for logs.
    pub kubelet_client_cert: PathBuf,
    pub kubelet_client_key: PathBuf,
    /// kwok's serving certificate (its kubelet endpoint).
    pub kwok_cert: PathBuf,
    pub kwok_key: PathBuf,
    /// Signs ServiceAccount tokens (ECDSA P-256, PKCS#8).
    pub service_account_key: PathBuf,
    /// Its public key, which verifies them.
    pub service_account_public_key: PathBuf,
    /// The static token file.
    pub tokens: PathBuf,
    /// Cluster admin (`system:masters`).
    pub admin: StaticUser,
    /// kube-controller-manager's own identity.
    pub controller_manager: StaticUser,
    /// kube-scheduler's own identity.
    pub scheduler: StaticUser,
    /// kwok, which plays every kubelet (and so needs to write any node's and pod's status).
    pub kwok: StaticUser,
    /// kube-proxy (`system:kube-proxy`, bound to `system:node-proxier` by the default policy).
    pub kube_proxy: StaticUser,
    /// CoreDNS (for real nodes), allowed to read what it serves.
    pub coredns: StaticUser,
    /// The real nodes' credentials, in the order asked for.
    pub nodes: Vec<NodeCredentials>,
}

/// A real node: who it is and where its kubelet serves.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// The node's name.
    pub name: String,
    /// The address its kubelet serves on (and the API server reaches it at).
    pub address: std::net::IpAddr,
}

/// A real node's certificates.
#[derive(Debug, Clone)]
pub struct NodeCredentials {
    /// The client certificate (`CN=system:node:<name>, O=system:nodes`) and key its kubelet
    /// talks to the API server with: the Node authorizer and NodeRestriction judge it.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The kubelet's serving certificate and key (the node's name and address).
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
}

/// Making the credentials failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("testbed credentials: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("testbed credentials: cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes fresh credentials into `dir`, with those of the real `nodes`.
pub fn generate(dir: &Path, nodes: &[NodeIdentity]) -> Result<Pki, PkiError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "llp-testbed CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let write = |name: &str, text: &str| -> Result<PathBuf, PkiError> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| PkiError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    let issue = |name: &str, common_name: &str, org: Option<&str>, hosts: &[&str]| {
        let mut params = CertificateParams::new(hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        if let Some(org) = org {
            params.distinguished_name.push(DnType::OrganizationName, org);
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        Ok::<_, PkiError>((
            write(&format!("{name}.crt"), &cert.pem())?,
            write(&format!("{name}.key"), &key.serialize_pem())?,
        ))
    };
    // Pods reach the API server at the `kubernetes` Service's address (the first of the
    // Service range) or its names; real nodes' pods through the machine's address.
    let mut serving_hosts: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "10.96.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .map(String::from)
    .to_vec();
    serving_hosts.extend(nodes.iter().map(|n| n.address.to_string()));
    serving_hosts.dedup();
    let serving_hosts: Vec<&str> = serving_hosts.iter().map(String::as_str).collect();
    let (apiserver_cert, apiserver_key) = issue("apiserver", "kube-apiserver", None, &serving_hosts)?;
    let (kubelet_client_cert, kubelet_client_key) = issue(
        "apiserver-kubelet-client",
        "kube-apiserver-kubelet-client",
        Some("system:masters"),
        &[],
    )?;
    let (kwok_cert, kwok_key) = issue("kwok", "kwok", None, &["localhost", "127.0.0.1"])?;
    let mut node_credentials = Vec::new();
    for node in nodes {
        let (client_cert, client_key) = issue(
            &format!("{}-client", node.name),
            &format!("system:node:{}", node.name),
            Some("system:nodes"),
            &[],
        )?;
        let address = node.address.to_string();
        let (serving_cert, serving_key) = issue(
            &format!("{}-serving", node.name),
            &node.name,
            None,
            &[&node.name, &address],
        )?;
        node_credentials.push(NodeCredentials {
            client_cert,
            client_key,
            serving_cert,
            serving_key,
        });
    }
    let signing = KeyPair::generate()?;
    let service_account_key = write("service-account.key", &signing.serialize_pem())?;
    let service_account_public_key = write("service-account.pub", &signing.public_key_pem())?;

    let admin = user("admin", "system:masters");
    let controller_manager = user("system:kube-controller-manager", "");
    let scheduler = user("system:kube-scheduler", "");
    let kwok = user("kwok", "system:masters");
    let kube_proxy = user("system:kube-proxy", "");
    let coredns = user(crate::dns::USER, "");
    let csv: String = [&admin, &controller_manager, &scheduler, &kwok, &kube_proxy, &coredns]
        .iter()
        .map(|u| format!("{},{},{},\"{}\"\n", u.token, u.name, u.name, u.groups))
        .collect();
    let tokens = write("tokens.csv", &csv)?;
    let ca_pem = ca.pem();
    Ok(Pki {
        ca_cert: write("ca.crt", &ca_pem)?,
        ca_pem,
        apiserver_cert,
        apiserver_key,
        kubelet_client_cert,
        kubelet_client_key,
        kwok_cert,
        kwok_key,
        service_account_key,
        service_account_public_key,
        tokens,
        admin,
        controller_manager,
        scheduler,
        kwok,
        kube_proxy,
        coredns,
        nodes: node_credentials,
    })
}

fn user(name: &'static str, groups: &'static str) -> StaticUser {
    StaticUser {
        token: random_token(),
        name,
        groups,
    }
}

/// 128 random bits as hex.
fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
