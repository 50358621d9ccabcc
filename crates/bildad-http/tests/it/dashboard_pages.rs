//! The dashboard's pages through the router: every page renders and escapes job data,
//! the queue page filters and pages, the live script's body-only answers, links under a
//! prefix, and the dashboard kept out of the API's route table.

use super::{Browser, EVIL, EVIL_ID, HOST, ORIGIN, TOKEN, api_with_token};
use crate::backends;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use bildad_core::{JobStore, MemoryStore};
use http_body_util::BodyExt;
use serde_json::json;
use std::sync::Arc;
use tower::ServiceExt;

/// Every page renders, and whatever a job carries is shown as text, never as markup.
async fn pages_render_and_escape_job_data(store: Arc<dyn JobStore>) {
    let api = api_with_token(store).await;
    api.post(
        "/jobs/queue",
        json!({"template": "test.echo", "context": {"note": EVIL}, "job_run_identifier": EVIL_ID,
               "trigger_engine": true}),
    )
    .await
    .expect(201);
    api.post(
        "/jobs/queue",
        json!({"template": "test.fail", "context": {"message": EVIL}, "job_run_identifier": "fails",
               "max_retries": 0, "trigger_engine": true}),
    )
    .await
    .expect(201);
    api.wait_for("/jobs/runs?status=DONE", |a| a.body["total"] == 2)
        .await;
    let runs = api.get("/jobs/runs?identifier=fails").await.expect(200);
    let failed_id = runs["items"][0]["id"].as_i64().unwrap();
    let echo = api.get("/jobs/runs?result=SUCCEEDED").await.expect(200);
    let echo_id = echo["items"][0]["id"].as_i64().unwrap();

    let mut b = Browser::new(&api);
    b.sign_in().await;
    let pages = [
        "/jobs/dashboard".to_owned(),
        "/jobs/dashboard/queue".to_owned(),
        "/jobs/dashboard/runs".to_owned(),
        format!("/jobs/dashboard/runs/{echo_id}"),
        format!("/jobs/dashboard/runs/{failed_id}"),
        "/jobs/dashboard/templates".to_owned(),
        "/jobs/dashboard/templates/test.sleep".to_owned(),
    ];
    for path in &pages {
        let p = b.get(path).await;
        assert_eq!(p.status, 200, "{path}: {}", p.html);
        assert!(
            p.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        let csp = p.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(
            !p.html.contains("<script>alert"),
            "{path} renders job data as markup"
        );
        assert!(
            !p.html.contains("<img src=x"),
            "{path} renders an identifier as markup"
        );
    }
    let run = b.get(&format!("/jobs/dashboard/runs/{echo_id}")).await.ok();
    assert!(
        run.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "{run}"
    );
    assert!(run.contains("&lt;img src=x onerror=alert(1)&gt;"), "{run}");
    assert!(run.contains("SUCCEEDED"));
    let failed = b
        .get(&format!("/jobs/dashboard/runs/{failed_id}"))
        .await
        .ok();
    assert!(failed.contains("FAILED"));
    assert!(
        failed.contains("&lt;script&gt;"),
        "the reason is shown, escaped"
    );
    // The overview counts what the store holds.
    let overview = b.get("/jobs/dashboard").await.ok();
    assert!(overview.contains(r#"id="succeeded-hour">1<"#), "{overview}");
    assert!(overview.contains(r#"id="failed-hour">1<"#), "{overview}");
    assert!(
        overview.contains("succeeded (1)") && overview.contains("failed (1)"),
        "{overview}"
    );
    assert!(
        overview.contains(r#"<rect class="succeeded""#)
            && overview.contains(r#"<rect class="failed""#)
    );
    assert!(
        overview.contains("(this node)"),
        "the node's heartbeat is listed"
    );
    assert!(overview.contains("alive"));
    // The runs history filters by result and identifier.
    let only_failed = b.get("/jobs/dashboard/runs?result=FAILED").await.ok();
    assert!(only_failed.contains(r#">fails<"#) && !only_failed.contains("SUCCEEDED</span>"));
    let by_id = b
        .get(&format!(
            "/jobs/dashboard/runs?{}",
            serde_urlencoded::to_string([("identifier", EVIL_ID)]).unwrap()
        ))
        .await
        .ok();
    assert!(
        by_id.contains(&format!("data-run=\"{echo_id}\""))
            && !by_id.contains(&format!("data-run=\"{failed_id}\""))
    );
}

/// The queue lists entries in run order with their place, filters them and pages.
async fn queue_filters_and_pages(store: Arc<dyn JobStore>) {
    let api = api_with_token(store).await;
    for i in 0..12 {
        let template = if i % 3 == 0 {
            "test.echo"
        } else {
            "test.sleep"
        };
        api.post(
            "/jobs/queue",
            json!({"template": template, "context": {"seconds": 1}, "job_run_identifier": format!("q-{i:02}"),
                   "priority": 20 - i, "run_at": "2099-01-01T00:00:00Z"}),
        )
        .await
        .expect(201);
    }
    let mut b = Browser::new(&api);
    b.sign_in().await;
    let all = b.get("/jobs/dashboard/queue?limit=5").await.ok();
    assert_eq!(all.matches("<tr data-identifier=").count(), 5);
    assert!(all.contains("Page 1 of 3"), "{all}");
    // Lowest priority value first: q-11 (priority 9) is next to run.
    let first = all.find("q-11").unwrap();
    assert!(first < all.find("q-10").unwrap());
    assert!(all.contains("SCHEDULED"));
    let last = b.get("/jobs/dashboard/queue?limit=5&page=2").await.ok();
    assert_eq!(last.matches("<tr data-identifier=").count(), 2);
    assert!(last.contains("q-00") && last.contains("q-01"));
    let echo = b.get("/jobs/dashboard/queue?template=test.echo").await.ok();
    assert_eq!(echo.matches("<tr data-identifier=").count(), 4, "{echo}");
    assert!(!echo.contains("q-01"));
    // q-09 is the 3rd entry in run order overall (after q-11 and q-10).
    assert!(
        echo.contains("<td>3</td>"),
        "positions count every available entry: {echo}"
    );
    let running = b.get("/jobs/dashboard/queue?status=RUNNING").await.ok();
    assert!(running.contains("No entry matches these filters"));
}

#[tokio::test]
async fn the_live_script_gets_the_page_body_only() {
    let api = api_with_token(Arc::new(MemoryStore::new())).await;
    let mut b = Browser::new(&api);
    b.sign_in().await;
    let full = b.get("/jobs/dashboard").await.ok();
    assert!(full.contains("<html") && full.contains("/assets/app.js"));
    assert!(
        full.contains("Nothing has run yet"),
        "empty state for a newcomer"
    );
    let req = Request::get("/jobs/dashboard").header("x-bildad-live", "1");
    let live = b.send(req, Body::empty()).await.ok();
    assert!(!live.contains("<html") && !live.contains("<nav>"));
    assert!(live.contains("id=\"overview-counts\" data-live"));
    let js = b.get("/jobs/dashboard/assets/app.js").await.ok();
    assert!(js.contains("X-Bildad-Live") && js.contains("data-live"));
}

#[tokio::test]
async fn nested_under_a_prefix_links_and_cookie_follow_it() {
    let api = api_with_token(Arc::new(MemoryStore::new())).await;
    let app = axum::Router::new().nest("/admin", api.app.clone());
    let req = Request::post("/admin/jobs/dashboard/login")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={TOKEN}")))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/admin/jobs/dashboard");
    let cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("Path=/admin/jobs/dashboard"), "{cookie}");
    let value = cookie.split(';').next().unwrap().to_owned();
    let req = Request::get("/admin/jobs/dashboard/queue")
        .header(header::HOST, HOST)
        .header(header::COOKIE, value)
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let html =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        html.contains("href=\"/admin/jobs/dashboard/templates\""),
        "{html}"
    );
    assert!(html.contains("action=\"/admin/jobs/dashboard/engine\""));
}

#[tokio::test]
async fn the_dashboard_is_not_part_of_the_api_route_table() {
    assert!(
        bildad_http::routes()
            .iter()
            .all(|(_, p)| !p.starts_with(bildad_http::DASHBOARD_PATH))
    );
    assert!(!bildad_http::openapi_json().contains("dashboard"));
    let _ = Method::GET;
}

backends!(pages_render_and_escape_job_data, queue_filters_and_pages);
