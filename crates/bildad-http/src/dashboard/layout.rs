//! The page shell (navigation, notices, the live-refresh hook) and the small helpers
//! every page uses: times, durations, pagination, query strings, badges.

use super::{Ctx, MAX_PAGE_SIZE};
use crate::extract::QueryPairs;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use bildad_core::{PageRequest, Timestamp, Violation};
use chrono::{SecondsFormat, TimeDelta};
use maud::{DOCTYPE, Markup, html};

/// A full page (or, for the live script, its `<main>` only).
pub(crate) fn page(ctx: &Ctx, title: &str, q: &QueryPairs, body: Markup) -> Response {
    let main = html! {
        (notice(q))
        (body)
    };
    if ctx.live {
        return Html(main.into_string()).into_response();
    }
    let nav = [
        ("", "Overview"),
        ("queue", "Queue"),
        ("runs", "Runs"),
        ("templates", "Templates"),
        ("schedules", "Schedules"),
        ("queues", "Queues"),
    ];
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Bildad" }
                link rel="stylesheet" href={ (ctx.base) "/assets/app.css" };
                script src={ (ctx.base) "/assets/app.js" } defer {}
            }
            body {
                header.top {
                    a.brand href=(ctx.base) { "Bildad" }
                    nav {
                        @for (rel, label) in nav {
                            @let current = ctx.here == rel;
                            a href=(ctx.page_url(rel, "")) aria-current=[current.then_some("page")] { (label) }
                        }
                    }
                    div.actions {
                        form method="post" action={ (ctx.base) "/engine" } {
                            input type="hidden" name="_csrf" value=(ctx.csrf);
                            input type="hidden" name="back" value=(ctx.here);
                            button #run-engine type="submit" title="Run one engine pass on this node: expire dead runs, then claim and start available entries" { "Run engine" }
                        }
                        @if ctx.auth {
                            form method="post" action={ (ctx.base) "/logout" } {
                                input type="hidden" name="_csrf" value=(ctx.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                        span #live-status.live title="This page refreshes itself every few seconds" { "live" }
                    }
                }
                main #main data-live-url="" { (main) }
            }
        }
    };
    Html(doc.into_string()).into_response()
}

/// A page without navigation (sign-in).
pub(crate) fn bare(ctx: &Ctx, title: &str, body: Markup) -> Html<String> {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Bildad" }
                link rel="stylesheet" href={ (ctx.base) "/assets/app.css" };
            }
            body { main.narrow { (body) } }
        }
    };
    Html(doc.into_string())
}

/// An error page: the status, the message and any violations.
pub(crate) fn error_page(
    status: StatusCode,
    message: &str,
    details: &[Violation],
    base: &str,
) -> Html<String> {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (status.as_u16()) " · Bildad" }
                link rel="stylesheet" href={ (base) "/assets/app.css" };
            }
            body {
                main.narrow {
                    h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
                    p.error role="alert" { (message) }
                    (violations(details))
                    p { a href=(base) { "Back to the dashboard" } }
                }
            }
        }
    };
    Html(doc.into_string())
}

/// A list of violations, each with its JSON pointer.
pub(crate) fn violations(details: &[Violation]) -> Markup {
    html! {
        @if !details.is_empty() {
            ul.violations {
                @for v in details {
                    li { @if !v.pointer.is_empty() { code { (v.pointer) } " " } (v.message) }
                }
            }
        }
    }
}

/// The notice shown after an action (post/redirect/get). Only known codes are shown,
/// so a link cannot make the dashboard say arbitrary things.
fn notice(q: &QueryPairs) -> Markup {
    let id = q.get("id").unwrap_or_default();
    let number = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let text = match q.get("notice") {
        Some("enqueued") => html! { "Enqueued " code { (id) } "." },
        Some("stopped") => {
            html! { "Stopped the run of " code { (id) } "; the entry is available again." }
        }
        Some("removed") => html! { "Removed " code { (id) } "." },
        Some("activated") => html! { "Activated " code { (id) } "." },
        Some("deactivated") => {
            html! { "Deactivated " code { (id) } ": it fires nothing until activated." }
        }
        Some("paused") => html! { "Paused queue " code { (id) } ": no node starts its entries." },
        Some("resumed") => html! { "Resumed queue " code { (id) } "." },
        Some("engine") => html! {
            "Engine pass: started " (number("started")) ", expired " (number("expired"))
            @if number("errors") > 0 { ", " (number("errors")) " errors (see the server log)" } "."
        },
        _ => return html! {},
    };
    html! { p.notice role="status" { (text) } }
}

