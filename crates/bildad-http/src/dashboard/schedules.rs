//! The schedules (SPEC §9): each with its cron and time zone, next and last fire time,
//! the runs of its recent fires ([`fires`]), and activate/deactivate (a form with the
//! CSRF token, behind the same same-origin checks as every dashboard action).

mod fires;

use super::layout::{self, ago, badge, csrf_field, empty, pager, query};
use super::queue::path_segment;
use super::{Ctx, Dash, DashError, see_other};
use crate::extract::{PathText, QueryPairs};
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::response::Response;
use bildad_core::firing::fire_identifier;
use bildad_core::{JobRun, Schedule, SchedulePatch, Timestamp};
use maud::{Markup, html};

/// `GET /jobs/dashboard/schedules?page=&limit=`.
pub(crate) async fn page(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    q: QueryPairs,
) -> Result<Response, DashError> {
    let req = layout::page_request(&q, "page");
    let store = d.app.engine.store().clone();
    let (now, schedules, recent) = d
        .app
        .call(async move {
            let now = store.now().await?;
            let schedules = store.list_schedules(req).await?;
            let mut recent = Vec::with_capacity(schedules.items.len());
            for s in &schedules.items {
                recent.push(fires::recent_fires(&*store, s).await?);
            }
            Ok((now, schedules, recent))
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
                        th { "Last fire" } th { "Recent runs" } th { "Active" } th { "Actions" }
                    } }
                    tbody {
                        @for (s, fires) in schedules.items.iter().zip(&recent) {
                            (row(&ctx, now, s, fires))
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

/// The runs of a schedule's recent fires, newest first: each links to its run, with its
/// result (or status) and start. A fire whose entry has not run (or was skipped) is
/// left out; `—` when none ran.
fn recent_runs(ctx: &Ctx, now: Timestamp, fires: &[(Timestamp, Option<JobRun>)]) -> Markup {
    let runs: Vec<&JobRun> = fires.iter().filter_map(|(_, r)| r.as_ref()).collect();
    html! {
        @if runs.is_empty() {
            span.muted { "—" }
        } @else {
            ul.recent-runs {
                @for r in runs {
                    li data-run=(r.id) {
                        a href=(ctx.page_url(&format!("runs/{}", r.id), "")) {
                            (badge(r.result.map(|x| x.as_str()).unwrap_or(r.status.as_str())))
                        }
                        " " (when(now, Some(r.started_at)))
                    }
                }
            }
        }
    }
}

fn row(ctx: &Ctx, now: Timestamp, s: &Schedule, fires: &[(Timestamp, Option<JobRun>)]) -> Markup {
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
            td { (recent_runs(ctx, now, fires)) }
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
