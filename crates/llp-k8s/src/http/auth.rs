//! Who is calling: the bearer token (or `?access_token=`, the Directus convention), resolved
//! by the record source.

use super::AppState;
use super::error::ApiError;
use crate::records::{Session, Token};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Session);

/// The token a request carries, if any.
pub fn token(parts: &Parts) -> Option<String> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(token) = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Some(token.to_owned());
    }
    parts
        .uri
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("access_token="))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = token(parts).ok_or(ApiError::Unauthorized)?;
        let token = Token::new(token);
        let identity = state.records.authenticate(&token).await?;
        Ok(Caller(Session { identity, token }))
    }
}
