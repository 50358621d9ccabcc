//! The interactive OpenAPI viewer (feature `api-viewer`).

use crate::Api;
use axum::body::Body;
use axum::http::{Request, header};
use bildad_core::MemoryStore;
use bildad_http::{ApiConfig, VIEWER_PATH};
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

#[tokio::test]
async fn the_viewer_shows_the_served_document_under_its_own_csp() {
    let api = Api::start(
        Arc::new(MemoryStore::new()),
        ApiConfig::default().with_auth_token("s3cret"),
    )
    .await;
    // A browser sends no bearer token: the page needs none.
    let res = api
        .app
        .clone()
        .oneshot(Request::get(VIEWER_PATH).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    let html =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let doc: serde_json::Value = serde_json::from_str(bildad_http::openapi_json()).unwrap();
    for (path, _) in doc["paths"].as_object().unwrap() {
        assert!(
            html.contains(&format!("\"{path}\"")),
            "{path} is not in the page"
        );
    }
    assert!(
        !bildad_http::routes().iter().any(|(_, p)| *p == VIEWER_PATH),
        "the viewer is not an API route"
    );
}
