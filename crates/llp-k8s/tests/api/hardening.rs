//! Hostile and careless clients (issue 14): what they send never costs the service more than it
//! should.

use crate::helpers::app;

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = app();
    for i in 0..50 {
        app.raw(&format!("BREW{i}"), "/healthz", "").await;
    }
    let (_, text) = app.raw("GET", "/metrics", "").await;
    let methods: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("llp_k8s_http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(methods, ["other"].into(), "{text}");
}
