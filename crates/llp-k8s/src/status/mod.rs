//! A deployment's status as its routes tell it: rendered from the watch caches alone (a poll
//! or a stream costs the cluster nothing), reused while the caches do not change ([`memo`]),
//! and followed as it changes ([`live`]).

pub mod live;
pub mod memo;

use crate::cluster::Cluster;
use crate::cluster::workload::Deployed;
use axum::body::Bytes;
use llp_spec::status::DeploymentStatus;
use llp_spec::{Record, RenderConfig};
pub use memo::{Inputs, StatusMemo};

/// What a deployment's status is rendered from besides the caches: its record's URL.
#[derive(Clone)]
pub struct Source<'a> {
    /// The cluster whose caches hold its objects.
    pub cluster: &'a Cluster,
    /// Its base name.
    pub base: &'a str,
    /// Its URL, from the record's hostname.
    pub url: Option<String>,
}

impl<'a> Source<'a> {
    /// The status source of the deployment of `record`, whose objects are named after `base`.
    pub fn new(cluster: &'a Cluster, base: &'a str, record: &Record, render: &RenderConfig) -> Self {
        let url = record.exposed_hostname.as_deref().filter(|h| !h.is_empty()).map(|h| {
            format!(
                "{}://{h}.{}",
                if render.ingress.tls { "https" } else { "http" },
                render.ingress.domain
            )
        });
        Self { cluster, base, url }
    }

    /// The status as JSON, as the caches show it now; `None` while it is not deployed.
    pub fn answer(&self, memo: &StatusMemo) -> Option<Bytes> {
        let inputs = Inputs {
            // Read before the caches: see `Caches::version`.
            version: self.cluster.caches.version(),
            url: self.url.clone(),
            stale_since: self.cluster.health.stale_since(),
        };
        if let Some(body) = memo.get(self.base, &inputs) {
            return Some(body);
        }
        let status = render(self.cluster, self.base, &inputs)?;
        // Cannot fail: string keys only, and serde_json writes a non-finite number as null.
        let body = Bytes::from(serde_json::to_vec(&status).unwrap_or_default());
        memo.put(self.base, inputs, body.clone());
        Some(body)
    }
}

/// The status of deployment `base` from the caches, if it is deployed.
fn render(cluster: &Cluster, base: &str, inputs: &Inputs) -> Option<DeploymentStatus> {
    let deployed = cluster.caches.deployed(base)?;
    let (pods, mut claims) = cluster.caches.members(base);
    // The claims its pods mount by name: shared ones, and a Job's (already among its members).
    for name in &deployed.footprint().claims {
        if !claims.iter().any(|c| c.metadata.name.as_deref() == Some(name))
            && let Some(claim) = cluster.caches.claim(name)
        {
            claims.push(claim);
        }
    }
    let url = inputs.url.clone();
    let status = match &deployed {
        Deployed::StatefulSet(sts) => {
            let refused = cluster.caches.failed_create(base);
            llp_spec::status::from_objects(sts, &pods, &claims, url).with_refused_pods(refused.as_deref())
        }
        Deployed::Job(job) => llp_spec::status::from_job(job, &pods, &claims, url),
    };
    Some(DeploymentStatus {
        stale: inputs.stale_since.map(llp_spec::status::Stale::since),
        ..status
    })
}
