//! The secret and config routes.

use crate::helpers::app_on;
use axum::http::StatusCode;
use serde_json::json;

crate::on_both_backends! {
async fn the_owner_sets_and_reads_secret_and_config_and_nobody_else_can(backend) {
    let app = app_on(backend).await;
    let id = app.create_record(&app.alice).await;
    for route in ["secret", "config"] {
        let uri = format!("/kubernetes/deployments/{id}/{route}");
        let (status, keys) = app
            .call(
                "PUT",
                &uri,
                &app.alice,
                Some(json!({"API_KEY": "s3cret", "PORT": 8080})),
            )
            .await;
        assert_eq!((status, keys), (StatusCode::OK, json!(["API_KEY", "PORT"])), "{route}");
        let (status, data) = app.call("GET", &uri, &app.alice, None).await;
        assert_eq!(
            (status, data),
            (StatusCode::OK, json!({"API_KEY": "s3cret", "PORT": "8080"})),
            "{route}"
        );
        let yaml = app
            .call("PUT", &uri, &app.alice, Some(json!("API_KEY: rotated\n")))
            .await;
        assert_eq!(yaml.0, StatusCode::OK);
        let (_, data) = app.call("GET", &uri, &app.alice, None).await;
        assert_eq!(
            data,
            json!({"API_KEY": "rotated"}),
            "{route}: a PUT replaces the whole data"
        );

        assert_eq!(
            app.call("GET", &uri, &app.bob, None).await.0,
            StatusCode::NOT_FOUND,
            "{route}"
        );
        assert_eq!(
            app.call("PUT", &uri, &app.bob, Some(json!({"X": "y"}))).await.0,
            StatusCode::NOT_FOUND,
            "{route}"
        );
        let (status, body) = app.call("PUT", &uri, &app.alice, Some(json!({"a/b": "x"}))).await;
        assert_eq!(
            (status, body["errors"][0]["extensions"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("a/b"))
        );
    }
}
}
