//! Who may see the dashboard, and which requests may change something.
//!
//! - With a token configured, the sign-in page takes it once and sets an `HttpOnly`,
//!   `SameSite=Strict` cookie signed with the token and its issue time (never the token
//!   itself; see [`super::session`]): it lasts 12 hours, signing out revokes it, and
//!   changing the token signs everybody out.
//! - Without a token, pages answer only to a loopback `Host` (`localhost`, `127.0.0.1`,
//!   `[::1]`), so a web page that rebinds its own name to 127.0.0.1 cannot read them.
//! - Every `POST` must come from the same origin (`Origin`, else `Referer`, equal to
//!   `Host`) and, once signed in, carry the form's CSRF token.

use super::layout;
use super::session::{LIFETIME, Sessions, now_ms};
use super::{Dash, DashError, PREFIX};
use crate::origin::{host_is_loopback, same_origin};
use axum::body::Bytes;
use axum::extract::{Extension, OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use maud::html;
use sha2::Sha256;
use subtle::ConstantTimeEq;

const COOKIE: &str = "bildad_dashboard";

/// Secrets derived once per router.
pub(crate) struct Keys {
    /// The configured token, when there is one.
    token: Option<String>,
    /// Issues and checks the sign-in cookies (when there is a token).
    sessions: Option<Sessions>,
    /// The CSRF token put in every form. Derived from the token, so that every node
    /// behind a load balancer accepts it; random per process when there is no token.
    csrf: String,
}

/// HMAC-SHA256 of `purpose` under `key`, in hex.
pub(super) fn hmac_hex(key: &[u8], purpose: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ct_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Keys {
    pub(crate) fn new(token: Option<&str>) -> Self {
        match token {
            Some(t) => Self {
                token: Some(t.to_owned()),
                sessions: Some(Sessions::new(t)),
                csrf: hmac_hex(t.as_bytes(), "bildad-dashboard-csrf-v1"),
            },
            None => {
                let random = format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
                Self {
                    token: None,
                    sessions: None,
                    csrf: hmac_hex(random.as_bytes(), "bildad-dashboard-csrf-v1"),
                }
            }
        }
    }

    fn signed_in(&self, headers: &HeaderMap) -> bool {
        match &self.sessions {
            None => true,
            Some(s) => cookie(headers, COOKIE).is_some_and(|v| s.check(&v, now_ms()).is_some()),
        }
    }
}

/// What every dashboard handler knows about its request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The dashboard's path as the browser sees it (`/admin/jobs/dashboard` when the
    /// router is nested under `/admin`).
    pub(crate) base: String,
    /// The CSRF token for forms.
    pub(crate) csrf: String,
    /// A token is configured (so there is a sign-out button).
    pub(crate) auth: bool,
    /// The live script asks for the page body only.
    pub(crate) live: bool,
    /// The request path relative to `base` (`""`, `"queue"`, …), for the nav.
    pub(crate) here: String,
}

/// A posted form, its CSRF token checked.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// The last non-empty value of `key`, trimmed.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The last value of `key` exactly as sent (may be empty).
    pub(crate) fn raw(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Ctx {
    /// Parses an `application/x-www-form-urlencoded` body and checks its `_csrf`.
    pub(crate) fn read_form(&self, body: &Bytes) -> Result<Form, DashError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
            DashError::new(
                StatusCode::BAD_REQUEST,
                format!("unreadable form: {e}"),
                &self.base,
            )
        })?;
        let form = Form(pairs);
        match form.raw("_csrf") {
            Some(t) if ct_eq(t, &self.csrf) => Ok(form),
            _ => Err(DashError::new(
                StatusCode::FORBIDDEN,
                "this form has expired or did not come from the dashboard; reload the page and try again",
                &self.base,
            )),
        }
    }

    /// The URL of dashboard page `rel` (`""` = overview) with `query` (may be empty).
    pub(crate) fn page_url(&self, rel: &str, query: &str) -> String {
        let mut url = self.base.clone();
        if !rel.is_empty() {
            url.push('/');
            url.push_str(rel);
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// The path the router is mounted under (`/admin` when nested there; empty otherwise).
fn mount_prefix(req: &Request) -> String {
    let inner = req.uri().path();
    req.extensions()
        .get::<OriginalUri>()
        .and_then(|o| o.path().strip_suffix(inner).map(str::to_owned))
        .unwrap_or_default()
}

/// Checks every dashboard request, then hands the handler its [`Ctx`].
pub(crate) async fn guard(State(d): State<Dash>, mut req: Request, next: Next) -> Response {
    let base = format!("{}{PREFIX}", mount_prefix(&req));
    let keys = &d.keys;
    if keys.token.is_none() && !host_is_loopback(req.headers()) {
        return DashError::new(
            StatusCode::FORBIDDEN,
            "without an auth token the dashboard answers on a loopback address only \
             (open it as http://127.0.0.1:PORT or http://localhost:PORT), or start the \
             server with --auth-token",
            &base,
        )
        .into_response();
    }
    if req.method() == Method::POST && !same_origin(req.headers()) {
        return DashError::new(
            StatusCode::FORBIDDEN,
            "cross-site request refused: dashboard actions must come from the dashboard's own pages",
            &base,
        )
        .into_response();
    }
    let rel = req
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned();
    let open = rel == "login" || rel.starts_with("assets/");
    if !open && !keys.signed_in(req.headers()) {
        if req.method() == Method::GET {
            let next_rel = match req.uri().query() {
                Some(q) => format!("{rel}?{q}"),
                None => rel.clone(),
            };
            let q = layout::query(&[("next", &next_rel)]);
            let to = if q.is_empty() {
                format!("{base}/login")
            } else {
                format!("{base}/login?{q}")
            };
            return Redirect::to(&to).into_response();
        }
        return DashError::new(
            StatusCode::UNAUTHORIZED,
            "sign in first: your session has ended",
            &base,
        )
        .into_response();
    }
    let live = req
        .headers()
        .get("x-bildad-live")
        .is_some_and(|v| v.as_bytes() == b"1");
    let here = rel.split('/').next().unwrap_or_default().to_owned();
    req.extensions_mut().insert(Ctx {
        base,
        csrf: keys.csrf.clone(),
        auth: keys.token.is_some(),
        live,
        here,
    });
    next.run(req).await
}

/// A `next` parameter that stays inside the dashboard.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if !n.contains("//")
                && !n.contains('\\')
                && !n.starts_with('/')
                && n.chars().all(|c| !c.is_control()) =>
        {
            n.to_owned()
        }
        _ => String::new(),
    }
}

