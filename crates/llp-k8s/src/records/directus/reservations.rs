//! GPU reservations read from the LLP's `gpu_reservations` collection: a list of profile slugs,
//! a time window, the deployment it is for (optional) and its users through a many-to-many
//! junction. Names are configuration. Read with the caller's token for admission (the LLP
//! decides what they may read). An item the service cannot read (an unknown slug, an end
//! before its start) is left out, with a warning logged once per item.

use super::client::{Failure, LlpApi};
use crate::records::RecordError;
use jiff::Timestamp;
use llp_spec::reservations::Reservation;
use llp_spec::spec::Gpu;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Mutex;

/// Where the LLP keeps GPU reservations, and what its fields are called.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReservationsConfig {
    /// The collection.
    pub collection: String,
    /// List of profile slugs, one per GPU.
    pub gpus_field: String,
    /// Start of the window (inclusive).
    pub start_field: String,
    /// End of the window (exclusive).
    pub end_field: String,
    /// The deployment record it is for (many-to-one, optional).
    pub deployment_field: String,
    /// The many-to-many field of its users.
    pub users_field: String,
    /// The junction's field holding the user id (`gpu_reservations_directus_users.directus_users_id`).
    pub junction_user_field: String,
    /// The course it is for (many-to-one to the LLP's `courses`); empty: the LLP has no
    /// course bookings.
    pub course_field: String,
    /// The course's many-to-many fields of its people: its collaborators (junction
    /// `courses_directus_users`) and members (`courses_directus_users_2`).
    pub course_people_fields: Vec<String>,
    /// The course junctions' field holding the user id.
    pub course_junction_user_field: String,
}

impl Default for ReservationsConfig {
    fn default() -> Self {
        Self {
            collection: "gpu_reservations".into(),
            gpus_field: "gpus".into(),
            start_field: "start".into(),
            end_field: "end".into(),
            deployment_field: "deployment".into(),
            users_field: "users".into(),
            junction_user_field: "directus_users_id".into(),
            course_field: "course".into(),
            course_people_fields: vec!["collaborators".into(), "members".into()],
            course_junction_user_field: "directus_users_id".into(),
        }
    }
}

impl ReservationsConfig {
    /// The names that go into URLs: plain ones only.
    pub fn names(&self) -> Vec<&str> {
        let mut names = vec![
            self.collection.as_str(),
            &self.gpus_field,
            &self.start_field,
            &self.end_field,
            &self.deployment_field,
            &self.users_field,
            &self.junction_user_field,
        ];
        if !self.course_field.is_empty() {
            names.push(&self.course_field);
            names.extend(self.course_people_fields.iter().map(String::as_str));
            names.push(&self.course_junction_user_field);
        }
        names
    }

    /// The paths of the course's people's user ids (`course.members.directus_users_id`).
    fn course_people(&self) -> Vec<String> {
        if self.course_field.is_empty() {
            return Vec::new();
        }
        self.course_people_fields
            .iter()
            .map(|people| format!("{}.{people}.{}", self.course_field, self.course_junction_user_field))
            .collect()
    }
}

/// Reads reservations; remembers which unreadable items it has warned about.
pub(super) struct ReservationReads {
    pub(super) config: ReservationsConfig,
    warned: Mutex<HashSet<String>>,
}

