//! The default StorageClass's provisioner: a claim of that class gets a PersistentVolume of its
//! size and access modes (the PV controller of kube-controller-manager then binds the two), a
//! released volume is deleted (reclaim policy Delete), and a claim asking for more than its
//! volume holds is expanded, as an external provisioner and resizer would. A volume is a folder
//! of the testbed's (`<testbed>/volumes/pvc-<uid>`, writable by every user, as a fresh file
//! system made writable by `fsGroup` would be): real nodes mount it, kwok's never do. Sizes
//! are not enforced.

use crate::bootstrap::{PROVISIONER, STORAGE_CLASS};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

/// Runs until the runtime stops, with the volumes' folders under `folders`; a failed watch is
/// started again.
pub async fn run(admin: kube::Client, folders: PathBuf) {
    let claims = watcher(
        Api::<PersistentVolumeClaim>::all(admin.clone()),
        watcher::Config::default(),
    )
    .applied_objects()
    .map_ok(|c| Event::Claim(Box::new(c)))
    .boxed();
    let volumes = watcher(Api::<PersistentVolume>::all(admin.clone()), watcher::Config::default())
        .applied_objects()
        .map_ok(|v| Event::Volume(Box::new(v)))
        .boxed();
    let mut events = futures::stream::select(claims, volumes);
    while let Some(event) = events.next().await {
        let outcome = match event {
            Ok(Event::Claim(claim)) => on_claim(&admin, &claim, &folders).await,
            Ok(Event::Volume(volume)) => on_volume(&admin, &volume).await,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(())
            }
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, "testbed provisioner");
        }
    }
}

enum Event {
    Claim(Box<PersistentVolumeClaim>),
    Volume(Box<PersistentVolume>),
}

async fn on_claim(admin: &kube::Client, claim: &PersistentVolumeClaim, folders: &Path) -> Result<(), kube::Error> {
    let spec = claim.spec.clone().unwrap_or_default();
    if claim.metadata.deletion_timestamp.is_some() || spec.storage_class_name.as_deref() != Some(STORAGE_CLASS) {
        return Ok(());
    }
    let requested = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned();
    let Some(requested) = requested else { return Ok(()) };
    let volumes: Api<PersistentVolume> = Api::all(admin.clone());
    match &spec.volume_name {
        None => {
            let uid = claim.metadata.uid.clone().unwrap_or_default();
            let folder = folders.join(format!("pvc-{uid}"));
            if let Err(error) = make_world_writable_folder(&folder) {
                tracing::warn!(%error, folder = %folder.display(), "testbed provisioner");
            }
            let volume: PersistentVolume = serde_json::from_value(json!({
                "metadata": {"name": format!("pvc-{uid}"), "annotations": {PROVISIONED_BY: PROVISIONER}},
                "spec": {
                    "capacity": {"storage": requested},
                    "accessModes": spec.access_modes.clone().unwrap_or_default(),
                    "persistentVolumeReclaimPolicy": "Delete",
                    "storageClassName": STORAGE_CLASS,
                    "volumeMode": "Filesystem",
                    "claimRef": {
                        "kind": "PersistentVolumeClaim", "apiVersion": "v1",
                        "namespace": claim.metadata.namespace, "name": claim.metadata.name, "uid": uid,
                    },
                    "hostPath": {"path": folder, "type": "Directory"},
                },
            }))
            .expect("a persistent volume");
            match volumes.create(&PostParams::default(), &volume).await {
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                other => other.map(drop),
            }
        }
        Some(name) => expand(admin, claim, name, &requested).await,
    }
}

fn make_world_writable_folder(folder: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(folder)?;
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o777))
}

/// Grows the volume, then the claim's reported capacity, when the claim asks for more.
async fn expand(
    admin: &kube::Client,
    claim: &PersistentVolumeClaim,
    volume: &str,
    requested: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
) -> Result<(), kube::Error> {
    let capacity = claim
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"));
    let Some(capacity) = capacity else { return Ok(()) };
    if bytes(&requested.0) <= bytes(&capacity.0) {
        return Ok(());
    }
    let volumes: Api<PersistentVolume> = Api::all(admin.clone());
    let patch = json!({"spec": {"capacity": {"storage": requested}}});
    volumes
        .patch(volume, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    let namespace = claim.metadata.namespace.clone().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), &namespace);
    let patch = json!({"status": {"capacity": {"storage": requested}}});
    let name = claim.metadata.name.clone().unwrap_or_default();
    claims
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(drop)
}

async fn on_volume(admin: &kube::Client, volume: &PersistentVolume) -> Result<(), kube::Error> {
    let ours = volume
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROVISIONED_BY))
        .is_some_and(|p| p == PROVISIONER);
    let released = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
    if !ours || !released || volume.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let volumes: Api<PersistentVolume> = Api::all(admin.clone());
    let name = volume.metadata.name.clone().unwrap_or_default();
    match volumes.delete(&name, &DeleteParams::default()).await {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other.map(drop),
    }
}

/// The bytes of a storage quantity (`1Gi`, `500Mi`, `2G`); 0 for what it cannot read.
fn bytes(quantity: &str) -> u128 {
    let split = quantity.find(|c: char| !c.is_ascii_digit()).unwrap_or(quantity.len());
    let (number, unit) = quantity.split_at(split);
    let number: u128 = number.parse().unwrap_or(0);
    let factor: u128 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => 0,
    };
    number * factor
}
