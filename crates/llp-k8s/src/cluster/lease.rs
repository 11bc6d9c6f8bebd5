//! Leader election with a `coordination.k8s.io` Lease, as Kubernetes controllers do it: one
//! holder at a time, who renews the lease; when it stops renewing, another instance takes it
//! once the lease has expired. Every change is a write conditional on the resourceVersion
//! read, so two instances can never both win.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

/// One instance's view of a named lease.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    holder: String,
    duration: SignedDuration,
}

impl LeaseLock {
    /// The lease `name` in the namespace of `api`, held as `holder` for `duration` at a time.
    pub fn new(api: Api<Lease>, name: &str, holder: &str, duration: std::time::Duration) -> Self {
        Self {
            api,
            name: name.to_owned(),
            holder: holder.to_owned(),
            duration: SignedDuration::try_from(duration).unwrap_or(SignedDuration::from_secs(30)),
        }
    }

    /// Who this instance is.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes or renews the lease at `now`; whether this instance holds it afterwards.
    pub async fn try_hold(&self, now: Timestamp) -> Result<bool, kube::Error> {
        let spec = |transitions: i32, acquired: Timestamp| LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(i32::try_from(self.duration.as_secs()).unwrap_or(30)),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec(0, now)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let mine = current.holder_identity.as_deref() == Some(self.holder.as_str());
        let renewed = current.renew_time.as_ref().map(|t| t.0);
        let lasts = SignedDuration::from_secs(current.lease_duration_seconds.unwrap_or(0).into());
        let expired = current.holder_identity.as_deref().is_none_or(str::is_empty)
            || renewed.is_none_or(|renewed| renewed + lasts <= now);
        if !mine && !expired {
            return Ok(false);
        }
        let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = match (mine, current.acquire_time) {
            (true, Some(acquired)) => acquired.0,
            _ => now,
        };
        lease.spec = Some(spec(transitions, acquired));
        // Conditional on the resourceVersion read: a rival's write in between is a 409.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Gives the lease up (on shutdown), so that another instance need not wait for it to
    /// expire.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.holder.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// A name for this instance in the reconcilers' leases: the host (the pod's name in a cluster)
/// and a random suffix, unique across restarts.
pub fn instance_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "llp-k8s".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

/// Runs `round` every `every` until `shutdown` turns true, then gives `lease` up: the loop of
/// a lease-elected reconciler called `what`. A round answers the problem it met, if any; a
/// problem is logged when it changes, not every round.
pub async fn run_rounds<F, Fut>(
    what: &str,
    lease: &LeaseLock,
    every: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let mut last_problem: Option<String> = None;
    loop {
        let problem = round().await;
        if problem != last_problem {
            match &problem {
                Some(problem) => tracing::error!(%problem, "the {what} failed"),
                None if last_problem.is_some() => tracing::info!("the {what} works again"),
                None => {}
            }
            last_problem = problem;
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    if let Err(error) = lease.release().await {
        tracing::warn!(%error, "could not give up the {what}'s lease");
    }
}
