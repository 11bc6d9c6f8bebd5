//! The embedded record source: users and deployment records in one SQLite file.
//!
//! Tokens are 244-bit random strings shown once; only their SHA-256 is stored (they have
//! far too much entropy for a slow hash to add anything). Non-admins see only the records
//! they created, and a record of someone else reads exactly like a missing one.

use super::{Identity, Purpose, RecordError, RecordSource, Session, Token};
use futures::future::BoxFuture;
use llp_spec::{Record, RecordId};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Users and records in a SQLite file. Clones share one connection and one in-memory view.
///
/// The file is the truth; the view answers the reads every request makes (the caller's
/// identity, the record) without SQLite or a blocking thread. This store's own writes update
/// the view under the same lock as the file; what other processes write (a second replica of
/// the service, `llp-k8s users add` while it runs) is noticed by
/// [`EmbeddedStore::follow_other_writers`], and users another process adds are read from the
/// file the first time their token is seen.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Mutex<Connection>>,
    view: Arc<View>,
}

/// What the store has read or written, by token hash and by record id.
#[derive(Default)]
struct View {
    identities: std::sync::RwLock<std::collections::HashMap<String, Arc<Identity>>>,
    records: std::sync::RwLock<std::collections::HashMap<String, Arc<Record>>>,
}

impl View {
    fn identity(&self, token_hash: &str) -> Option<Arc<Identity>> {
        self.identities
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token_hash)
            .cloned()
    }

    fn remember_identity(&self, token_hash: String, identity: Arc<Identity>) {
        self.identities
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(token_hash, identity);
    }

    fn record(&self, id: &str) -> Option<Arc<Record>> {
        self.records
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    fn remember_record(&self, record: Arc<Record>) {
        let Some(id) = record.id.as_ref().map(ToString::to_string) else {
            return;
        };
        self.records
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, record);
    }

    /// Forgets everything: another process wrote to the file.
    fn clear(&self) {
        self.identities
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.records
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    fn forget_record(&self, id: &str) {
        self.records
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }
}

/// The fields a caller may set on a record: left out, a field keeps its value; `null`
/// clears it (as in Directus, e.g. to stop exposing a deployment).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordInput {
    /// Display title.
    #[serde(default, deserialize_with = "present")]
    pub title: Option<Option<String>>,
    /// The deployment YAML.
    #[serde(default, deserialize_with = "present")]
    pub data: Option<Option<String>>,
    /// Container to expose.
    #[serde(default, deserialize_with = "present")]
    pub exposed_service: Option<Option<String>>,
    /// Its port.
    #[serde(default, deserialize_with = "present")]
    pub exposed_port: Option<Option<serde_json::Value>>,
    /// Host label.
    #[serde(default, deserialize_with = "present")]
    pub exposed_hostname: Option<Option<String>>,
}

/// A field that is there, `null` or not (a missing one is `None` through `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    groups TEXT NOT NULL DEFAULT '[]',
    admin INTEGER NOT NULL DEFAULT 0,
    token_sha256 TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    title TEXT,
    data TEXT,
    exposed_service TEXT,
    exposed_port TEXT,
    exposed_hostname TEXT,
    user_created TEXT NOT NULL REFERENCES users(id),
    date_created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS deployments_owner ON deployments(user_created);
";

/// What errors call this source.
const NAME: &str = "the record store";

fn failed(error: rusqlite::Error) -> RecordError {
    RecordError::Unavailable {
        source_name: NAME,
        detail: error.to_string(),
    }
}

