//! GPU reservations in the embedded store: table `gpu_reservations` and the junction
//! `gpu_reservations_users`, as the LLP has them. Admins write; users read the bookings they
//! are among the users of (another user's reads like a missing one).

use super::{EmbeddedStore, failed};
use crate::records::{Identity, RecordError};
use jiff::Timestamp;
use llp_spec::reservations::Reservation;
use llp_spec::spec::Gpu;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gpu_reservations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gpus TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    deployment TEXT,
    date_created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS gpu_reservations_users (
    reservation INTEGER NOT NULL REFERENCES gpu_reservations(id) ON DELETE CASCADE,
    user TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (reservation, user)
);
CREATE INDEX IF NOT EXISTS gpu_reservations_ends ON gpu_reservations(ends_at);
";

/// A user of a reservation as a write names them: an id, or the Directus junction's shape
/// `{"directus_users_id": id}`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum UserRef {
    /// A user id.
    Id(String),
    /// The junction item.
    Junction {
        /// The user id.
        directus_users_id: String,
    },
}

impl UserRef {
    fn id(&self) -> &str {
        match self {
            UserRef::Id(id) | UserRef::Junction { directus_users_id: id } => id,
        }
    }
}

/// The fields of a reservation a write sets; left out, a field keeps its value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationInput {
    /// Profile slugs, one per GPU: `gpu-l`, `gpu-m`, `gpu-s`, `gpu-xs`.
    pub gpus: Option<Vec<String>>,
    /// RFC 3339 time the booking starts (inclusive).
    pub start: Option<String>,
    /// RFC 3339 time it ends (exclusive).
    pub end: Option<String>,
    /// The deployment record it is for; `null`: any deployment of its users.
    #[serde(default, deserialize_with = "super::present")]
    pub deployment: Option<Option<String>>,
    /// Who it is for.
    pub users: Option<Vec<UserRef>>,
    /// The course it is for (its collaborators and members); `null`: none.
    #[serde(default, deserialize_with = "super::present")]
    pub course: Option<Option<String>>,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> RecordError {
    RecordError::InvalidField {
        field: field.into(),
        message: message.into(),
    }
}

/// The profiles of `slugs`, naming the first unknown one.
fn parse_gpus(slugs: &[String]) -> Result<Vec<Gpu>, RecordError> {
    if slugs.is_empty() {
        return Err(invalid(
            "gpus",
            "a reservation books at least one GPU, e.g. [\"gpu-xs\"]",
        ));
    }
    slugs
        .iter()
        .enumerate()
        .map(|(i, slug)| {
            Gpu::from_slug(slug).ok_or_else(|| {
                invalid(
                    format!("gpus[{i}]"),
                    format!("`{slug}` is not a GPU profile: use gpu-l, gpu-m, gpu-s or gpu-xs"),
                )
            })
        })
        .collect()
}

fn parse_time(field: &str, text: &str) -> Result<Timestamp, RecordError> {
    text.parse().map_err(|_| {
        invalid(
            field,
            format!("`{text}` is not a time: use RFC 3339, e.g. 2026-11-27T09:00:00Z"),
        )
    })
}

/// `input` applied to `current` (none for a new booking), checked whole, so that an edit of
/// one field cannot leave an end before the start.
fn merged(current: Option<&Reservation>, input: &ReservationInput) -> Result<Reservation, RecordError> {
    let missing = |field: &str| invalid(field, format!("a new reservation needs `{field}`"));
    let gpus = match (&input.gpus, current) {
        (Some(slugs), _) => parse_gpus(slugs)?,
        (None, Some(c)) => c.gpus.clone(),
        (None, None) => return Err(missing("gpus")),
    };
    let time = |field: &str, given: &Option<String>, old: Option<Timestamp>| match (given, old) {
        (Some(text), _) => parse_time(field, text),
        (None, Some(old)) => Ok(old),
        (None, None) => Err(missing(field)),
    };
    let start = time("start", &input.start, current.map(|c| c.start))?;
    let end = time("end", &input.end, current.map(|c| c.end))?;
    if end <= start {
        return Err(invalid(
            "end",
            format!("the reservation ends ({end}) before it starts ({start}): the end must be later"),
        ));
    }
    let users: Vec<String> = match (&input.users, current) {
        (Some(users), _) => users.iter().map(|u| u.id().to_owned()).collect(),
        (None, Some(c)) => c.users.clone(),
        (None, None) if input.course.as_ref().is_some_and(Option::is_some) => Vec::new(),
        (None, None) => return Err(missing("users")),
    };
    let course = match (&input.course, current) {
        (Some(c), _) => c.clone().filter(|c| !c.is_empty()),
        (None, Some(c)) => c.course.clone(),
        (None, None) => None,
    };
    if users.is_empty() && course.is_none() {
        return Err(invalid(
            "users",
            "a reservation is for at least one user, or for a course",
        ));
    }
    let deployment = match (&input.deployment, current) {
        (Some(d), _) => d.clone().filter(|d| !d.is_empty()),
        (None, Some(c)) => c.deployment.clone(),
        (None, None) => None,
    };
    Ok(Reservation {
        id: current.map(|c| c.id.clone()).unwrap_or_default(),
        gpus,
        start,
        end,
        deployment,
        users,
        course,
    })
}

