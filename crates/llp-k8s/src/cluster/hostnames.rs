//! Who holds a hostname. A deployment claims its `exposed_hostname` with an object named
//! after it (a ConfigMap `llp-host-<hostname>`): the API server lets one create it, so two
//! deploys, even by two replicas of the service, can never both win. Every Ingress of the
//! cluster is checked too (a read-only ClusterRole grants the list), so a host that another
//! tool or another namespace serves cannot be claimed.

use super::Cluster;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use llp_spec::names::{DEPLOYMENT_LABEL, MANAGED_BY, OWNER_LABEL};
use std::collections::BTreeMap;

/// Label of a hostname claim.
const CLAIM_LABEL: &str = "llp.kitegg.de/hostname-claim";

/// The selector of the hostname claims' watch.
pub const CLAIM_SELECTOR: &str = "llp.kitegg.de/hostname-claim=true";

/// Why a hostname cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum HostnameError {
    /// Another deployment, or an Ingress the service did not make, has it.
    #[error("the hostname is taken")]
    Taken,
    /// The cluster failed.
    #[error(transparent)]
    Cluster(#[from] kube::Error),
}

fn claim_name(hostname: &str) -> String {
    format!("llp-host-{hostname}")
}

/// A claim as [`claim`] leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// Made by this call: give it back if what it was for fails.
    Now,
    /// The deployment held it already.
    Before,
}

/// Whether another deployment holds `hostname`'s claim: the watch cache first (costs
/// nothing), and only when it shows another holder, the claim as the API server has it (the
/// holder may have let it go a moment ago). A read, so a deploy can refuse before it writes;
/// [`claim`] is what decides.
pub async fn held_by_another(cluster: &Cluster, hostname: &str, deployment_label: &str) -> Result<bool, kube::Error> {
    let name = claim_name(hostname);
    let holder_in_cache = cluster
        .caches
        .host_claims
        .state()
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(name.as_str()))
        .map(|c| label(&c.metadata.labels, DEPLOYMENT_LABEL).map(str::to_owned));
    match holder_in_cache {
        Some(holder) if holder.as_deref() != Some(deployment_label) => {
            let claims: Api<ConfigMap> = cluster.api();
            let now = claims.get_opt(&name).await?;
            Ok(now.is_some_and(|c| label(&c.metadata.labels, DEPLOYMENT_LABEL) != Some(deployment_label)))
        }
        _ => Ok(false),
    }
}

/// Whether an Ingress of any namespace, other than the deployment's own, serves `host`.
pub async fn served_by_another_ingress(
    cluster: &Cluster,
    host: &str,
    deployment_label: &str,
) -> Result<bool, kube::Error> {
    let ingresses: Api<Ingress> = Api::all(cluster.client.clone());
    // Every Ingress of the cluster, a page at a time (there may be thousands).
    let mut asking = Some(super::pages::first(&ListParams::default()));
    while let Some(params) = asking {
        let page = ingresses.list(&params).await?;
        asking = super::pages::next(&params, &page.metadata);
        let served_by_another = page.items.iter().any(|ingress| {
            let ours = ingress.metadata.namespace.as_deref() == Some(cluster.namespace.as_str())
                && label(&ingress.metadata.labels, DEPLOYMENT_LABEL) == Some(deployment_label)
                && label(&ingress.metadata.labels, MANAGED_BY.0) == Some(MANAGED_BY.1);
            let hosts = ingress
                .spec
                .iter()
                .flat_map(|s| s.rules.iter().flatten())
                .filter_map(|r| r.host.as_deref());
            !ours && hosts.into_iter().any(|h| h.eq_ignore_ascii_case(host))
        });
        if served_by_another {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Claims `hostname` (serving `host`, its full name) for the deployment labelled
/// `deployment_label` of `owner_label`; `Taken` if another deployment holds it or another
/// Ingress of any namespace serves `host`. Claiming one's own hostname again is fine.
pub async fn claim(
    cluster: &Cluster,
    hostname: &str,
    host: &str,
    deployment_label: &str,
    owner_label: &str,
) -> Result<Claimed, HostnameError> {
    if served_by_another_ingress(cluster, host, deployment_label).await? {
        return Err(HostnameError::Taken);
    }
    let claims: Api<ConfigMap> = cluster.api();
    let name = claim_name(hostname);
    let object = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                (CLAIM_LABEL.to_owned(), "true".to_owned()),
                (DEPLOYMENT_LABEL.to_owned(), deployment_label.to_owned()),
                (OWNER_LABEL.to_owned(), owner_label.to_owned()),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("host".to_owned(), host.to_owned())])),
        ..Default::default()
    };
    match claims.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(Claimed::Now),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            // Someone has it: fine if that is this deployment.
            let holder = claims.get_opt(&name).await?;
            let ours = holder.is_some_and(|c| label(&c.metadata.labels, DEPLOYMENT_LABEL) == Some(deployment_label));
            if ours {
                Ok(Claimed::Before)
            } else {
                Err(HostnameError::Taken)
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// Gives `hostname`'s claim back (a deploy that claimed it and then failed).
pub async fn give_back(cluster: &Cluster, hostname: &str) -> Result<(), kube::Error> {
    give_up(&cluster.api(), vec![claim_name(hostname)], None).await
}

/// Gives up every hostname the deployment labelled `deployment_label` holds but `keep`, as
/// the API server lists them (DELETE: nothing may be left).
pub async fn release(cluster: &Cluster, deployment_label: &str, keep: Option<&str>) -> Result<(), kube::Error> {
    let claims: Api<ConfigMap> = cluster.api();
    let selector = format!("{CLAIM_LABEL}=true,{DEPLOYMENT_LABEL}={deployment_label}");
    let held = claims.list(&ListParams::default().labels(&selector)).await?;
    let names = held.into_iter().filter_map(|c| c.metadata.name).collect();
    give_up(&claims, names, keep).await
}

/// [`release`] as the watch cache shows the claims, costing no list (a deploy: a claim that
/// the cache has not seen yet is one a moment old, released by the next deploy or DELETE).
pub async fn release_seen(cluster: &Cluster, deployment_label: &str, keep: Option<&str>) -> Result<(), kube::Error> {
    let names = super::cache::Caches::labelled(&cluster.caches.host_claims, deployment_label);
    give_up(&cluster.api(), names, keep).await
}

async fn give_up(claims: &Api<ConfigMap>, held: Vec<String>, keep: Option<&str>) -> Result<(), kube::Error> {
    let keep = keep.map(claim_name);
    for name in held {
        if Some(&name) != keep.as_ref() {
            match claims.delete(&name, &DeleteParams::default()).await {
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                other => drop(other?),
            }
        }
    }
    Ok(())
}

fn label<'a>(labels: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    labels.as_ref()?.get(key).map(String::as_str)
}