fn token_hash(token: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(token.as_bytes()) {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

impl EmbeddedStore {
    /// Opens (and if needed creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, RecordError> {
        let db = Connection::open(path).map_err(failed)?;
        db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")
            .map_err(failed)?;
        // Another process (a second replica, the command line) may be writing: wait for it.
        db.busy_timeout(std::time::Duration::from_secs(5)).map_err(failed)?;
        db.execute_batch(SCHEMA).map_err(failed)?;
        db.execute_batch(courses::SCHEMA).map_err(failed)?;
        db.execute_batch(reservations::SCHEMA).map_err(failed)?;
        courses::migrate(&db)?;
        db.execute_batch(usage::SCHEMA).map_err(failed)?;
        Ok(Self {
            db: Arc::new(Mutex::new(db)),
            view: Arc::default(),
        })
    }

    /// Follows what other processes write to the file (another replica of the service, the
    /// command line): every `every`, SQLite's `data_version` says whether another connection
    /// committed since; if so the view is dropped and refilled from the file as requests come,
    /// so a record another replica changed or deleted is seen within `every`. The thread ends
    /// with the store.
    pub fn follow_other_writers(&self, every: std::time::Duration) -> std::thread::JoinHandle<()> {
        let version = |db: &Connection| db.query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0));
        // From now: a write another process makes after this returns is noticed.
        let mut seen = version(&self.db()).ok();
        let (db, view) = (Arc::downgrade(&self.db), Arc::downgrade(&self.view));
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(every);
                let (Some(db), Some(view)) = (db.upgrade(), view.upgrade()) else {
                    return;
                };
                let now = version(&db.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
                match now {
                    Ok(version) if seen.is_some_and(|s| s != version) => {
                        view.clear();
                        seen = Some(version);
                    }
                    Ok(version) => seen = Some(version),
                    Err(error) => tracing::warn!(%error, "cannot read the record store's data version"),
                }
            }
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the database answers.
    pub fn ping(&self) -> Result<(), RecordError> {
        self.db().query_row("SELECT 1", [], |_| Ok(())).map_err(failed)
    }

    /// Creates a user and returns it with its token (shown this once).
    pub fn add_user(&self, name: &str, groups: &[String], admin: bool) -> Result<(Identity, String), RecordError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(RecordError::InvalidField {
                field: "name".into(),
                message: "a user needs a name".into(),
            });
        }
        let taken = self
            .db()
            .query_row("SELECT 1 FROM users WHERE name = ?1", [name], |_| Ok(()))
            .optional()
            .map_err(failed)?
            .is_some();
        if taken {
            return Err(RecordError::InvalidField {
                field: "name".into(),
                message: format!("a user named `{name}` exists already: pick another name"),
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        let token = format!("llp_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let groups_json = serde_json::to_string(groups).map_err(|e| RecordError::Invalid(e.to_string()))?;
        self.db()
            .execute(
                "INSERT INTO users (id, name, groups, admin, token_sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, name, groups_json, admin, token_hash(&token)],
            )
            .map_err(failed)?;
        Ok((
            Identity {
                id,
                name: name.to_owned(),
                groups: groups.to_vec(),
                admin,
            },
            token,
        ))
    }

    /// The user with id `name_or_id`, else the one user named so.
    pub fn find_user(&self, name_or_id: &str) -> Result<Identity, RecordError> {
        let db = self.db();
        let mut query = db
            .prepare("SELECT id, name, groups, admin FROM users WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC")
            .map_err(failed)?;
        let found: Vec<Identity> = query
            .query_map([name_or_id], |row| {
                let groups: String = row.get(2)?;
                Ok(Identity {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    groups: serde_json::from_str(&groups).unwrap_or_default(),
                    admin: row.get(3)?,
                })
            })
            .map_err(failed)?
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        match found.as_slice() {
            [] => Err(RecordError::InvalidField {
                field: "user".into(),
                message: format!("no user has the name or id `{name_or_id}`"),
            }),
            [only, ..] if only.id == name_or_id => Ok(only.clone()),
            [only] => Ok(only.clone()),
            _ => Err(RecordError::InvalidField {
                field: "user".into(),
                message: format!("several users are named `{name_or_id}`: give the id"),
            }),
        }
    }

    /// The user holding `token`.
    pub fn authenticate(&self, token: &str) -> Result<Arc<Identity>, RecordError> {
        let hash = token_hash(token);
        if let Some(identity) = self.view.identity(&hash) {
            return Ok(identity);
        }
        let db = self.db();
        let identity = db
            .query_row(
                "SELECT id, name, groups, admin FROM users WHERE token_sha256 = ?1",
                [&hash],
                |row| {
                    let groups: String = row.get(2)?;
                    Ok(Identity {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        groups: serde_json::from_str(&groups).unwrap_or_default(),
                        admin: row.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(failed)?
            .ok_or(RecordError::Unauthorized)?;
        let identity = Arc::new(identity);
        self.view.remember_identity(hash, identity.clone());
        Ok(identity)
    }

    /// Creates a record owned by `caller`.
    pub fn create(&self, caller: &Identity, input: &RecordInput) -> Result<Arc<Record>, RecordError> {
        let id = uuid::Uuid::new_v4().to_string();
        let db = self.db();
        db.execute(
            "INSERT INTO deployments (id, title, data, exposed_service, exposed_port, exposed_hostname, user_created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                input.title.clone().flatten(),
                input.data.clone().flatten(),
                input.exposed_service.clone().flatten(),
                input.exposed_port.clone().flatten().map(|p| p.to_string()),
                input.exposed_hostname.clone().flatten(),
                caller.id
            ],
        )
        .map_err(failed)?;
        self.read_through(&db, &id)
    }

    /// The record `id`, from the view or else the file (then remembered); called with the
    /// file's lock held, so that no write slips between reading the file and the view.
    fn read_through(&self, db: &Connection, id: &str) -> Result<Arc<Record>, RecordError> {
        if let Some(record) = self.view.record(id) {
            return Ok(record);
        }
        let record = db
            .query_row(
                "SELECT id, title, data, exposed_service, exposed_port, exposed_hostname, user_created, date_created FROM deployments WHERE id = ?1",
                [id],
                row_to_record,
            )
            .optional()
            .map_err(failed)?
            .ok_or(RecordError::NotFound)?;
        let record = Arc::new(record);
        self.view.remember_record(record.clone());
        Ok(record)
    }

    /// A record `caller` may read; others' records are [`RecordError::NotFound`].
    pub fn get(&self, caller: &Identity, id: &RecordId) -> Result<Arc<Record>, RecordError> {
        let id = id.to_string();
        let record = match self.view.record(&id) {
            Some(record) => record,
            None => self.read_through(&self.db(), &id)?,
        };
        if caller.may_access(&record) {
            Ok(record)
        } else {
            Err(RecordError::NotFound)
        }
    }

    /// The records `caller` may read (all of them for admins).
    pub fn list(&self, caller: &Identity) -> Result<Vec<Record>, RecordError> {
        let db = self.db();
        let mut query = db
            .prepare(
                "SELECT id, title, data, exposed_service, exposed_port, exposed_hostname, user_created, date_created FROM deployments
                 WHERE ?1 OR user_created = ?2 ORDER BY date_created, id",
            )
            .map_err(failed)?;
        let rows = query
            .query_map(params![caller.admin, caller.id], row_to_record)
            .map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)
    }

    /// The id of every record.
    pub fn ids(&self) -> Result<Vec<String>, RecordError> {
        let db = self.db();
        let mut query = db.prepare("SELECT id FROM deployments").map_err(failed)?;
        let rows = query.query_map([], |row| row.get(0)).map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)
    }

    /// Changes the given fields of a record `caller` may read (read and write under one lock,
    /// so two changes at once never lose one).
    pub fn update(&self, caller: &Identity, id: &RecordId, input: &RecordInput) -> Result<Arc<Record>, RecordError> {
        let id = id.to_string();
        let db = self.db();
        let current = Record::clone(&*self.read_through(&db, &id)?);
        if !caller.may_access(&current) {
            return Err(RecordError::NotFound);
        }
        let changed = |new: &Option<Option<String>>, old: Option<String>| new.clone().unwrap_or(old);
        let port = input
            .exposed_port
            .clone()
            .unwrap_or(current.exposed_port)
            .map(|p| p.to_string());
        db.execute(
            "UPDATE deployments SET title = ?2, data = ?3, exposed_service = ?4, exposed_port = ?5, exposed_hostname = ?6 WHERE id = ?1",
            params![
                id,
                changed(&input.title, current.title),
                changed(&input.data, current.data),
                changed(&input.exposed_service, current.exposed_service),
                port,
                changed(&input.exposed_hostname, current.exposed_hostname),
            ],
        )
        .map_err(failed)?;
        self.view.forget_record(&id);
        self.read_through(&db, &id)
    }

    /// Deletes a record `caller` may read.
    pub fn delete(&self, caller: &Identity, id: &RecordId) -> Result<(), RecordError> {
        let id = id.to_string();
        let db = self.db();
        let current = self.read_through(&db, &id)?;
        if !caller.may_access(&current) {
            return Err(RecordError::NotFound);
        }
        db.execute("DELETE FROM deployments WHERE id = ?1", [&id])
            .map_err(failed)?;
        self.view.forget_record(&id);
        Ok(())
    }
}

impl EmbeddedStore {
    /// Runs `call` on a blocking thread (SQLite blocks).
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&EmbeddedStore) -> Result<T, RecordError> + Send + 'static,
    ) -> Result<T, RecordError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || call(&store))
            .await
            .map_err(|e| RecordError::Unavailable {
                source_name: NAME,
                detail: e.to_string(),
            })?
    }
}

