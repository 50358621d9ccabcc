//! The HTML dashboard (feature `dashboard`) through the router: the browser-like client
//! its tests share, and access to it: sign-in, sessions, same-origin and CSRF checks,
//! loopback-only without a token. The pages, the forms and actions, the schedules page
//! and the queue filter have their own modules below.

use crate::Api;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use bildad_core::{JobStore, MemoryStore};
use bildad_http::ApiConfig;
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

#[path = "dashboard_pages.rs"]
mod pages;

#[path = "dashboard_actions.rs"]
mod actions;

#[path = "dashboard_schedules.rs"]
mod schedules;

#[path = "dashboard_queue_filter.rs"]
mod queue_filter;

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
