//! The dashboard's Schedules page: next and last fire, the latest run, and
//! activate/deactivate behind the CSRF token and the same-origin check.

use super::{Browser, ORIGIN, api_with_token};
use crate::backends;
use axum::http::StatusCode;
use bildad_core::JobStore;
use serde_json::json;
use std::sync::Arc;

async fn schedules_page_and_activation(store: Arc<dyn JobStore>) {
    let api = api_with_token(store).await;
    api.post(
        "/jobs/schedules",
        json!({"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Paris",
               "template": "test.echo", "context": {}}),
    )
    .await
    .expect(201);
    let mut b = Browser::new(&api);
    b.sign_in().await;
    let page = b.get("/jobs/dashboard/schedules").await.ok();
    assert!(
        page.contains("nightly") && page.contains("0 3 * * *"),
        "{page}"
    );
    assert!(
        page.contains("Europe/Paris") && page.contains("never"),
        "{page}"
    );
    assert!(
        page.contains("href=\"/jobs/dashboard/schedules\""),
        "nav link: {page}"
    );
    let path = "/jobs/dashboard/schedules/nightly/active";

    let csrf = b.csrf.clone().unwrap();
    let cross = b
        .post_raw(
            path,
            Some("http://evil.example"),
            &[("active", "false"), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(cross.status, 403);
    let no_token = b.post_raw(path, Some(ORIGIN), &[("active", "false")]).await;
    assert_eq!(no_token.status, 403);
    assert_eq!(
        api.get("/jobs/schedules/nightly").await.expect(200)["active"],
        true
    );

    let off = b.post(path, &[("active", "false")]).await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.html);
    assert_eq!(
        api.get("/jobs/schedules/nightly").await.expect(200)["active"],
        false
    );
    let page = b.get(off.location()).await.ok();
    assert!(
        page.contains("Deactivated") && page.contains("paused"),
        "{page}"
    );
    let on = b.post(path, &[("active", "true")]).await;
    assert_eq!(on.status, StatusCode::SEE_OTHER);
    assert_eq!(
        api.get("/jobs/schedules/nightly").await.expect(200)["active"],
        true
    );
    let bad = b.post(path, &[("active", "maybe")]).await;
    assert_eq!(bad.status, 422);
    let unknown = b
        .post(
            "/jobs/dashboard/schedules/none/active",
            &[("active", "true")],
        )
        .await;
    assert_eq!(unknown.status, 404);
}

backends!(schedules_page_and_activation);
