//! The dashboard's forms and operator actions through the router: the enqueue form,
//! stop and remove of a queue entry, and pausing and resuming a queue.

use super::{Browser, EVIL, ORIGIN, api_with_token};
use crate::backends;
use axum::http::StatusCode;
use bildad_core::{JobStore, MemoryStore};
use serde_json::json;
use std::sync::Arc;

/// The enqueue form shows the server's schema errors next to the field, keeps what
/// was typed, and enqueues a valid job (running the engine when asked).
async fn enqueue_form_validates_and_enqueues(store: Arc<dyn JobStore>) {
    let api = api_with_token(store).await;
    let mut b = Browser::new(&api);
    b.sign_in().await;
    let form = b.get("/jobs/dashboard/templates/test.sleep").await.ok();
    assert!(form.contains("Context (JSON)"));
    let bad_json = b
        .post(
            "/jobs/dashboard/templates/test.sleep",
            &[("context", "{not json")],
        )
        .await;
    assert_eq!(bad_json.status, 422);
    assert!(
        bad_json.html.contains("not valid JSON"),
        "{}",
        bad_json.html
    );
    assert!(
        bad_json.html.contains("{not json</textarea>"),
        "the text is kept"
    );
    let typed = format!("{{\"seconds\": \"{EVIL}\"}}");
    let invalid = b
        .post(
            "/jobs/dashboard/templates/test.sleep",
            &[("context", &typed), ("priority", "x")],
        )
        .await;
    assert_eq!(invalid.status, 422);
    assert!(
        invalid.html.contains("/context/seconds"),
        "{}",
        invalid.html
    );
    assert!(invalid.html.contains("/priority"));
    assert!(!invalid.html.contains("<script>alert"));
    assert_eq!(
        api.get("/jobs/queue").await.expect(200)["total"],
        0,
        "nothing written"
    );
    let ok = b
        .post(
            "/jobs/dashboard/templates/test.echo",
            &[
                ("context", r#"{"hello": "world"}"#),
                ("job_run_identifier", "form-1"),
                ("trigger", "1"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.html);
    assert!(
        ok.location()
            .starts_with("/jobs/dashboard/runs?identifier=form-1"),
        "{}",
        ok.location()
    );
    api.wait_for("/jobs/runs?identifier=form-1", |a| {
        a.body["items"][0]["result"] == "SUCCEEDED"
    })
    .await;
    let dup = b
        .post(
            "/jobs/dashboard/templates/test.echo",
            &[("context", "{}"), ("job_run_identifier", "form-1")],
        )
        .await;
    assert_eq!(dup.status, 409, "{}", dup.html);
    let later = b
        .post(
            "/jobs/dashboard/templates/test.echo",
            &[("context", "{}"), ("job_run_identifier", "form-2")],
        )
        .await;
    assert_eq!(later.status, StatusCode::SEE_OTHER);
    assert!(
        later
            .location()
            .starts_with("/jobs/dashboard/queue?notice=enqueued")
    );
    let queue = b.get(later.location()).await.ok();
    assert!(queue.contains("Enqueued <code>form-2</code>"), "{queue}");
    assert!(queue.contains("data-identifier=\"form-2\""));
}

/// Stop and remove go through a confirmation page and a POST, and do what the API does.
async fn stop_and_remove_a_running_entry(store: Arc<dyn JobStore>) {
    let api = api_with_token(store).await;
    api.post(
        "/jobs/queue",
        json!({"template": "test.sleep", "context": {"seconds": 60}, "job_run_identifier": "nap",
               "trigger_engine": true}),
    )
    .await
    .expect(201);
    let mut b = Browser::new(&api);
    b.sign_in().await;
    let queue = b.get("/jobs/dashboard/queue").await.ok();
    assert!(queue.contains("/jobs/dashboard/queue/nap/stop"), "{queue}");
    let confirm = b.get("/jobs/dashboard/queue/nap/stop").await.ok();
    assert!(confirm.contains("Stop this run?"));
    let stopped = b.post("/jobs/dashboard/queue/nap/stop", &[]).await;
    assert_eq!(stopped.status, StatusCode::SEE_OTHER, "{}", stopped.html);
    let entry = api.get("/jobs/queue/nap").await.expect(200);
    assert_eq!(entry["status"], "AVAILABLE");
    let runs = api.get("/jobs/runs?identifier=nap").await.expect(200);
    assert_eq!(runs["items"][0]["reason"], "Stopped");
    // Stopping an entry that is not running is explained, not a crash.
    let again = b.post("/jobs/dashboard/queue/nap/stop", &[]).await;
    assert_eq!(again.status, 409, "{}", again.html);
    assert!(again.html.contains("<h1>409"));
    api.post("/jobs/engine/run", json!({})).await;
    api.wait_for("/jobs/queue/nap", |a| a.body["status"] == "RUNNING")
        .await;
    b.get("/jobs/dashboard/queue/nap/remove").await.ok();
    let removed = b.post("/jobs/dashboard/queue/nap/remove", &[]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    api.get("/jobs/queue/nap").await.expect(404);
    let runs = api.get("/jobs/runs?identifier=nap").await.expect(200);
    assert_eq!(runs["items"][0]["reason"], "Removed");
    let gone = b.get("/jobs/dashboard/queue/nap/remove").await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn the_queues_page_pauses_and_resumes_a_queue_behind_csrf_and_origin() {
    let api = api_with_token(Arc::new(MemoryStore::new())).await;
    let body = serde_json::json!({"template": "test.echo", "context": {}, "queue": "mail"});
    api.post("/jobs/queue", body).await.expect(201);
    let mut b = Browser::new(&api);
    b.sign_in().await;
    let page = b.get("/jobs/dashboard/queues").await;
    assert_eq!(page.status, 200);
    assert!(
        page.html.contains("mail") && page.html.contains("Pause"),
        "{}",
        page.html
    );
    let path = "/jobs/dashboard/queues/mail/pause";
    let foreign = b.post_raw(path, Some("http://evil.example"), &[]).await;
    assert_eq!(foreign.status, 403);
    assert_eq!(
        b.post_raw(path, Some(ORIGIN), &[]).await.status,
        403,
        "no CSRF token"
    );
    assert_eq!(
        api.get("/jobs/queues/mail").await.expect(200)["paused"],
        false
    );
    let paused = b.post(path, &[]).await;
    assert_eq!(paused.status, StatusCode::SEE_OTHER);
    assert_eq!(
        api.get("/jobs/queues/mail").await.expect(200)["paused"],
        true
    );
    let page = b.get("/jobs/dashboard/queues?notice=paused&id=mail").await;
    assert!(page.html.contains("Resume"), "{}", page.html);
    b.post("/jobs/dashboard/queues/mail/resume", &[]).await;
    assert_eq!(
        api.get("/jobs/queues/mail").await.expect(200)["paused"],
        false
    );
    let filtered = b.get("/jobs/dashboard/queue?queue=other").await;
    assert_eq!(filtered.status, 200);
}

backends!(
    enqueue_form_validates_and_enqueues,
    stop_and_remove_a_running_entry,
);
