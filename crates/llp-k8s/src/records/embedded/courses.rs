//! Courses in the embedded store, as the LLP has them: `courses`, its collaborators through
//! the junction `courses_directus_users` and its members through `courses_directus_users_2`.
//! A GPU booking may name a course (`gpu_reservations.course`): it is then for its people.
//! Admins write; users read the courses they belong to.

use super::{EmbeddedStore, failed};
use crate::records::{Identity, RecordError};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS courses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS courses_directus_users (
    courses_id INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    directus_users_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (courses_id, directus_users_id)
);
CREATE TABLE IF NOT EXISTS courses_directus_users_2 (
    courses_id INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    directus_users_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (courses_id, directus_users_id)
);
";

/// Adds `gpu_reservations.course` to a file made before courses were kept.
pub(super) fn migrate(db: &Connection) -> Result<(), RecordError> {
    let has_course = db
        .query_row(
            "SELECT 1 FROM pragma_table_info('gpu_reservations') WHERE name = 'course'",
            [],
            |_| Ok(()),
        )
        .optional()
        .map_err(failed)?
        .is_some();
    if !has_course {
        db.execute_batch(
            "ALTER TABLE gpu_reservations ADD COLUMN course INTEGER REFERENCES courses(id) ON DELETE SET NULL",
        )
        .map_err(failed)?;
    }
    Ok(())
}

/// A course and its people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Course {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Who teaches it (user ids).
    pub collaborators: Vec<String>,
    /// Who takes it (user ids).
    pub members: Vec<String>,
}

/// A new course.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CourseInput {
    /// Its name (unique).
    pub name: String,
    /// Who teaches it (user ids).
    #[serde(default)]
    pub collaborators: Vec<String>,
    /// Who takes it (user ids).
    #[serde(default)]
    pub members: Vec<String>,
}

/// Which of a course's people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum People {
    /// `courses_directus_users`.
    Collaborators,
    /// `courses_directus_users_2`.
    Members,
}

impl People {
    fn junction(self) -> &'static str {
        match self {
            People::Collaborators => "courses_directus_users",
            People::Members => "courses_directus_users_2",
        }
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> RecordError {
    RecordError::InvalidField {
        field: field.into(),
        message: message.into(),
    }
}

impl EmbeddedStore {
    /// Creates a course (admins only).
    pub fn add_course(&self, caller: &Identity, input: &CourseInput) -> Result<Course, RecordError> {
        super::reservations::admin_only(caller)?;
        let name = input.name.trim();
        if name.is_empty() {
            return Err(invalid("name", "a course needs a name"));
        }
        let mut db = self.db();
        let tx = db.transaction().map_err(failed)?;
        let taken = tx
            .query_row("SELECT 1 FROM courses WHERE name = ?1", [name], |_| Ok(()))
            .optional()
            .map_err(failed)?
            .is_some();
        if taken {
            return Err(invalid("name", format!("a course named `{name}` exists already")));
        }
        tx.execute("INSERT INTO courses (name) VALUES (?1)", [name])
            .map_err(failed)?;
        let id = tx.last_insert_rowid().to_string();
        add(&tx, &id, People::Collaborators, &input.collaborators, "collaborators")?;
        add(&tx, &id, People::Members, &input.members, "members")?;
        let course = one(&tx, &id)?;
        tx.commit().map_err(failed)?;
        Ok(course)
    }

    /// Adds `users` to the `people` of course `id` (admins only).
    pub fn add_to_course(
        &self,
        caller: &Identity,
        id: &str,
        people: People,
        users: &[String],
    ) -> Result<Course, RecordError> {
        super::reservations::admin_only(caller)?;
        let mut db = self.db();
        let tx = db.transaction().map_err(failed)?;
        one(&tx, id)?;
        add(&tx, id, people, users, "users")?;
        let course = one(&tx, id)?;
        tx.commit().map_err(failed)?;
        Ok(course)
    }

    /// The courses the caller may read: every one for admins, else those they belong to.
    pub fn courses(&self, caller: &Identity) -> Result<Vec<Course>, RecordError> {
        let db = self.db();
        let ids: Vec<String> = {
            let mut statement = db.prepare("SELECT id FROM courses ORDER BY id").map_err(failed)?;
            let rows = statement.query_map([], |row| row.get::<_, i64>(0)).map_err(failed)?;
            rows.map(|r| r.map(|id| id.to_string()).map_err(failed))
                .collect::<Result<_, _>>()?
        };
        let mut found = Vec::new();
        for id in ids {
            let course = one(&db, &id)?;
            if caller.admin || course.collaborators.contains(&caller.id) || course.members.contains(&caller.id) {
                found.push(course);
            }
        }
        Ok(found)
    }

    /// The course named or numbered `name_or_id`.
    pub fn find_course(&self, name_or_id: &str) -> Result<Course, RecordError> {
        let db = self.db();
        let id: Option<i64> = db
            .query_row(
                "SELECT id FROM courses WHERE name = ?1 OR CAST(id AS TEXT) = ?1",
                [name_or_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(failed)?;
        let id = id.ok_or_else(|| invalid("course", format!("no course is named or numbered `{name_or_id}`")))?;
        one(&db, &id.to_string())
    }
}

fn add(db: &Connection, id: &str, people: People, users: &[String], field: &str) -> Result<(), RecordError> {
    for (i, user) in users.iter().enumerate() {
        let known = db
            .query_row("SELECT 1 FROM users WHERE id = ?1", [user], |_| Ok(()))
            .optional()
            .map_err(failed)?
            .is_some();
        if !known {
            return Err(invalid(format!("{field}[{i}]"), format!("no user has the id `{user}`")));
        }
        db.execute(
            &format!(
                "INSERT OR IGNORE INTO {} (courses_id, directus_users_id) VALUES (?1, ?2)",
                people.junction()
            ),
            params![id, user],
        )
        .map_err(failed)?;
    }
    Ok(())
}

/// Course `id`, with its people.
fn one(db: &Connection, id: &str) -> Result<Course, RecordError> {
    let name: String = db
        .query_row("SELECT name FROM courses WHERE id = ?1", [id], |row| row.get(0))
        .optional()
        .map_err(failed)?
        .ok_or(RecordError::NotFound)?;
    let people = |people: People| -> Result<Vec<String>, RecordError> {
        let mut statement = db
            .prepare(&format!(
                "SELECT directus_users_id FROM {} WHERE courses_id = ?1 ORDER BY directus_users_id",
                people.junction()
            ))
            .map_err(failed)?;
        let rows = statement.query_map([id], |row| row.get(0)).map_err(failed)?;
        rows.map(|r| r.map_err(failed)).collect()
    };
    Ok(Course {
        id: id.to_owned(),
        name,
        collaborators: people(People::Collaborators)?,
        members: people(People::Members)?,
    })
}
