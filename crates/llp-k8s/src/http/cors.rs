//! CORS: the LLP frontend calls `/kubernetes/…` from the browser on the LLP API's host, as it
//! called the Directus extension there, so the service must answer preflights as Directus does.

use axum::http::{HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// A CORS layer allowing `origins` (exact `scheme://host[:port]`, or `*` for any), or `None`
/// when there are none (same-origin callers and scripts need no CORS).
pub fn layer(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| HeaderValue::from_str(o).map_err(|_| format!("cors_origins: `{o}` is not a valid origin")))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(3600)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn preflight(origins: &[&str], from: &str) -> Option<String> {
        let origins: Vec<String> = origins.iter().map(|o| (*o).to_owned()).collect();
        let app = axum::Router::new()
            .route("/kubernetes/deployments/{id}", axum::routing::put(|| async { "ok" }))
            .layer(layer(&origins).unwrap().unwrap());
        let request = Request::builder()
            .method("OPTIONS")
            .uri("/kubernetes/deployments/1")
            .header("origin", from)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "authorization")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn only_the_configured_origins_may_call_from_a_browser() {
        let llp = "https://llp.example.org";
        assert_eq!(preflight(&[llp], llp).await.as_deref(), Some(llp));
        assert_eq!(preflight(&[llp], "https://evil.example.com").await, None);
        assert_eq!(preflight(&["*"], "https://any.example.com").await.as_deref(), Some("*"));
    }

    #[test]
    fn no_origins_means_no_cors_and_a_bad_origin_is_named() {
        assert!(layer(&[]).unwrap().is_none());
        let error = layer(&["https://ok.example.org".into(), "bad\norigin".into()]).unwrap_err();
        assert!(error.contains("bad"), "{error}");
    }
}
