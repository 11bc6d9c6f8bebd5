//! `/kubernetes/usage`: GPU-seconds used (and booked), from what the accountant wrote.

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::openapi::CommonErrors;
use crate::usage::ReportError;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use llp_spec::ErrorBody;
use llp_spec::usage::{By, Row};
use std::collections::HashMap;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The window when `from` is not given: the last 30 days.
const DEFAULT_DAYS: i64 = 30;

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage))
}

/// `?from=&to=&by=`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only its documentation is used.
struct UsageQuery {
    /// Start of the window (RFC 3339, or a date: its midnight UTC); default 30 days before `to`.
    from: Option<String>,
    /// End of the window (exclusive); default now.
    to: Option<String>,
    /// `user` (default), `deployment`, `profile`, `booking` (with `bookedSeconds`; the use no
    /// booking covered has the key `null`) or `course` (the use its bookings covered).
    by: Option<String>,
}

/// GPU-seconds used within a window, by user, deployment, profile, booking or course: an admin's
/// report covers everyone, anyone else's their own. JSON, or CSV with `Accept: text/csv`.
#[utoipa::path(
    get,
    path = "/kubernetes/usage",
    tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "`{\"from\", \"to\", \"by\", \"data\": [{\"key\", \"gpuSeconds\", \"bookedSeconds\", \"wattHours\"}], \"energy\"}` (`energy`: why `wattHours` is missing when the lab's Prometheus could not be read), or CSV", body = Vec<Row>),
        (status = 400, description = "A bad `from`, `to` or `by`", body = ErrorBody),
        CommonErrors
    )
)]
async fn usage(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = Timestamp::now();
    let to = query.get("to").map(|t| time("to", t)).transpose()?.unwrap_or(now);
    let from = match query.get("from") {
        Some(from) => time("from", from)?,
        None => to - SignedDuration::from_hours(24 * DEFAULT_DAYS),
    };
    if from >= to {
        return Err(ApiError::bad_field("from", format!("{from} is not before `to` ({to})")));
    }
    let by_name = query.get("by").map_or("user", String::as_str);
    let by = By::parse(by_name).ok_or_else(|| {
        ApiError::bad_field(
            "by",
            format!("`{by_name}` is not `user`, `deployment`, `profile`, `booking` or `course`"),
        )
    })?;
    let report = crate::usage::report(
        state.records.as_ref(),
        &state.usage,
        (&caller, &state.render.namespace),
        (from, to),
        by,
    )
    .await
    .map_err(|error| match error {
        ReportError::NotKept => ApiError::Unavailable {
            dependency: "the usage store (this record source keeps no GPU usage)",
        },
        ReportError::Records(error) => error.into(),
        ReportError::Timeout => ApiError::Timeout {
            dependency: "the usage store",
        },
    })?;
    let wants_csv = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    if wants_csv {
        return Ok(([(CONTENT_TYPE, "text/csv; charset=utf-8")], csv(by_name, &report.rows)).into_response());
    }
    let mut body = serde_json::json!({"from": from, "to": to, "by": by_name, "data": report.rows});
    if let Some(problem) = report.energy_problem {
        body["energy"] = problem.into();
    }
    Ok(Json(body).into_response())
}

/// A time of the query: RFC 3339, or a date (its midnight UTC).
fn time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    text.parse::<Timestamp>()
        .or_else(|_| {
            text.parse::<jiff::civil::Date>()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
                .map(|z| z.timestamp())
        })
        .map_err(|_| {
            ApiError::bad_field(
                field,
                format!("`{text}` is not a time: give RFC 3339 (2026-12-01T00:00:00Z) or a date (2026-12-01)"),
            )
        })
}

/// The rows as CSV: the key's column is named after `by`.
fn csv(by: &str, rows: &[Row]) -> String {
    let mut out = format!("{by},gpuSeconds,bookedSeconds,wattHours\n");
    for row in rows {
        let key = row.key.as_deref().unwrap_or("");
        // Keys are ids and slugs; quoted all the same, so that no value can break a line.
        let key = format!("\"{}\"", key.replace('"', "\"\""));
        let booked = row.booked_seconds.map(|b| format!("{b:.0}")).unwrap_or_default();
        let energy = row.watt_hours.map(|w| format!("{w:.1}")).unwrap_or_default();
        out.push_str(&format!("{key},{:.0},{booked},{energy}\n", row.gpu_seconds));
    }
    out
}
