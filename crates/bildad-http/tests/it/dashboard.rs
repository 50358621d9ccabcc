//! The HTML dashboard (feature `dashboard`) through the router: sign-in, same-origin
//! and CSRF checks, loopback-only without a token, rendering, escaping, filters,
//! pagination, the enqueue form and the operator actions, on every backend.

use crate::{Api, backends};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use bildad_core::{JobStore, MemoryStore};
use bildad_http::ApiConfig;
use http_body_util::BodyExt;
use serde_json::json;
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "dash-s3cret";
const HOST: &str = "127.0.0.1:4000";
const ORIGIN: &str = "http://127.0.0.1:4000";
/// A context and an identifier that would run script if rendered unescaped.
const EVIL: &str = "<script>alert('x')</script>";
const EVIL_ID: &str = "<img src=x onerror=alert(1)>";

/// An HTML answer.
#[derive(Debug)]
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    #[track_caller]
    fn ok(self) -> String {
        assert_eq!(self.status, StatusCode::OK, "{}", self.html);
        self.html
    }

    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// A browser-like client of the dashboard: it sends `Host`, keeps the cookie, and
/// posts forms with `Origin` and the CSRF token of the last page it saw.
struct Browser<'a> {
    api: &'a Api,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(api: &'a Api) -> Self {
        Self {
            api,
            cookie: None,
            csrf: None,
        }
    }

    async fn send(&mut self, req: axum::http::request::Builder, body: Body) -> Page {
        let mut req = req.header(header::HOST, HOST);
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, format!("bildad_dashboard={c}"));
        }
        let res = self
            .api
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let html = String::from_utf8(bytes.to_vec()).unwrap();
        if let Some(t) = html
            .split("name=\"_csrf\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        {
            self.csrf = Some(t.to_owned());
        }
        Page {
            status,
            headers,
            html,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Request::get(path), Body::empty()).await
    }

    /// Posts `fields` (plus the CSRF token) from a page of the same origin.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone().unwrap_or_default();
        all.push(("_csrf", &csrf));
        self.post_raw(path, Some(ORIGIN), &all).await
    }

    async fn post_raw(
        &mut self,
        path: &str,
        origin: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Page {
        let mut req =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(req, Body::from(body)).await
    }

    async fn sign_in(&mut self) {
        let p = self
            .post_raw("/jobs/dashboard/login", Some(ORIGIN), &[("token", TOKEN)])
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.html);
        let cookie = p.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
        let value = cookie
            .strip_prefix("bildad_dashboard=")
            .and_then(|r| r.split(';').next())
            .unwrap();
        self.cookie = Some(value.to_owned());
        // Pick up the CSRF token.
        self.get("/jobs/dashboard").await.ok();
    }
}

async fn api_with_token(store: Arc<dyn JobStore>) -> Api {
    let api = Api::start(store, ApiConfig::default().with_auth_token(TOKEN)).await;
    api.templates().await;
    api
}

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

backends!(
    pages_render_and_escape_job_data,
    queue_filters_and_pages,
    enqueue_form_validates_and_enqueues,
    stop_and_remove_a_running_entry,
);

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_that_is_not_the_token() {
    let api = api_with_token(Arc::new(MemoryStore::new())).await;
    let mut b = Browser::new(&api);
    let out = b.get("/jobs/dashboard/runs?result=FAILED").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        out.location(),
        "/jobs/dashboard/login?next=runs%3Fresult%3DFAILED"
    );
    let login = b.get(out.location()).await.ok();
    assert!(login.contains("type=\"password\""));
    assert!(
        !login.contains("_csrf"),
        "no CSRF token leaks to a signed-out visitor"
    );
    let wrong = b
        .post_raw("/jobs/dashboard/login", Some(ORIGIN), &[("token", "nope")])
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    let cross = b
        .post_raw(
            "/jobs/dashboard/login",
            Some("http://evil.example"),
            &[("token", TOKEN)],
        )
        .await;
    assert_eq!(cross.status, 403);
    let ok = b
        .post_raw(
            "/jobs/dashboard/login",
            Some(ORIGIN),
            &[("token", TOKEN), ("next", "runs?result=FAILED")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), "/jobs/dashboard/runs?result=FAILED");
    let cookie = ok.headers[header::SET_COOKIE].to_str().unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/jobs/dashboard"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains(TOKEN), "{cookie}");
    b.sign_in().await;
    b.get("/jobs/dashboard/runs").await.ok();
    // A forged cookie, or the token itself as cookie, is not a session.
    for forged in [TOKEN.to_owned(), "0".repeat(64)] {
        let mut other = Browser::new(&api);
        other.cookie = Some(forged);
        assert_eq!(
            other.get("/jobs/dashboard").await.status,
            StatusCode::SEE_OTHER
        );
    }
    // The cookie does not open the API: it still needs the bearer token.
    let req = Request::get("/jobs/queue")
        .header(
            header::COOKIE,
            format!("bildad_dashboard={}", b.cookie.clone().unwrap()),
        )
        .body(Body::empty())
        .unwrap();
    api.send(req).await.expect(401);
    // Signing out clears the cookie.
    let out = b.post("/jobs/dashboard/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // The assets are served without a session.
    let mut anon = Browser::new(&api);
    assert_eq!(anon.get("/jobs/dashboard/assets/app.js").await.status, 200);
}

