//! The deployment a request acts on: its record, read for the caller, and where its objects are.

use super::{Error, Operations};
use crate::cluster::Cluster;
use crate::records::{Purpose, Session};
use llp_spec::names::{Names, label_value};
use llp_spec::{Record, RecordId};
use std::sync::Arc;

/// A record the caller may act on, and where its objects are.
pub struct Target<'a> {
    /// The record.
    pub record: Arc<Record>,
    /// Its object names.
    pub names: Names,
    /// Its `llp.kitegg.de/deployment` label value.
    pub label: String,
    /// The cluster.
    pub cluster: &'a Cluster,
}

impl<'a> Operations<'a> {
    /// The record `id` as `caller` may read it (not found when unknown or someone else's),
    /// and its names.
    pub async fn resolve(&self, caller: &Session, id: &str, purpose: Purpose) -> Result<Target<'a>, Error> {
        let record = self.records.record(caller, id, purpose).await?;
        let record_id = record.id.clone().unwrap_or_else(|| RecordId::Text(id.to_owned()));
        Ok(Target {
            names: Names::new(&self.render.name_prefix, &record_id),
            label: label_value(&record_id.to_string()),
            record,
            cluster: self.cluster()?,
        })
    }
}

impl Target<'_> {
    /// The deployment, if it is deployed (not found, saying so, otherwise).
    pub fn deployed(self) -> Result<Self, Error> {
        if self.cluster.caches.deployed(self.names.base()).is_none() {
            return Err(Error::NotFound(
                "this deployment is not deployed yet: deploy it with PUT first".into(),
            ));
        }
        Ok(self)
    }

    /// The user the deployment belongs to (the caller's own when the record names none).
    pub fn owner<'b>(&'b self, caller: &'b Session) -> &'b str {
        self.record.user_created.as_deref().unwrap_or(&caller.identity.id)
    }

    /// Checks that `pod` is one of this deployment's pods (not found otherwise, whoever owns it).
    pub fn own_pod(&self, pod: &str) -> Result<(), Error> {
        let (pods, _) = self.cluster.caches.members(self.names.base());
        if pods.iter().any(|p| p.metadata.name.as_deref() == Some(pod)) {
            Ok(())
        } else {
            Err(Error::NotFound(format!("this deployment has no pod `{pod}`")))
        }
    }
}
