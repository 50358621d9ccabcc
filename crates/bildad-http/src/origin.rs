//! Who may drive a node without a token (SPEC §4): a loopback `Host` only, and no
//! cross-site `Origin`. One implementation for the API and the dashboard.
//!
//! A web page the operator visits can reach `127.0.0.1` too: through DNS rebinding
//! (its own name now points at 127.0.0.1, so the browser sends its own name as `Host`)
//! or through a plain cross-site form or `fetch` (the browser sends the page's
//! `Origin`). Both are refused with a 403 when no token is configured; with a token
//! configured, the bearer token (or the dashboard's cookie) already stops them.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;

/// The `Host` header, when readable.
fn host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|v| v.to_str().ok())
}

/// `Host` names a loopback address (`localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`,
/// any port), or is absent, as in in-process calls (every browser sends one).
pub(crate) fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(h) = host(headers) else {
        return true;
    };
    let name = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        h.rsplit_once(':').map_or(h, |(n, _)| n)
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `origin` (`scheme://authority`) is this node as the request reached it: its
/// authority equals `Host`.
fn is_own_origin(headers: &HeaderMap, origin: &str) -> bool {
    let Some(host) = host(headers) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

/// The request comes from a page of this same origin: `Origin` (or, failing that,
/// `Referer`) names the scheme and the `Host` it was sent to. Stricter than
/// [`cross_site`]: a request that names no origin at all does not pass.
#[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return is_own_origin(headers, origin);
    }
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|r| {
            let Some((scheme, rest)) = r.split_once("://") else {
                return false;
            };
            let authority = rest.split('/').next().unwrap_or_default();
            is_own_origin(headers, &format!("{scheme}://{authority}"))
        })
}

/// A browser sent this request from another site: it carries an `Origin` (`null`
/// included) that is not this node's own. A request without `Origin` (curl, a
/// server, a same-origin `GET`) is not cross-site.
pub(crate) fn cross_site(headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN) {
        None => false,
        Some(v) => !v.to_str().is_ok_and(|o| is_own_origin(headers, o)),
    }
}

/// The API's guard for a node without a token: a 403 in the error envelope for a
/// `Host` that is not loopback, and for a cross-site request. The dashboard has its
/// own guard (HTML answers) built on the same rules.
pub(crate) async fn tokenless_guard(
    State(s): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if s.config.auth_token.is_none() {
        #[cfg(feature = "dashboard")]
        if req.uri().path().starts_with(crate::dashboard::PREFIX) {
            return next.run(req).await;
        }
        if !host_is_loopback(req.headers()) {
            return ApiError::forbidden(
                "without an auth token this node answers to a loopback Host only \
                 (127.0.0.1, localhost or [::1]); start it with --auth-token to serve other names",
            )
            .into_response();
        }
        if cross_site(req.headers()) {
            return ApiError::forbidden(
                "cross-site request refused: without an auth token this node accepts no \
                 request from another site's page",
            )
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// A header map of `pairs`, for the guards' tests here and in the dashboard.
    pub(crate) fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn loopback_hosts() {
        for ok in [
            "127.0.0.1:4000",
            "localhost",
            "LOCALHOST:80",
            "[::1]:4000",
            "[::1]",
            "127.3.4.5",
            "app.localhost:1",
        ] {
            assert!(host_is_loopback(&headers(&[(header::HOST, ok)])), "{ok}");
        }
        for bad in [
            "evil.example:4000",
            "10.0.0.1:4000",
            "[2001:db8::1]:80",
            "localhost.evil.example",
            "0.0.0.0:4000",
        ] {
            assert!(!host_is_loopback(&headers(&[(header::HOST, bad)])), "{bad}");
        }
    }

    #[test]
    fn same_origin_needs_origin_or_referer_matching_host() {
        let h = |extra: &[(header::HeaderName, &str)]| {
            let mut all = vec![(header::HOST, "127.0.0.1:4000")];
            all.extend_from_slice(extra);
            same_origin(&headers(&all))
        };
        assert!(h(&[(header::ORIGIN, "http://127.0.0.1:4000")]));
        assert!(h(&[(
            header::REFERER,
            "http://127.0.0.1:4000/jobs/dashboard"
        )]));
        assert!(!h(&[]));
        assert!(!h(&[(header::ORIGIN, "null")]));
        assert!(!h(&[(header::ORIGIN, "http://evil.example")]));
        assert!(!h(&[(
            header::ORIGIN,
            "http://127.0.0.1:4000.evil.example"
        )]));
        assert!(!h(&[(
            header::REFERER,
            "http://evil.example/?http://127.0.0.1:4000/"
        )]));
        // Origin wins over a matching Referer.
        assert!(!h(&[
            (header::ORIGIN, "http://evil.example"),
            (header::REFERER, "http://127.0.0.1:4000/")
        ]));
    }

    #[test]
    fn cross_site_is_a_foreign_origin_only() {
        let h = |origin: Option<&str>| {
            let mut all = vec![(header::HOST, "localhost:4000")];
            all.extend(origin.map(|o| (header::ORIGIN, o)));
            cross_site(&headers(&all))
        };
        assert!(!h(None));
        assert!(!h(Some("http://localhost:4000")));
        assert!(h(Some("http://evil.example")));
        assert!(h(Some("http://127.0.0.1:4000")));
        assert!(h(Some("null")));
    }
}
