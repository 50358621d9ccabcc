//! A node without a token answers to a loopback `Host` only, and to no cross-site
//! request (SPEC §4): DNS rebinding and cross-site forms cannot drive it.

use crate::Api;
use axum::body::Body;
use axum::http::{Method, Request, header};
use bildad_core::MemoryStore;
use bildad_http::ApiConfig;
use std::sync::Arc;

/// A request to every route with `host` and `origin`, and the token when given.
async fn statuses(api: &Api, host: &str, origin: Option<&str>) -> Vec<(String, u16, String)> {
    let mut out = Vec::new();
    for (method, path) in bildad_http::routes() {
        let uri = path
            .replace("{code}", "x")
            .replace("{job_run_identifier}", "x")
            .replace("{id}", "1");
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(header::HOST, host);
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        if let Some(t) = &api.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = if method == Method::GET || method == Method::DELETE {
            req.body(Body::empty())
        } else {
            req.header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
        };
        let a = api.send(req.unwrap()).await;
        let code = a.body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        out.push((format!("{method} {path}"), a.status.as_u16(), code));
    }
    out
}

#[tokio::test]
async fn without_a_token_every_route_refuses_other_hosts_and_other_sites() {
    let api = Api::start(Arc::new(MemoryStore::new()), ApiConfig::default()).await;
    for host in [
        "evil.example:4000",
        "192.168.1.20:4000",
        "localhost.evil.example",
    ] {
        for (route, status, code) in statuses(&api, host, None).await {
            assert_eq!(
                (status, code.as_str()),
                (403, "forbidden"),
                "{route} Host {host}"
            );
        }
    }
    for origin in ["http://evil.example", "null", "http://localhost:4000"] {
        for (route, status, code) in statuses(&api, "127.0.0.1:4000", Some(origin)).await {
            assert_eq!(
                (status, code.as_str()),
                (403, "forbidden"),
                "{route} Origin {origin}"
            );
        }
    }
    for (host, origin) in [
        ("127.0.0.1:4000", None),
        ("localhost", None),
        ("[::1]:9", None),
        ("127.0.0.1:4000", Some("http://127.0.0.1:4000")),
        ("localhost:4000", Some("http://localhost:4000")),
    ] {
        for (route, status, _) in statuses(&api, host, origin).await {
            assert_ne!(status, 403, "{route} Host {host} Origin {origin:?}");
        }
    }
    // An unknown route is refused as well.
    let req = Request::get("/jobs/nope")
        .header(header::HOST, "evil.example")
        .body(Body::empty())
        .unwrap();
    api.send(req).await.expect(403);
}

#[tokio::test]
async fn with_a_token_any_host_and_origin_is_served() {
    let api = Api::start(
        Arc::new(MemoryStore::new()),
        ApiConfig::default().with_auth_token("s3cret"),
    )
    .await;
    for (route, status, _) in
        statuses(&api, "jobs.example.com", Some("https://app.example.com")).await
    {
        assert_ne!(status, 403, "{route}");
        assert_ne!(status, 401, "{route}");
    }
}