#[tokio::test]
async fn actions_refuse_cross_site_requests_and_missing_csrf_tokens() {
    let api = api_with_token(Arc::new(MemoryStore::new())).await;
    let mut b = Browser::new(&api);
    b.sign_in().await;
    let csrf = b.csrf.clone().unwrap();
    let path = "/jobs/dashboard/templates/test.echo";
    let fields = [("context", "{}"), ("_csrf", csrf.as_str())];
    for origin in [Some("http://evil.example"), Some("null"), None] {
        let p = b.post_raw(path, origin, &fields).await;
        assert_eq!(p.status, 403, "Origin {origin:?}");
    }
    let no_token = b.post_raw(path, Some(ORIGIN), &[("context", "{}")]).await;
    assert_eq!(no_token.status, 403);
    let bad_token = b
        .post_raw(path, Some(ORIGIN), &[("context", "{}"), ("_csrf", "x")])
        .await;
    assert_eq!(bad_token.status, 403);
    assert_eq!(api.get("/jobs/queue").await.expect(200)["total"], 0);
    let engine = b
        .post_raw(
            "/jobs/dashboard/engine",
            Some(ORIGIN),
            &[("_csrf", &csrf), ("back", "//evil.example")],
        )
        .await;
    assert_eq!(engine.status, StatusCode::SEE_OTHER);
    assert!(
        engine
            .location()
            .starts_with("/jobs/dashboard?notice=engine"),
        "{}",
        engine.location()
    );
    // A signed-out POST is refused even with the right CSRF token.
    let mut anon = Browser::new(&api);
    let p = anon.post_raw(path, Some(ORIGIN), &fields).await;
    assert_eq!(p.status, 401);
}

#[tokio::test]
async fn without_a_token_only_a_loopback_host_is_served() {
    let api = Api::start(Arc::new(MemoryStore::new()), ApiConfig::default()).await;
    for (host, status) in [
        ("127.0.0.1:4000", 200),
        ("localhost:4000", 200),
        ("[::1]:4000", 200),
        ("evil.example:4000", 403),
        ("192.168.1.20:4000", 403),
    ] {
        let req = Request::get("/jobs/dashboard")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap();
        let res = api.app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), status, "{host}");
    }
    // No sign-in page without a token.
    let mut b = Browser::new(&api);
    assert_eq!(
        b.get("/jobs/dashboard/login").await.status,
        StatusCode::SEE_OTHER
    );
    // A fresh node shows the newcomer what to do first.
    let empty = b.get("/jobs/dashboard").await.ok();
    assert!(empty.contains("No templates yet"), "{empty}");
    assert!(!empty.contains("Sign out"));
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

#[tokio::test]
async fn signing_out_revokes_the_cookie_which_lasts_twelve_hours() {
    let api = api_with_token(Arc::new(MemoryStore::new())).await;
    let mut b = Browser::new(&api);
    let login = b
        .post_raw("/jobs/dashboard/login", Some(ORIGIN), &[("token", TOKEN)])
        .await;
    let set = login.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.contains("Max-Age=43200"), "{set}");
    b.sign_in().await;
    let old = b.cookie.clone().unwrap();
    assert_eq!(b.get("/jobs/dashboard").await.status, 200);
    // A second browser signed in later keeps its session.
    let mut later = Browser::new(&api);
    later.sign_in().await;
    let out = b.post("/jobs/dashboard/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    // The old cookie, replayed, is no session any more.
    let mut replay = Browser::new(&api);
    replay.cookie = Some(old);
    assert_eq!(
        replay.get("/jobs/dashboard").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(later.get("/jobs/dashboard").await.status, 200);
}

#[path = "dashboard_schedules.rs"]
mod schedules;

#[path = "dashboard_queue_filter.rs"]
mod queue_filter;

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
