//! Admission one step per owner, across replicas (SPEC section 6). A deploy, scale-up,
//! restart or pod delete decides on the owner's totals as the watch caches show them *and*
//! as the owner's ledger does (what was admitted and may not be in the caches yet), then
//! writes its deployment's entry to the ledger with a `resourceVersion` precondition. Of two
//! admissions that read the same ledger, in one replica or two, only one write succeeds; the
//! other reads the ledger again and decides with the winner counted. The ledger is a
//! ConfigMap per owner in the managed namespace; the rules are [`llp_spec::admission`].

use crate::cluster::Cluster;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use llp_spec::admission::{Entry, Ledger};
use llp_spec::names::{MANAGED_BY, OWNER_LABEL, admission_ledger, label_value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The label that marks a ledger (its value `admission`).
pub const LEDGER_LABEL: &str = "llp.kitegg.de/ledger";

/// The selector of the ledgers' watch.
pub const LEDGER_SELECTOR: &str = "llp.kitegg.de/ledger=admission";

/// How long an entry counts: a deploy's apply may take its whole 60 s deadline, a Job's rerun
/// its deletion first; the caches show the result moments later.
pub const HOLD: Duration = Duration::from_secs(120);

/// How long one admission may take, conflicts included.
const DEADLINE: Duration = Duration::from_secs(30);

/// Why an admission did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError<E> {
    /// The decision was no.
    #[error("refused")]
    Refused(E),
    /// The cluster failed.
    #[error(transparent)]
    Cluster(kube::Error),
    /// The cluster did not answer in time, or other admissions of the owner kept winning.
    #[error("no admission within {0:?}")]
    Timeout(Duration),
}

/// Decides with `decide` on `owner`'s live ledger and writes the entry it returns for
/// `deployment` (counted for [`HOLD`] from now), again until the write wins. `decide` sees
/// the ledger without `deployment`'s own entry, which the new one replaces.
pub async fn admit<E, Decision>(
    cluster: &Cluster,
    owner: &str,
    deployment: &str,
    mut decide: impl FnMut(Ledger) -> Decision,
) -> Result<(), AdmitError<E>>
where
    Decision: Future<Output = Result<Entry, E>>,
{
    let name = admission_ledger(owner);
    let api: Api<ConfigMap> = cluster.api();
    let attempts = async {
        // The watch's copy first: right almost always, and a stale one only costs a retry.
        let mut current = cluster.caches.ledger(&name).map(|c| (*c).clone());
        let mut read = false;
        for attempt in 0_u32.. {
            let now = Timestamp::now();
            let ledger = Ledger::from_data(current.as_ref().and_then(|c| c.data.as_ref())).with(now, deployment, None);
            let mut entry = match decide(ledger.clone()).await {
                Ok(entry) => entry,
                // Refused with entries the watch may not have seen go (a delete, a scale-down
                // a moment ago): refused only if the ledger as read says so too.
                Err(_) if !read && !ledger.entries.is_empty() => {
                    current = api.get_opt(&name).await.map_err(AdmitError::Cluster)?;
                    read = true;
                    continue;
                }
                Err(refusal) => return Err(AdmitError::Refused(refusal)),
            };
            entry.until = until(now);
            let next = ledger.with(now, deployment, Some(entry));
            if write(&api, &name, owner, current.as_ref(), &next)
                .await
                .map_err(AdmitError::Cluster)?
            {
                return Ok(());
            }
            // Lost to another admission of the owner: decide again on what it wrote, as the
            // watch brings it (moments later), or else as read.
            tokio::time::sleep(backoff(attempt)).await;
            current = fresher(cluster, &api, &name, current.as_ref())
                .await
                .map_err(AdmitError::Cluster)?;
        }
        unreachable!("the loop returns")
    };
    tokio::time::timeout(DEADLINE, attempts)
        .await
        .unwrap_or(Err(AdmitError::Timeout(DEADLINE)))
}

/// `owner`'s live ledger without `deployment`'s entry, as the watch cache shows it: what a
/// change that holds no more than the caches show decides on (it writes nothing).
pub fn seen(cluster: &Cluster, owner: &str, deployment: &str) -> Ledger {
    let cached = cluster.caches.ledger(&admission_ledger(owner));
    Ledger::from_data(cached.as_ref().and_then(|c| c.data.as_ref())).with(Timestamp::now(), deployment, None)
}