pub(super) fn admin_only(caller: &Identity) -> Result<(), RecordError> {
    if caller.admin {
        Ok(())
    } else {
        Err(RecordError::Forbidden(
            "only admins book GPUs: ask an admin for a reservation".into(),
        ))
    }
}

impl EmbeddedStore {
    /// Books GPUs (admins only).
    pub fn add_reservation(&self, caller: &Identity, input: &ReservationInput) -> Result<Reservation, RecordError> {
        admin_only(caller)?;
        let reservation = merged(None, input)?;
        let mut db = self.db();
        let tx = db.transaction().map_err(failed)?;
        check_references(&tx, &reservation)?;
        tx.execute(
            "INSERT INTO gpu_reservations (gpus, starts_at, ends_at, deployment, course) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                slugs_json(&reservation.gpus),
                reservation.start.to_string(),
                reservation.end.to_string(),
                reservation.deployment,
                reservation.course
            ],
        )
        .map_err(failed)?;
        let id = tx.last_insert_rowid();
        insert_users(&tx, id, &reservation.users)?;
        let booked = one(&tx, &id.to_string())?;
        tx.commit().map_err(failed)?;
        Ok(booked)
    }

    /// Changes a booking (admins only), checked whole after the change. Read, check and
    /// write happen in one transaction under the store's lock, so two edits at once cannot
    /// each pass against the old booking and together leave an invalid one.
    pub fn update_reservation(
        &self,
        caller: &Identity,
        id: &str,
        input: &ReservationInput,
    ) -> Result<Reservation, RecordError> {
        admin_only(caller)?;
        let mut db = self.db();
        let tx = db.transaction().map_err(failed)?;
        let current = one(&tx, id)?;
        let changed = merged(Some(&current), input)?;
        check_references(&tx, &changed)?;
        tx.execute(
            "UPDATE gpu_reservations SET gpus = ?2, starts_at = ?3, ends_at = ?4, deployment = ?5, course = ?6 WHERE id = ?1",
            params![
                id,
                slugs_json(&changed.gpus),
                changed.start.to_string(),
                changed.end.to_string(),
                changed.deployment,
                changed.course
            ],
        )
        .map_err(failed)?;
        tx.execute("DELETE FROM gpu_reservations_users WHERE reservation = ?1", [id])
            .map_err(failed)?;
        insert_users(&tx, id.parse().unwrap_or_default(), &changed.users)?;
        let updated = one(&tx, id)?;
        tx.commit().map_err(failed)?;
        Ok(updated)
    }

    /// Deletes a booking (admins only).
    pub fn remove_reservation(&self, caller: &Identity, id: &str) -> Result<(), RecordError> {
        admin_only(caller)?;
        let removed = self
            .db()
            .execute("DELETE FROM gpu_reservations WHERE id = ?1", [id])
            .map_err(failed)?;
        if removed == 0 {
            return Err(RecordError::NotFound);
        }
        Ok(())
    }

    /// One booking the caller may read.
    pub fn reservation(&self, caller: &Identity, id: &str) -> Result<Reservation, RecordError> {
        let db = self.db();
        let found = one(&db, id)?;
        if caller.admin || for_people(&db, found.clone())?.users.contains(&caller.id) {
            Ok(found)
        } else {
            Err(RecordError::NotFound)
        }
    }

    /// The bookings the caller may read (every one for admins; else those for them or a
    /// course of theirs), by start, naming the users they name.
    pub fn reservations(&self, caller: &Identity) -> Result<Vec<Reservation>, RecordError> {
        let db = self.db();
        let mut readable = Vec::new();
        for booking in query(&db, "", params![])? {
            if caller.admin || for_people(&db, booking.clone())?.users.contains(&caller.id) {
                readable.push(booking);
            }
        }
        Ok(readable)
    }

    /// The bookings that overlap `[from, to)` the caller may read, each for all its people.
    pub fn bookings_between(
        &self,
        caller: &Identity,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reservation>, RecordError> {
        let db = self.db();
        let mut found = Vec::new();
        for booking in query(
            &db,
            "WHERE r.starts_at < ?2 AND r.ends_at > ?1",
            params![from.to_string(), to.to_string()],
        )? {
            let booking = for_people(&db, booking)?;
            if caller.admin || booking.users.contains(&caller.id) {
                found.push(booking);
            }
        }
        Ok(found)
    }

    /// Every booking not ended at `now`, each for all its people.
    pub fn open_reservations(&self, now: Timestamp) -> Result<Vec<Reservation>, RecordError> {
        let db = self.db();
        query(&db, "WHERE r.ends_at > ?1", params![now.to_string()])?
            .into_iter()
            .map(|booking| for_people(&db, booking))
            .collect()
    }

    /// The bookings not ended at `now` that name one of `deployments` or are `owner`'s.
    pub fn reservations_covering(
        &self,
        owner: &str,
        deployments: &[String],
        now: Timestamp,
    ) -> Result<Vec<Reservation>, RecordError> {
        Ok(self
            .open_reservations(now)?
            .into_iter()
            .filter(|r| {
                r.users.iter().any(|u| u == owner) || r.deployment.as_ref().is_some_and(|d| deployments.contains(d))
            })
            .collect())
    }
}

