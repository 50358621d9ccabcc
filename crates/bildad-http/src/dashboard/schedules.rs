//! The schedules (SPEC §9): each with its cron and time zone, next and last fire time,
//! the outcome of its latest fire, and activate/deactivate (a form with the CSRF token,
//! behind the same same-origin checks as every dashboard action).

use super::layout::{self, ago, badge, csrf_field, empty, pager, query};
use super::queue::path_segment;
use super::{Ctx, Dash, DashError, see_other};
use crate::extract::{PathText, QueryPairs};
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::response::Response;
use bildad_core::firing::fire_identifier;
use bildad_core::{JobRun, PageRequest, RunFilter, Schedule, SchedulePatch, Timestamp};
use maud::{Markup, html};

/// `GET /jobs/dashboard/schedules?page=&limit=`.
pub(crate) async fn page(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    q: QueryPairs,
) -> Result<Response, DashError> {
    let req = layout::page_request(&q, "page");
    let store = d.app.engine.store().clone();
    let (now, schedules, latest) = d
        .app
        .call(async move {
            let now = store.now().await?;
            let schedules = store.list_schedules(req).await?;
            // The newest run of each schedule's latest fire time.
            let mut latest = Vec::with_capacity(schedules.items.len());
            for s in &schedules.items {
                let run = match s.last_fire_at {
                    Some(t) => {
                        let filter = RunFilter {
                            identifier: Some(fire_identifier(&s.name, t)),
                            ..RunFilter::default()
                        };
                        let one = PageRequest { page: 0, limit: 1 };
                        store.list_runs(filter, one).await?.items.pop()
                    }
                    None => None,
                };
                latest.push(run);
            }
            Ok((now, schedules, latest))
        })
        .await
        .map_err(|e| ctx.error(e))?;
    let body = html! {
        h1 { "Schedules" }
        section #schedules data-live {
            @if schedules.items.is_empty() {
                (empty("No schedule yet", html! {
                    p { "A schedule enqueues its template at every fire time of its cron, once over all nodes. Create one with "
                        code { "POST /jobs/schedules" } ", or declare it in code with " code { "JobRegistry::schedule" } "." }
                }))
            } @else {
                table #schedules-table {
                    thead { tr {
                        th { "Name" } th { "Cron" } th { "Template" } th { "Next fire" }
                        th { "Last fire" } th { "Latest run" } th { "Active" } th { "Actions" }
                    } }
                    tbody {
                        @for (s, run) in schedules.items.iter().zip(&latest) {
                            (row(&ctx, now, s, run.as_ref()))
                        }
                    }
                }
            }
            (pager(&ctx, "schedules", "page", &[], req, schedules.total))
        }
    };
    Ok(layout::page(&ctx, "Schedules", &q, body))
}

fn when(now: Timestamp, t: Option<Timestamp>) -> Markup {
    html! {
        @match t {
            Some(t) => { (layout::time(t)) " " span.muted { "(" (ago(now, t)) ")" } }
            None => { span.muted { "—" } }
        }
    }
}

fn row(ctx: &Ctx, now: Timestamp, s: &Schedule, run: Option<&JobRun>) -> Markup {
    let (verb, next) = if s.active {
        ("Deactivate", "false")
    } else {
        ("Activate", "true")
    };
    let action = ctx.page_url(&format!("schedules/{}/active", path_segment(&s.name)), "");
    html! {
        tr data-schedule=(s.name) {
            td { code { (s.name) } }
            td { code { (s.cron) } " " span.muted { (s.timezone) } }
            td { (s.template) }
            td { @if s.active { (when(now, s.next_fire_at)) } @else { span.muted { "paused" } } }
            td {
                @if let Some(t) = s.last_fire_at {
                    a href=(ctx.page_url("runs", &query(&[("identifier", &fire_identifier(&s.name, t))]))) {
                        (when(now, Some(t)))
                    }
                } @else { span.muted { "never" } }
            }
            td {
                @match run {
                    Some(r) => { (badge(r.result.map(|x| x.as_str()).unwrap_or(r.status.as_str()))) }
                    None => { span.muted { "—" } }
                }
            }
            td { (badge(if s.active { "ACTIVE" } else { "INACTIVE" })) }
            td.actions {
                form method="post" action=(action) {
                    (csrf_field(ctx))
                    input type="hidden" name="active" value=(next);
                    button type="submit" { (verb) }
                }
            }
        }
    }
}

/// `POST /jobs/dashboard/schedules/{name}/active` with `active=true|false`.
pub(crate) async fn set_active(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    PathText(name): PathText,
    body: Bytes,
) -> Result<Response, DashError> {
    let form = ctx.read_form(&body)?;
    let active = match form.get("active") {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return Err(DashError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "active must be true or false",
                &ctx.base,
            ));
        }
    };
    let store = d.app.engine.store().clone();
    let key = name.clone();
    let patch = SchedulePatch {
        active: Some(active),
        ..SchedulePatch::default()
    };
    d.app
        .call(async move { store.update_schedule(&key, patch).await })
        .await
        .map_err(|e| ctx.error(e))?;
    let notice = if active { "activated" } else { "deactivated" };
    Ok(see_other(&ctx.page_url(
        "schedules",
        &query(&[("notice", notice), ("id", &name)]),
    )))
}