impl RecordSource for EmbeddedStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn authenticate<'a>(&'a self, token: &'a Token) -> BoxFuture<'a, Result<Arc<Identity>, RecordError>> {
        // Known tokens are answered from the view, on this thread; others read the file.
        if let Some(identity) = self.view.identity(&token_hash(token.expose())) {
            return Box::pin(std::future::ready(Ok(identity)));
        }
        let token = token.expose().to_owned();
        Box::pin(self.blocking(move |store| store.authenticate(&token)))
    }

    fn record<'a>(
        &'a self,
        session: &'a Session,
        id: &'a str,
        _purpose: Purpose,
    ) -> BoxFuture<'a, Result<Arc<Record>, RecordError>> {
        if let Some(record) = self.view.record(id) {
            let answer = if session.identity.may_access(&record) {
                Ok(record)
            } else {
                Err(RecordError::NotFound)
            };
            return Box::pin(std::future::ready(answer));
        }
        let (caller, id) = (session.identity.clone(), RecordId::Text(id.to_owned()));
        Box::pin(self.blocking(move |store| store.get(&caller, &id)))
    }

    fn reservations<'a>(
        &'a self,
        _session: &'a Session,
        owner: &'a str,
        deployments: &'a [String],
        now: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Vec<llp_spec::reservations::Reservation>, RecordError>> {
        let (owner, deployments) = (owner.to_owned(), deployments.to_vec());
        Box::pin(self.blocking(move |store| store.reservations_covering(&owner, &deployments, now)))
    }

    fn bookings_between<'a>(
        &'a self,
        session: &'a Session,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Vec<llp_spec::reservations::Reservation>, RecordError>> {
        let identity = session.identity.clone();
        Box::pin(self.blocking(move |store| store.bookings_between(&identity, from, to)))
    }

    fn open_reservations<'a>(
        &'a self,
        _fallback: Option<&'a Token>,
        now: jiff::Timestamp,
    ) -> BoxFuture<'a, Result<Vec<llp_spec::reservations::Reservation>, RecordError>> {
        Box::pin(self.blocking(move |store| store.open_reservations(now)))
    }

    fn record_ids<'a>(&'a self, _fallback: Option<&'a Token>) -> BoxFuture<'a, Result<Vec<String>, RecordError>> {
        Box::pin(self.blocking(EmbeddedStore::ids))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(self.blocking(EmbeddedStore::ping))
    }
}

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let port: Option<String> = row.get(4)?;
    Ok(Record {
        id: Some(RecordId::Text(row.get(0)?)),
        title: row.get(1)?,
        data: row.get(2)?,
        exposed_service: row.get(3)?,
        exposed_port: port.and_then(|p| serde_json::from_str(&p).ok()),
        exposed_hostname: row.get(5)?,
        user_created: row.get(6)?,
        date_created: row.get(7)?,
    })
}

mod courses;
mod reservations;
pub use courses::{Course, CourseInput, People};
pub use reservations::{ReservationInput, UserRef};
mod usage;

#[cfg(test)]
mod tests;
