//! The dashboard's Schedules page: next and last fire, the runs of the recent fires,
//! and activate/deactivate behind the CSRF token and the same-origin check.

use super::{Browser, ORIGIN, api_with_token};
use crate::backends;
use axum::http::Method;
use axum::http::StatusCode;
use bildad_core::JobStore;
use bildad_core::firing::fire_identifier;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// A per-second schedule fired about ten times, every fire's job ran: the page shows the
/// runs of the five newest fires (each a link to its run, with its result), and not the
/// older ones.
async fn schedules_page_shows_the_recent_fires_runs(store: Arc<dyn JobStore>) {
    let api = api_with_token(store.clone()).await;
    api.post(
        "/jobs/schedules",
        json!({"name": "tick", "cron": "* * * * * *", "timezone": "UTC",
               "template": "test.echo", "context": {}}),
    )
    .await
    .expect(201);
    // Ten seconds of fires at once: within the grace period, so every one is enqueued,
    // by this evaluation or the node's scheduler, whichever comes first.
    let now = store.now().await.unwrap();
    store
        .rewind_schedule("tick", now - chrono::TimeDelta::seconds(10))
        .await
        .unwrap();
    store
        .evaluate_schedules(bildad_core::EvaluateSchedules::default())
        .await
        .unwrap();
    api.call(
        Method::PATCH,
        "/jobs/schedules/tick",
        Some(json!({"active": false})),
    )
    .await
    .expect(200);
    // Every fire's job runs to its end.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        api.post("/jobs/engine/run", json!({})).await.expect(200);
        let stats = store.stats().await.unwrap();
        if stats.available + stats.scheduled + stats.running == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "fires still queued: {stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = api.get("/jobs/schedules/tick").await.expect(200);
    let last: bildad_core::Timestamp = serde_json::from_value(s["last_fire_at"].clone()).unwrap();
    let run_of = |k: i64| {
        let id = fire_identifier("tick", last - chrono::TimeDelta::seconds(k));
        let api = &api;
        async move {
            let runs = api
                .get(&format!("/jobs/runs?identifier={id}"))
                .await
                .expect(200);
            assert_eq!(runs["total"], 1, "fire {id} ran once: {runs}");
            assert_eq!(runs["items"][0]["result"], "SUCCEEDED", "{runs}");
            runs["items"][0]["id"].as_i64().unwrap()
        }
    };
    let mut b = Browser::new(&api);
    b.sign_in().await;
    let page = b.get("/jobs/dashboard/schedules").await.ok();
    assert!(page.contains("Recent runs"), "{page}");
    for k in 0..5 {
        let run = run_of(k).await;
        assert!(
            page.contains(&format!("href=\"/jobs/dashboard/runs/{run}\"")),
            "the run of fire -{k}s is linked: {page}"
        );
    }
    for k in 5..8 {
        let run = run_of(k).await;
        assert!(
            !page.contains(&format!("href=\"/jobs/dashboard/runs/{run}\"")),
            "only the five newest fires are shown; fire -{k}s is not: {page}"
        );
    }
    assert_eq!(page.matches("badge ok\">SUCCEEDED").count(), 5, "{page}");
}

backends!(
    schedules_page_and_activation,
    schedules_page_shows_the_recent_fires_runs
);