/// `page` and `limit` from the query (defaults 0 and 25; limit at most 100).
pub(crate) fn page_request(q: &QueryPairs, key: &str) -> PageRequest {
    let page = q
        .get(key)
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(0)
        .min(1_000_000);
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<u32>().ok())
        .unwrap_or(PageRequest::DEFAULT_LIMIT)
        .clamp(1, MAX_PAGE_SIZE);
    PageRequest { page, limit }
}

/// `k=v&…`, form-encoded; empty values are left out.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

/// "Page X of Y" with links to the previous and next pages, keeping `keep`.
pub(crate) fn pager(
    ctx: &Ctx,
    rel: &str,
    key: &str,
    keep: &[(&str, &str)],
    req: PageRequest,
    total: u64,
) -> Markup {
    let pages = total.div_ceil(u64::from(req.limit)).max(1);
    let page = u64::from(req.page);
    let link = |p: u64| {
        let p = p.to_string();
        let mut pairs = keep.to_vec();
        pairs.push((key, &p));
        ctx.page_url(rel, &query(&pairs))
    };
    html! {
        @if pages > 1 || page > 0 {
            nav.pager aria-label="pages" {
                @if page > 0 { a rel="prev" href=(link(page - 1)) { "← Previous" } }
                span { "Page " (page + 1) " of " (pages) " · " (total) " in all" }
                @if page + 1 < pages { a rel="next" href=(link(page + 1)) { "Next →" } }
            }
        }
    }
}

/// A timestamp as `2030-01-31 09:30:00Z`, machine-readable in `datetime`.
pub(crate) fn time(t: Timestamp) -> Markup {
    let iso = t.to_rfc3339_opts(SecondsFormat::Secs, true);
    html! { time datetime=(iso) { (t.format("%Y-%m-%d %H:%M:%SZ")) } }
}

/// An optional timestamp; `—` when absent.
pub(crate) fn time_opt(t: Option<Timestamp>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { span.muted { "—" } },
    }
}

/// A duration as `850 ms`, `12 s`, `3 min 4 s`, `2 h 5 min`, `3 d 4 h`.
pub(crate) fn duration(d: TimeDelta) -> String {
    let ms = d.num_milliseconds().max(0);
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// How long ago `t` was, seen from `now` (`in …` for the future).
pub(crate) fn ago(now: Timestamp, t: Timestamp) -> String {
    let d = now - t;
    if d < TimeDelta::zero() {
        format!("in {}", duration(-d))
    } else {
        format!("{} ago", duration(d))
    }
}

/// A coloured status word.
pub(crate) fn badge(text: &str) -> Markup {
    let class = match text {
        "SUCCEEDED" | "alive" | "active" => "badge ok",
        "FAILED" | "dead" => "badge bad",
        "RUNNING" => "badge run",
        "SCHEDULED" => "badge wait",
        _ => "badge",
    };
    html! { span class=(class) { (text) } }
}

/// JSON, pretty-printed, as escaped text in a `<pre>`.
pub(crate) fn json_block(v: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    html! { pre.json { (text) } }
}

/// At most `max` characters of `s`, with `…` when cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// A hidden CSRF field for a form.
pub(crate) fn csrf_field(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="_csrf" value=(ctx.csrf); }
}

/// An empty state: what the list would show, and what to do first.
pub(crate) fn empty(title: &str, body: Markup) -> Markup {
    html! {
        div.empty {
            h3 { (title) }
            (body)
        }
    }
}
