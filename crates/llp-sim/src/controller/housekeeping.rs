//! The small controllers: claims bind at once to a volume of the requested size, and Services
//! get a cluster IP.

use crate::resources::ids;
use crate::store::patch::PatchKind;
use crate::store::selector::{FieldSelector, LabelSelector};
use crate::store::{ObjectKey, Store};
use serde_json::json;

/// Binds every pending claim.
pub fn bind_claims(store: &mut Store) {
    let pending = store.list(
        ids::claims(),
        None,
        &LabelSelector::default(),
        &FieldSelector::default(),
    );
    for claim in pending.iter().filter(|c| c["status"]["phase"] != "Bound") {
        let meta = &claim["metadata"];
        let key = ObjectKey::new(
            ids::claims(),
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
        );
        let volume = format!("pvc-{}", meta["uid"].as_str().unwrap_or_default());
        let _ = store.patch(
            &key,
            PatchKind::Merge,
            &json!({"spec": {"volumeName": volume}}),
            None,
            false,
        );
        let status = json!({
            "phase": "Bound",
            "accessModes": claim["spec"]["accessModes"],
            "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
        });
        let _ = store.replace_status(&key, status);
    }
}

/// Gives every Service without one a cluster IP from 10.96.0.0/16.
pub fn assign_cluster_ips(store: &mut Store, next: &mut u32) {
    let services = store.list(
        ids::services(),
        None,
        &LabelSelector::default(),
        &FieldSelector::default(),
    );
    for service in services
        .iter()
        .filter(|s| s["spec"]["clusterIP"].as_str().is_none_or(str::is_empty))
    {
        *next += 1;
        let ip = format!("10.96.{}.{}", (*next >> 8) & 0xff, *next & 0xff);
        let meta = &service["metadata"];
        let key = ObjectKey::new(
            ids::services(),
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
        );
        let patch = json!({"spec": {"clusterIP": ip, "clusterIPs": [ip], "type": service["spec"]["type"].as_str().unwrap_or("ClusterIP")}});
        let _ = store.patch(&key, PatchKind::Merge, &patch, None, false);
    }
}
