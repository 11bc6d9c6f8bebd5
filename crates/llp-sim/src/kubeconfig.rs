//! The kubeconfig that points kubectl and kube-rs at a running simulator.

use base64::Engine;
use serde_json::json;

/// A kubeconfig (YAML) for `server`, trusting `ca_pem` (if TLS) and sending `token`.
pub fn render(server: &str, ca_pem: Option<&str>, token: &str, namespace: &str) -> String {
    let mut cluster = json!({"server": server});
    if let Some(ca) = ca_pem {
        cluster["certificate-authority-data"] = json!(base64::engine::general_purpose::STANDARD.encode(ca));
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "llp-sim", "cluster": cluster}],
        "users": [{"name": "llp-sim", "user": {"token": token}}],
        "contexts": [{"name": "llp-sim", "context": {"cluster": "llp-sim", "user": "llp-sim", "namespace": namespace}}],
        "current-context": "llp-sim",
    });
    serde_saphyr::to_string(&config).expect("a JSON value always serializes")
}