/// `booking` with its users and, if it is a course's, the course's collaborators and members:
/// everyone it counts for.
fn for_people(db: &Connection, mut booking: Reservation) -> Result<Reservation, RecordError> {
    let Some(course) = &booking.course else {
        return Ok(booking);
    };
    let mut statement = db
        .prepare(
            "SELECT directus_users_id FROM courses_directus_users WHERE CAST(courses_id AS TEXT) = ?1
             UNION SELECT directus_users_id FROM courses_directus_users_2 WHERE CAST(courses_id AS TEXT) = ?1",
        )
        .map_err(failed)?;
    let people = statement
        .query_map([course], |row| row.get::<_, String>(0))
        .map_err(failed)?;
    for person in people {
        let person = person.map_err(failed)?;
        if !booking.users.contains(&person) {
            booking.users.push(person);
        }
    }
    Ok(booking)
}

/// The booking `id`.
fn one(db: &Connection, id: &str) -> Result<Reservation, RecordError> {
    query(db, "WHERE r.id = ?1", params![id])?
        .into_iter()
        .next()
        .ok_or(RecordError::NotFound)
}

/// The bookings `filter` selects, by start.
fn query(db: &Connection, filter: &str, args: impl rusqlite::Params) -> Result<Vec<Reservation>, RecordError> {
    let sql = format!(
        "SELECT r.id, r.gpus, r.starts_at, r.ends_at, r.deployment,
                (SELECT json_group_array(u.user) FROM gpu_reservations_users u WHERE u.reservation = r.id),
                r.course
         FROM gpu_reservations r {filter} ORDER BY r.starts_at, r.id"
    );
    let mut statement = db.prepare(&sql).map_err(failed)?;
    let rows = statement
        .query_map(args, |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, Option<i64>>(6)?,
            ))
        })
        .map_err(failed)?;
    let mut found = Vec::new();
    for row in rows {
        let (id, gpus, start, end, deployment, users, course) = row.map_err(failed)?;
        let corrupt = |what: &str| RecordError::Unavailable {
            source_name: super::NAME,
            detail: format!("reservation {id} has an unreadable {what}"),
        };
        let slugs: Vec<String> = serde_json::from_str(&gpus).map_err(|_| corrupt("gpus"))?;
        found.push(Reservation {
            id: id.to_string(),
            gpus: slugs.iter().filter_map(|s| Gpu::from_slug(s)).collect(),
            start: start.parse().map_err(|_| corrupt("start"))?,
            end: end.parse().map_err(|_| corrupt("end"))?,
            deployment,
            users: serde_json::from_str(&users).map_err(|_| corrupt("users"))?,
            course: course.map(|c| c.to_string()),
        });
    }
    Ok(found)
}

/// The users and the deployment a booking names exist.
fn check_references(db: &Connection, reservation: &Reservation) -> Result<(), RecordError> {
    let exists = |sql: &str, id: &str| -> Result<bool, RecordError> {
        Ok(db
            .query_row(sql, [id], |_| Ok(()))
            .optional()
            .map_err(failed)?
            .is_some())
    };
    for (i, user) in reservation.users.iter().enumerate() {
        if !exists("SELECT 1 FROM users WHERE id = ?1", user)? {
            return Err(invalid(format!("users[{i}]"), format!("no user has the id `{user}`")));
        }
    }
    if let Some(deployment) = &reservation.deployment
        && !exists("SELECT 1 FROM deployments WHERE id = ?1", deployment)?
    {
        return Err(invalid(
            "deployment",
            format!("no deployment record has the id `{deployment}`"),
        ));
    }
    if let Some(course) = &reservation.course
        && !exists("SELECT 1 FROM courses WHERE CAST(id AS TEXT) = ?1", course)?
    {
        return Err(invalid("course", format!("no course has the id `{course}`")));
    }
    Ok(())
}

fn slugs_json(gpus: &[Gpu]) -> String {
    serde_json::to_string(&gpus.iter().map(|g| g.slug()).collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

fn insert_users(tx: &rusqlite::Transaction<'_>, reservation: i64, users: &[String]) -> Result<(), RecordError> {
    for user in users {
        tx.execute(
            "INSERT OR IGNORE INTO gpu_reservations_users (reservation, user) VALUES (?1, ?2)",
            params![reservation, user],
        )
        .map_err(failed)?;
    }
    Ok(())
}
