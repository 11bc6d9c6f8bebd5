//! `/items/courses`: the embedded source's courses in the Directus item-API shape. Admins
//! create them; users read the courses they teach or take. A GPU booking naming a course is
//! for its people (SPEC section 10).

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, Body};
use super::items::{blocking, data, object_body};
use super::openapi::CommonErrors;
use crate::records::embedded::{Course, CourseInput};
use axum::extract::State;
use axum::response::Response;
use llp_spec::ErrorBody;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create))
}

/// `{"data": course}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only its documentation is used.
struct CourseData {
    data: Course,
}

/// `{"data": [course, …]}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only its documentation is used.
struct CoursesData {
    data: Vec<Course>,
}

/// The courses the caller teaches or takes (every one for admins).
#[utoipa::path(get, path = "/items/courses", operation_id = "list_courses", tag = "reservations",
    responses((status = 200, description = "The courses", body = CoursesData), CommonErrors))]
async fn list(State(state): State<AppState>, Caller(session): Caller) -> Result<Response, ApiError> {
    Ok(data(
        blocking(&state.embedded, move |s| s.courses(&session.identity)).await?,
    ))
}

/// Create a course with its collaborators and members (admins only: others get 403).
#[utoipa::path(post, path = "/items/courses", operation_id = "create_course", tag = "reservations", request_body = CourseInput,
    responses(
        (status = 200, description = "The new course", body = CourseData),
        (status = 400, description = "A field is wrong (`field` names it): no name, a name in use, an unknown user", body = ErrorBody),
        CommonErrors
    ))]
async fn create(
    State(state): State<AppState>,
    Caller(session): Caller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let input: CourseInput = object_body(&body, "name, collaborators, members")?;
    Ok(data(
        blocking(&state.embedded, move |s| s.add_course(&session.identity, &input)).await?,
    ))
}