/// Sets `deployment`'s entry in `owner`'s ledger to `entry`, or removes it (`None`): after a
/// scale-down or a delete, so that what it no longer holds is free at once. Costs nothing when
/// the ledger has no live entry for it.
pub async fn settle(cluster: &Cluster, owner: &str, deployment: &str, entry: Option<Entry>) -> Result<(), kube::Error> {
    let name = admission_ledger(owner);
    let now = Timestamp::now();
    let cached = cluster.caches.ledger(&name);
    let live = |c: Option<&ConfigMap>| {
        Ledger::from_data(c.and_then(|c| c.data.as_ref()))
            .live(now)
            .entries
            .contains_key(deployment)
    };
    if !live(cached.as_deref()) {
        return Ok(());
    }
    let api: Api<ConfigMap> = cluster.api();
    let mut current = cached.map(|c| (*c).clone());
    for attempt in 0..16_u32 {
        let ledger = Ledger::from_data(current.as_ref().and_then(|c| c.data.as_ref()));
        let entry = entry.clone().map(|e| Entry { until: until(now), ..e });
        if write(
            &api,
            &name,
            owner,
            current.as_ref(),
            &ledger.with(now, deployment, entry),
        )
        .await?
        {
            return Ok(());
        }
        tokio::time::sleep(backoff(attempt)).await;
        current = fresher(cluster, &api, &name, current.as_ref()).await?;
        if !live(current.as_ref()) {
            return Ok(());
        }
    }
    tracing::warn!(%deployment, "the admission ledger kept changing; its entry counts until it expires");
    Ok(())
}

/// The ledger newer than `lost` (the version a write lost against): from the watch when it
/// brings one within a moment, else read from the API server.
async fn fresher(
    cluster: &Cluster,
    api: &Api<ConfigMap>,
    name: &str,
    lost: Option<&ConfigMap>,
) -> Result<Option<ConfigMap>, kube::Error> {
    let known = lost.and_then(|c| c.metadata.resource_version.as_deref());
    match cluster.caches.ledger_after(name, known, WATCH_PATIENCE).await {
        Some(seen) => Ok(Some((*seen).clone())),
        None => api.get_opt(name).await,
    }
}

/// How long a lost write waits for the watch to bring the winner's ledger before reading it.
const WATCH_PATIENCE: Duration = Duration::from_millis(100);

fn until(now: Timestamp) -> Timestamp {
    let hold = jiff::SignedDuration::try_from(HOLD).unwrap_or(jiff::SignedDuration::from_secs(120));
    now.checked_add(hold).unwrap_or(now)
}

/// A short random pause, growing with the attempts, so that writes that lost together do not
/// collide again in step.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let spread = 5 + 5 * u64::from(attempt.min(10));
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    Duration::from_millis(random % spread)
}

/// Writes `ledger` over `current` (created when there is none); `false` when another write
/// came first (the precondition failed).
async fn write(
    api: &Api<ConfigMap>,
    name: &str,
    owner: &str,
    current: Option<&ConfigMap>,
    ledger: &Ledger,
) -> Result<bool, kube::Error> {
    let labels = [(LEDGER_LABEL, "admission"), (OWNER_LABEL, &label_value(owner))];
    write_over(api, name, &labels, current, ledger.to_data()).await
}

/// Writes `data` as the ConfigMap `name` (with `labels` and the managed-by label) over
/// `current`, conditional on its `resourceVersion` (created when there is none); `false`
/// when another write came first or the ConfigMap went meanwhile: read it again and retry.
pub(crate) async fn write_over(
    api: &Api<ConfigMap>,
    name: &str,
    labels: &[(&str, &str)],
    current: Option<&ConfigMap>,
    data: BTreeMap<String, String>,
) -> Result<bool, kube::Error> {
    let mut all = BTreeMap::from([(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned())]);
    all.extend(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let object = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(all),
            resource_version: current.and_then(|c| c.metadata.resource_version.clone()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    };
    let written = match current {
        None => api.create(&PostParams::default(), &object).await,
        Some(_) => api.replace(name, &PostParams::default(), &object).await,
    };
    match written {
        Ok(_) => Ok(true),
        // 409: another write came first; 404: the ConfigMap went meanwhile (read it again).
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => Ok(false),
        Err(error) => Err(error),
    }
}
