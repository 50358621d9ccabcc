//! The queues (SPEC §8): each queue's counts and limits, with pause and resume buttons
//! (a `POST` behind the same CSRF token and same-origin check as every action).

use super::layout::{self, badge, csrf_field, empty, query};
use super::queue::path_segment;
use super::{Ctx, Dash, DashError, see_other};
use crate::extract::{PathText, QueryPairs};
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::response::Response;
use bildad_core::{QueueInfo, QueuePatch};
use maud::{Markup, html};

/// `GET /jobs/dashboard/queues`.
pub(crate) async fn page(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    q: QueryPairs,
) -> Result<Response, DashError> {
    let store = d.app.engine.store().clone();
    let queues = d
        .app
        .call(async move { store.list_queues().await })
        .await
        .map_err(|e| ctx.error(e))?;
    let body = html! {
        h1 { "Queues" }
        @if queues.is_empty() {
            (empty("No queues yet", html! { p { "A queue appears with its first entry, or when its settings are changed." } }))
        } @else {
            table #queues {
                thead { tr {
                    th { "Queue" } th { "State" } th.num { "Available" } th.num { "Scheduled" }
                    th.num { "Running" } th { "Global limit" } th { "Rate limit" } th {}
                } }
                tbody { @for info in &queues { (row(&ctx, info)) } }
            }
            p.hint { "Limits are set with " code { "PATCH /jobs/queues/{name}" } "; they bind every node at once." }
        }
    };
    Ok(layout::page(&ctx, "Queues", &q, body))
}

fn row(ctx: &Ctx, info: &QueueInfo) -> Markup {
    let s = &info.settings;
    let (action, label) = if s.paused {
        ("resume", "Resume")
    } else {
        ("pause", "Pause")
    };
    let path = format!("queues/{}/{action}", path_segment(&s.name));
    html! {
        tr {
            td { a href=(ctx.page_url("queue", &query(&[("queue", &s.name)]))) { code { (s.name) } } }
            td { (badge(if s.paused { "paused" } else { "active" })) }
            td.num { (info.available) }
            td.num { (info.scheduled) }
            td.num { (info.running) }
            td { @match s.global_limit { Some(n) => (n), None => "—" } }
            td { @match s.rate_limit {
                Some(r) => { (r.allowed) " per " (r.period_seconds) " s" }
                None => "—",
            } }
            td {
                form.inline method="post" action=(ctx.page_url(&path, "")) {
                    (csrf_field(ctx))
                    button type="submit" { (label) }
                }
            }
        }
    }
}

/// `POST /jobs/dashboard/queues/{name}/pause`.
pub(crate) async fn pause(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    PathText(name): PathText,
    body: Bytes,
) -> Result<Response, DashError> {
    set_paused(d, ctx, name, &body, true).await
}

/// `POST /jobs/dashboard/queues/{name}/resume`.
pub(crate) async fn resume(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    PathText(name): PathText,
    body: Bytes,
) -> Result<Response, DashError> {
    set_paused(d, ctx, name, &body, false).await
}

async fn set_paused(
    d: Dash,
    ctx: Ctx,
    name: String,
    body: &Bytes,
    paused: bool,
) -> Result<Response, DashError> {
    ctx.read_form(body)?;
    let store = d.app.engine.store().clone();
    let key = name.clone();
    let patch = QueuePatch {
        paused: Some(paused),
        ..QueuePatch::default()
    };
    d.app
        .call(async move { store.update_queue(&key, patch).await })
        .await
        .map_err(|e| ctx.error(e))?;
    let notice = if paused { "paused" } else { "resumed" };
    Ok(see_other(&ctx.page_url(
        "queues",
        &query(&[("notice", notice), ("id", &name)]),
    )))
}
