//! `/items/gpu_reservations`: the embedded source's GPU bookings in the Directus item-API
//! shape (`{"data": …}`). Admins book, change and cancel; users read the bookings they are
//! among the users of.

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, Body};
use super::items::{blocking, data, object_body};
use super::openapi::CommonErrors;
use crate::records::embedded::ReservationInput;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use llp_spec::ErrorBody;
use llp_spec::reservations::Reservation;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
}

/// `{"data": reservation}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only its documentation is used.
struct ReservationData {
    data: Reservation,
}

/// `{"data": [reservation, …]}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only its documentation is used.
struct ReservationsData {
    data: Vec<Reservation>,
}

/// The id of a reservation.
#[derive(utoipa::IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)] // Only its documentation is used.
struct ReservationId(String);

/// Reads the body as a reservation input, naming the field at fault.
fn input(body: &[u8]) -> Result<ReservationInput, ApiError> {
    object_body(body, "gpus, start, end, deployment, users")
}

/// The bookings the caller is among the users of (every one for admins), by start.
#[utoipa::path(get, path = "/items/gpu_reservations", operation_id = "list_gpu_reservations", tag = "reservations",
    responses((status = 200, description = "The bookings", body = ReservationsData), CommonErrors))]
async fn list(State(state): State<AppState>, Caller(session): Caller) -> Result<Response, ApiError> {
    Ok(data(
        blocking(&state.embedded, move |s| s.reservations(&session.identity)).await?,
    ))
}

/// Book GPUs (admins only: others get 403 `FORBIDDEN`).
#[utoipa::path(post, path = "/items/gpu_reservations", operation_id = "create_gpu_reservation", tag = "reservations", request_body = ReservationInput,
    responses(
        (status = 200, description = "The new booking", body = ReservationData),
        (status = 400, description = "A field is wrong (`field` names it): an unknown slug, an end before the start, an unknown user or deployment", body = ErrorBody),
        CommonErrors
    ))]
async fn create(
    State(state): State<AppState>,
    Caller(session): Caller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let input = input(&body)?;
    Ok(data(
        blocking(&state.embedded, move |s| s.add_reservation(&session.identity, &input)).await?,
    ))
}

/// One booking.
#[utoipa::path(get, path = "/items/gpu_reservations/{id}", operation_id = "read_gpu_reservation", tag = "reservations", params(ReservationId),
    responses((status = 200, description = "The booking", body = ReservationData), CommonErrors))]
async fn read(
    State(state): State<AppState>,
    Caller(session): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(data(
        blocking(&state.embedded, move |s| s.reservation(&session.identity, &id))
            .await
            .map_err(unknown_booking)?,
    ))
}

/// Change a booking (admins only); checked whole after the change.
#[utoipa::path(patch, path = "/items/gpu_reservations/{id}", operation_id = "update_gpu_reservation", tag = "reservations", params(ReservationId), request_body = ReservationInput,
    responses(
        (status = 200, description = "The changed booking", body = ReservationData),
        (status = 400, description = "A field is wrong, or the change would end it before it starts", body = ErrorBody),
        CommonErrors
    ))]
async fn update(
    State(state): State<AppState>,
    Caller(session): Caller,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let input = input(&body)?;
    Ok(data(
        blocking(&state.embedded, move |s| {
            s.update_reservation(&session.identity, &id, &input)
        })
        .await
        .map_err(unknown_booking)?,
    ))
}

/// Cancel a booking (admins only).
#[utoipa::path(delete, path = "/items/gpu_reservations/{id}", operation_id = "delete_gpu_reservation", tag = "reservations", params(ReservationId),
    responses((status = 204, description = "Deleted"), CommonErrors))]
async fn remove(
    State(state): State<AppState>,
    Caller(session): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    blocking(&state.embedded, move |s| s.remove_reservation(&session.identity, &id))
        .await
        .map_err(unknown_booking)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A booking that is unknown or not the caller's: the records' "not found" is about a
/// deployment record.
fn unknown_booking(error: ApiError) -> ApiError {
    match error {
        ApiError::NotFound(_) => ApiError::NotFound("reservation not found".into()),
        other => other,
    }
}
