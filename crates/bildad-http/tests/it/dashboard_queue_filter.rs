//! The queue filter of the dashboard's queue and runs pages: a select listing the
//! store's queues, which filters without editing the URL, keeps the other filters
//! and pages within the queue.

use super::{Browser, api_with_token};
use crate::backends;
use bildad_core::JobStore;
use serde_json::json;
use std::sync::Arc;

/// The `<select name="queue">` of a page.
fn queue_select(html: &str) -> &str {
    let start = html
        .find("<select name=\"queue\">")
        .expect("a queue select");
    let end = start + html[start..].find("</select>").unwrap();
    &html[start..end]
}

async fn the_queue_and_runs_pages_filter_by_queue(store: Arc<dyn JobStore>) {
    let api = api_with_token(store).await;
    let enqueue = |id: &str, queue: Option<&str>, later: bool| {
        let mut body = json!({"template": "test.echo", "context": {}, "job_run_identifier": id});
        if let Some(q) = queue {
            body["queue"] = json!(q);
        }
        if later {
            body["run_at"] = json!("2099-01-01T00:00:00Z");
        }
        body
    };
    // Two runs (one per queue), then waiting entries in two queues.
    api.post("/jobs/queue", enqueue("ran-mail", Some("mail"), false))
        .await
        .expect(201);
    api.post("/jobs/queue", enqueue("ran-default", None, false))
        .await
        .expect(201);
    api.post("/jobs/engine/run", json!({})).await.expect(200);
    api.wait_for("/jobs/runs", |a| a.body["total"] == 2).await;
    for id in ["wait-mail-1", "wait-mail-2"] {
        api.post("/jobs/queue", enqueue(id, Some("mail"), true))
            .await
            .expect(201);
    }
    api.post("/jobs/queue", enqueue("wait-bulk", Some("bulk"), true))
        .await
        .expect(201);

    let mut b = Browser::new(&api);
    b.sign_in().await;
    // The select lists the known queues, "any" chosen.
    let all = b.get("/jobs/dashboard/queue").await.ok();
    let select = queue_select(&all);
    assert!(
        select.contains("<option value=\"\">any</option>"),
        "{select}"
    );
    for q in ["mail", "bulk"] {
        assert!(
            select.contains(&format!("<option value=\"{q}\">")),
            "{select}"
        );
    }
    assert_eq!(all.matches("<tr data-identifier=").count(), 3, "{all}");

    // Submitting the form (a GET with its fields) filters; the choice stays selected.
    let mail = b
        .get("/jobs/dashboard/queue?status=&template=&queue=mail")
        .await
        .ok();
    assert_eq!(mail.matches("<tr data-identifier=").count(), 2, "{mail}");
    assert!(!mail.contains("data-identifier=\"wait-bulk\""), "{mail}");
    let select = queue_select(&mail);
    assert!(
        select.contains("<option value=\"mail\" selected>"),
        "{select}"
    );
    // With the other filters, and page by page within the queue.
    let echo = b
        .get("/jobs/dashboard/queue?template=test.echo&queue=bulk")
        .await
        .ok();
    assert_eq!(echo.matches("<tr data-identifier=").count(), 1, "{echo}");
    assert!(echo.contains("data-identifier=\"wait-bulk\""), "{echo}");
    let first = b.get("/jobs/dashboard/queue?queue=mail&limit=1").await.ok();
    assert_eq!(first.matches("<tr data-identifier=").count(), 1, "{first}");
    assert!(
        first.contains("queue=mail&amp;page=1"),
        "the pager keeps the queue: {first}"
    );
    // A queue nobody knows: kept in the select, nothing matches.
    let none = b.get("/jobs/dashboard/queue?queue=nowhere").await.ok();
    assert!(none.contains("No entry matches these filters"), "{none}");
    assert!(
        queue_select(&none).contains("<option value=\"nowhere\" selected>"),
        "{none}"
    );

    // The runs page: the same select, and only the runs of the chosen queue.
    let runs = b.get("/jobs/dashboard/runs").await.ok();
    assert!(
        queue_select(&runs).contains("<option value=\"mail\">"),
        "{runs}"
    );
    assert_eq!(runs.matches("data-run=").count(), 2, "{runs}");
    let mail_run = api.get("/jobs/runs?queue=mail").await.expect(200)["items"][0]["id"].clone();
    let mail = b
        .get("/jobs/dashboard/runs?template=&result=&identifier=&node=&queue=mail")
        .await
        .ok();
    assert_eq!(mail.matches("data-run=").count(), 1, "{mail}");
    assert!(mail.contains(&format!("data-run=\"{mail_run}\"")), "{mail}");
    assert!(
        queue_select(&mail).contains("<option value=\"mail\" selected>"),
        "{mail}"
    );
    let both = b
        .get("/jobs/dashboard/runs?result=SUCCEEDED&queue=bulk")
        .await
        .ok();
    assert!(both.contains("No run matches these filters"), "{both}");
}

backends!(the_queue_and_runs_pages_filter_by_queue);