/// `GET /jobs/dashboard/login`.
pub(crate) async fn login_page(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    axum::extract::Query(q): axum::extract::Query<Vec<(String, String)>>,
) -> Response {
    let next = q
        .iter()
        .rev()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.as_str());
    if d.keys.token.is_none() {
        return Redirect::to(&ctx.base).into_response();
    }
    login_form(&ctx, &safe_next(next), None, StatusCode::OK)
}

fn login_form(ctx: &Ctx, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        section.signin {
            h1 { "Sign in to Bildad" }
            p { "Paste the node's auth token (the value of " code { "--auth-token" } " or "
                code { "BILDAD_AUTH_TOKEN" } "). The dashboard keeps a cookie, so you do this once per browser." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action={ (ctx.base) "/login" } {
                input type="hidden" name="next" value=(next);
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        }
    };
    (status, layout::bare(ctx, "Sign in", body)).into_response()
}

/// `POST /jobs/dashboard/login`: checks the token in constant time and sets the
/// session cookie.
pub(crate) async fn login(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = &d.keys.token else {
        return Redirect::to(&ctx.base).into_response();
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |k: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let next = safe_next(field("next"));
    let given = field("token").unwrap_or_default().trim();
    if given.is_empty() || !ct_eq(given, token) {
        tracing::warn!("dashboard sign-in with a wrong token");
        return login_form(
            &ctx,
            &next,
            Some("That token is not right. Check for spaces and try again."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let session = d
        .keys
        .sessions
        .as_ref()
        .map(|s| s.issue(now_ms()))
        .unwrap_or_default();
    let mut res = Redirect::to(&ctx.page_url(&next, "")).into_response();
    let max_age = u32::try_from(LIFETIME.as_secs()).unwrap_or(u32::MAX);
    res.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&ctx.base, &session, secure(&headers), Some(max_age)),
    );
    res
}

/// `POST /jobs/dashboard/logout`: revokes the cookie on this node and clears it.
pub(crate) async fn logout(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DashError> {
    ctx.read_form(&body)?;
    if let (Some(s), Some(v)) = (&d.keys.sessions, cookie(&headers, COOKIE)) {
        s.revoke(&v, now_ms());
    }
    let mut res = Redirect::to(&format!("{}/login", ctx.base)).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&ctx.base, "", secure(&headers), Some(0)),
    );
    Ok(res)
}

/// The request reached us over HTTPS (directly or through a proxy that says so).
fn secure(headers: &HeaderMap) -> bool {
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("https://"));
    forwarded || origin
}

fn set_cookie(path: &str, value: &str, secure: bool, max_age: Option<u32>) -> HeaderValue {
    let mut c = format!("{COOKIE}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("bildad_dashboard="))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::tests::headers;

    #[test]
    fn next_stays_inside_the_dashboard() {
        assert_eq!(
            safe_next(Some("queue?status=RUNNING")),
            "queue?status=RUNNING"
        );
        for bad in [
            "//evil.example",
            "/etc",
            "https://evil.example",
            "a\\b",
            "x\ny",
        ] {
            assert_eq!(safe_next(Some(bad)), "", "{bad:?}");
        }
    }

    #[test]
    fn cookie_is_signed_not_the_token() {
        let k = Keys::new(Some("s3cret"));
        let session = k.sessions.as_ref().unwrap().issue(now_ms());
        assert!(!session.contains("s3cret"));
        assert!(k.signed_in(&headers(&[(
            header::COOKIE,
            &format!("a=b; {COOKIE}={session}")
        )])));
        assert!(!k.signed_in(&headers(&[(header::COOKIE, &format!("{COOKIE}=s3cret"))])));
        assert!(!k.signed_in(&headers(&[])));
        assert!(Keys::new(None).signed_in(&headers(&[])));
    }
}