impl ReservationReads {
    pub(super) fn new(config: ReservationsConfig) -> Self {
        Self {
            config,
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// The path of the read: bookings not ended at `now`; with `owner`, only those naming one
    /// of `deployments` or among whose users `owner` is.
    fn path(&self, owner: Option<&str>, deployments: &[String], now: Timestamp) -> String {
        let c = &self.config;
        let open = json!({ &c.end_field: { "_gt": now.to_string() } });
        let filter = match owner {
            Some(owner) => {
                let mut either = vec![json!({ &c.users_field: { &c.junction_user_field: { "_eq": owner } } })];
                // A course's booking is its people's.
                for people in &c.course_people_fields {
                    if !c.course_field.is_empty() {
                        either.push(
                            json!({ &c.course_field: { people: { &c.course_junction_user_field: { "_eq": owner } } } }),
                        );
                    }
                }
                if !deployments.is_empty() {
                    either.push(json!({ &c.deployment_field: { "_in": deployments } }));
                }
                json!({"_and": [open, { "_or": either }]})
            }
            None => open,
        };
        self.path_of(&filter)
    }

    /// The path of a read of the bookings `filter` selects.
    fn path_of(&self, filter: &Value) -> String {
        let c = &self.config;
        let mut fields = format!(
            "id,{},{},{},{},{}.{}",
            c.gpus_field, c.start_field, c.end_field, c.deployment_field, c.users_field, c.junction_user_field
        );
        if !c.course_field.is_empty() {
            fields.push_str(&format!(",{}.id", c.course_field));
            for people in self.config.course_people() {
                fields.push(',');
                fields.push_str(&people);
            }
        }
        let mut url = reqwest::Url::parse("http://llp/").expect("a constant URL");
        url.set_path(&format!("/items/{}", c.collection));
        url.query_pairs_mut()
            .append_pair("filter", &filter.to_string())
            .append_pair("fields", &fields)
            .append_pair("limit", "-1");
        format!("{}?{}", url.path(), url.query().unwrap_or_default())
    }

    /// The bookings that overlap `[from, to)` and `token` may read.
    pub(super) async fn read_between(
        &self,
        api: &LlpApi,
        token: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reservation>, RecordError> {
        let c = &self.config;
        let filter = json!({"_and": [
            { &c.end_field: { "_gt": from.to_string() } },
            { &c.start_field: { "_lt": to.to_string() } },
        ]});
        self.fetch(api, token, &self.path_of(&filter)).await
    }

    /// The bookings not ended at `now` that `token` may read; with `owner`, only those that
    /// may cover `deployments` of `owner`.
    pub(super) async fn read(
        &self,
        api: &LlpApi,
        token: &str,
        owner: Option<&str>,
        deployments: &[String],
        now: Timestamp,
    ) -> Result<Vec<Reservation>, RecordError> {
        self.fetch(api, token, &self.path(owner, deployments, now)).await
    }

    /// The bookings of a read of `path`.
    async fn fetch(&self, api: &LlpApi, token: &str, path: &str) -> Result<Vec<Reservation>, RecordError> {
        let items: Vec<Value> = api.get("items", path, token).await.map_err(|failure| match failure {
            Failure::Status(reqwest::StatusCode::FORBIDDEN, message) => RecordError::Forbidden(format!(
                "the LLP API does not let you read GPU reservations ({message}); ask an admin for read access to {}",
                self.config.collection
            )),
            other => other.into_error("/items (reservations)"),
        })?;
        Ok(items.iter().filter_map(|item| self.parse_or_warn(item)).collect())
    }

    fn parse_or_warn(&self, item: &Value) -> Option<Reservation> {
        match parse(&self.config, item) {
            Ok(reservation) => Some(reservation),
            Err(problem) => {
                let id = plain_text(&item["id"]).unwrap_or_default();
                let first = self
                    .warned
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id.clone());
                if first {
                    tracing::warn!(reservation = %id, %problem, "ignoring a GPU reservation the service cannot read");
                }
                None
            }
        }
    }
}

/// A text or number as text (ids are either).
fn plain_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One item of the collection, or what is wrong with it.
fn parse(config: &ReservationsConfig, item: &Value) -> Result<Reservation, String> {
    let id = plain_text(&item["id"]).ok_or("it has no id")?;
    // A JSON list of slugs, or a comma-separated text (Directus's CSV field type).
    let slugs: Vec<String> = match &item[&config.gpus_field] {
        Value::Array(list) => list.iter().map(|s| s.as_str().unwrap_or_default().to_owned()).collect(),
        Value::String(text) => text.split(',').map(|s| s.trim().to_owned()).collect(),
        other => return Err(format!("`{}` is {other}, not a list of GPU slugs", config.gpus_field)),
    };
    let gpus = slugs
        .iter()
        .map(|slug| Gpu::from_slug(slug).ok_or_else(|| format!("`{slug}` is not a GPU profile")))
        .collect::<Result<Vec<_>, _>>()?;
    if gpus.is_empty() {
        return Err("it books no GPU".into());
    }
    let time = |field: &str| -> Result<Timestamp, String> {
        let text = item[field].as_str().ok_or_else(|| format!("`{field}` is missing"))?;
        parse_time(text).ok_or_else(|| format!("`{field}` = `{text}` is not a time"))
    };
    let (start, end) = (time(&config.start_field)?, time(&config.end_field)?);
    if end <= start {
        return Err(format!("it ends ({end}) before it starts ({start})"));
    }
    let deployment = match &item[&config.deployment_field] {
        Value::Object(related) => plain_text(&related["id"]),
        other => plain_text(other),
    };
    let users = item[&config.users_field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| match &j[&config.junction_user_field] {
            Value::Object(user) => plain_text(&user["id"]),
            other => plain_text(other),
        })
        .collect();
    let mut booking = Reservation {
        id,
        gpus,
        start,
        end,
        deployment,
        users,
        course: None,
    };
    if !config.course_field.is_empty() {
        let course = &item[&config.course_field];
        booking.course = match course {
            Value::Object(related) => plain_text(&related["id"]),
            other => plain_text(other),
        };
        // Everyone it counts for: its users and the course's people.
        for people in &config.course_people_fields {
            for junction in course[people].as_array().into_iter().flatten() {
                let person = match &junction[&config.course_junction_user_field] {
                    Value::Object(user) => plain_text(&user["id"]),
                    other => plain_text(other),
                };
                if let Some(person) = person.filter(|p| !booking.users.contains(p)) {
                    booking.users.push(person);
                }
            }
        }
    }
    Ok(booking)
}

/// Directus answers `timestamp` fields in RFC 3339 and `dateTime` fields without a zone
/// (`2026-11-27T10:00:00`), which the LLP's server keeps in UTC.
fn parse_time(text: &str) -> Option<Timestamp> {
    text.parse::<Timestamp>().ok().or_else(|| {
        text.parse::<jiff::civil::DateTime>()
            .ok()
            .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_in_the_llps_shape_is_read() {
        let item = json!({"id": 7, "gpus": ["gpu-xs", "gpu-xs"], "start": "2026-11-27T10:00:00Z",
            "end": "2026-11-27T18:00:00", "deployment": {"id": "d1"}, "users": [{"directus_users_id": "u1"}]});
        let r = parse(&ReservationsConfig::default(), &item).unwrap();
        assert_eq!(
            (r.id.as_str(), r.gpus.len(), r.deployment.as_deref()),
            ("7", 2, Some("d1"))
        );
        assert_eq!(r.users, ["u1"]);
        assert_eq!(r.end.to_string(), "2026-11-27T18:00:00Z", "a time without zone is UTC");
    }

    #[test]
    fn an_unreadable_item_says_why() {
        let config = ReservationsConfig::default();
        let bad = |item: Value| parse(&config, &item).unwrap_err();
        let base = json!({"id": 1, "gpus": ["gpu-xs"], "start": "2026-11-27T10:00:00Z", "end": "2026-11-27T18:00:00Z"});
        let with = |key: &str, value: Value| {
            let mut item = base.clone();
            item[key] = value;
            item
        };
        assert!(bad(with("gpus", json!(["gpu-xl"]))).contains("gpu-xl"));
        assert!(bad(with("end", json!("2026-11-27T09:00:00Z"))).contains("before it starts"));
        assert!(bad(with("start", json!("tomorrow"))).contains("not a time"));
        assert!(
            parse(&config, &with("gpus", json!("gpu-xs, gpu-s"))).is_ok(),
            "a CSV field"
        );
    }

    #[test]
    fn the_read_asks_for_open_bookings_of_the_owner_or_the_deployments() {
        let reads = ReservationReads::new(ReservationsConfig::default());
        let path = reads.path(Some("u1"), &["d1".into()], "2026-11-27T12:00:00Z".parse().unwrap());
        let query: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x{path}"))
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        assert!(path.starts_with("/items/gpu_reservations?"));
        let filter: Value = serde_json::from_str(&query[0].1).unwrap();
        assert_eq!(filter["_and"][0], json!({"end": {"_gt": "2026-11-27T12:00:00Z"}}));
        assert_eq!(filter["_and"][1]["_or"][3], json!({"deployment": {"_in": ["d1"]}}));
        assert_eq!(
            filter["_and"][1]["_or"][2],
            json!({"course": {"members": {"directus_users_id": {"_eq": "u1"}}}}),
            "a course's booking is its people's"
        );
        assert_eq!(
            query[1].1,
            "id,gpus,start,end,deployment,users.directus_users_id,course.id,course.collaborators.directus_users_id,course.members.directus_users_id"
        );
    }
}
