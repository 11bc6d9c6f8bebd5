//! GPU usage in the embedded store: table `gpu_usage`, one row per pod and profile.

use super::{EmbeddedStore, failed};
use crate::records::RecordError;
use crate::records::UsageStore;
use futures::future::BoxFuture;
use jiff::Timestamp;
use llp_spec::spec::Gpu;
use llp_spec::usage::Hold;
use rusqlite::{Connection, params};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gpu_usage (
    pod_uid TEXT NOT NULL,
    profile TEXT NOT NULL,
    pod TEXT NOT NULL,
    deployment TEXT NOT NULL,
    owner TEXT NOT NULL,
    gpus INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (pod_uid, profile)
);
CREATE INDEX IF NOT EXISTS gpu_usage_open ON gpu_usage(ended_at);
";

impl EmbeddedStore {
    /// See [`UsageStore::record`].
    pub fn record_holds(&self, holds: &[Hold]) -> Result<(), RecordError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(failed)?;
        for hold in holds {
            tx.execute(
                "INSERT INTO gpu_usage (pod_uid, profile, pod, deployment, owner, gpus, started_at, ended_at, seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (pod_uid, profile) DO UPDATE SET
                     ended_at = COALESCE(gpu_usage.ended_at, excluded.ended_at),
                     seen_at = MAX(gpu_usage.seen_at, excluded.seen_at)",
                params![
                    hold.pod_uid,
                    hold.gpu.slug(),
                    hold.pod,
                    hold.deployment,
                    hold.owner,
                    hold.count,
                    stamp(hold.start),
                    hold.end.map(stamp),
                    stamp(hold.seen),
                ],
            )
            .map_err(failed)?;
        }
        tx.commit().map_err(failed)
    }

    /// See [`UsageStore::open_holds`].
    pub fn open_holds(&self) -> Result<Vec<Hold>, RecordError> {
        query(&self.db(), "WHERE ended_at IS NULL", params![])
    }

    /// See [`UsageStore::holds_between`].
    pub fn holds_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Hold>, RecordError> {
        query(
            &self.db(),
            "WHERE started_at < ?2 AND (ended_at IS NULL OR ended_at > ?1)",
            params![stamp(from), stamp(to)],
        )
    }
}

/// A time as stored: RFC 3339 in UTC with a fixed number of fractional digits, so that text
/// order is time order (the SQL compares text).
fn stamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn query(db: &Connection, filter: &str, args: impl rusqlite::Params) -> Result<Vec<Hold>, RecordError> {
    let sql = format!(
        "SELECT pod_uid, profile, pod, deployment, owner, gpus, started_at, ended_at, seen_at
         FROM gpu_usage {filter} ORDER BY started_at, pod_uid"
    );
    let mut statement = db.prepare(&sql).map_err(failed)?;
    let rows = statement
        .query_map(args, |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, u32>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, Option<String>>(7)?,
                row.get::<_, String>(8)?,
            ))
        })
        .map_err(failed)?;
    let time = |text: &str| {
        text.parse::<Timestamp>().map_err(|e| RecordError::Unavailable {
            source_name: super::NAME,
            detail: format!("gpu_usage holds a time that is not one: {text}: {e}"),
        })
    };
    let mut holds = Vec::new();
    for row in rows {
        let (pod_uid, profile, pod, deployment, owner, count, start, end, seen) = row.map_err(failed)?;
        let gpu = Gpu::from_slug(&profile).ok_or_else(|| RecordError::Unavailable {
            source_name: super::NAME,
            detail: format!("gpu_usage names an unknown profile `{profile}`"),
        })?;
        holds.push(Hold {
            pod_uid,
            pod,
            deployment,
            owner,
            gpu,
            count,
            start: time(&start)?,
            end: end.as_deref().map(time).transpose()?,
            seen: time(&seen)?,
        });
    }
    Ok(holds)
}

impl UsageStore for EmbeddedStore {
    fn record<'a>(&'a self, holds: &'a [Hold]) -> BoxFuture<'a, Result<(), RecordError>> {
        let holds = holds.to_vec();
        Box::pin(self.blocking(move |store| store.record_holds(&holds)))
    }

    fn open_holds(&self) -> BoxFuture<'_, Result<Vec<Hold>, RecordError>> {
        Box::pin(self.blocking(EmbeddedStore::open_holds))
    }

    fn holds_between(&self, from: Timestamp, to: Timestamp) -> BoxFuture<'_, Result<Vec<Hold>, RecordError>> {
        Box::pin(self.blocking(move |store| store.holds_between(from, to)))
    }
}
