//! The schedule routes (SPEC §9): save, read, list, change, delete, with every error
//! answer; and a per-second schedule firing through the node's scheduler.

use crate::{Api, backends};
use axum::http::Method;
use bildad_core::JobStore;
use bildad_http::ApiConfig;
use serde_json::json;
use std::sync::Arc;

backends!(schedules_crud_and_errors, a_schedule_fires_through_the_node);

async fn schedules_crud_and_errors(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    api.templates().await;
    let body = json!({"name": "digest", "cron": "0 7 * * *", "timezone": "Europe/Paris",
                      "template": "test.sleep", "context": {"seconds": 0}, "priority": 2});
    let s = api.post("/jobs/schedules", body.clone()).await.expect(201);
    assert_eq!(s["name"], "digest");
    assert_eq!(s["timezone"], "Europe/Paris");
    assert_eq!(s["priority"], 2);
    assert_eq!(s["active"], true);
    assert_eq!(s["last_fire_at"], serde_json::Value::Null);
    assert!(s["next_fire_at"].as_str().unwrap().ends_with('Z'));
    let dup = api.post("/jobs/schedules", body).await.expect(409);
    assert_eq!(dup["error"]["code"], "conflict");

    for (bad, pointer) in [
        (
            json!({"name": "a", "cron": "0 7 * *", "template": "test.echo"}),
            "/cron",
        ),
        (
            json!({"name": "a", "cron": "0 7 * * *", "timezone": "Nowhere/Else", "template": "test.echo"}),
            "/timezone",
        ),
        (
            json!({"name": "a", "cron": "0 7 * * *", "template": "no.such"}),
            "/template",
        ),
        (
            json!({"name": "a", "cron": "0 7 * * *", "template": "test.sleep", "context": {"seconds": "x"}}),
            "/context/seconds",
        ),
    ] {
        let e = api.post("/jobs/schedules", bad.clone()).await.expect(422);
        let pointers: Vec<&str> = e["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["pointer"].as_str().unwrap())
            .collect();
        assert!(pointers.contains(&pointer), "{bad}: {pointers:?}");
    }

    let list = api.get("/jobs/schedules").await.expect(200);
    assert_eq!(
        (list["total"].clone(), list["limit"].clone()),
        (json!(1), json!(25))
    );
    assert_eq!(api.get("/jobs/schedules/digest").await.expect(200), s);
    let off = api
        .call(
            Method::PATCH,
            "/jobs/schedules/digest",
            Some(json!({"active": false})),
        )
        .await
        .expect(200);
    assert_eq!(off["active"], false);
    api.call(
        Method::PATCH,
        "/jobs/schedules/digest",
        Some(json!({"cron": "x"})),
    )
    .await
    .expect(422);
    api.call(
        Method::PATCH,
        "/jobs/schedules/none",
        Some(json!({"active": true})),
    )
    .await
    .expect(404);
    api.get("/jobs/schedules/none").await.expect(404);
    api.call(Method::DELETE, "/jobs/schedules/digest", None)
        .await
        .expect(204);
    api.call(Method::DELETE, "/jobs/schedules/digest", None)
        .await
        .expect(404);
}

/// The node's scheduler (on by default, every second) enqueues the fire times of a
/// per-second schedule, each under its `schedule:<name>:<time>` identifier.
async fn a_schedule_fires_through_the_node(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    api.templates().await;
    api.post(
        "/jobs/schedules",
        json!({"name": "tick", "cron": "* * * * * *", "template": "test.echo",
               "context": {}}),
    )
    .await
    .expect(201);
    let fired = api
        .wait_for("/jobs/schedules/tick", |a| {
            !a.body["last_fire_at"].is_null()
        })
        .await;
    let last = fired.body["last_fire_at"].as_str().unwrap().to_string();
    let entry = api.get(&format!("/jobs/queue/schedule:tick:{last}")).await;
    let run = api
        .get(&format!("/jobs/runs?identifier=schedule:tick:{last}"))
        .await;
    assert!(
        entry.status.is_success() || run.body["total"] == json!(1),
        "the entry of {last} exists or ran: {entry:?} {run:?}"
    );
    api.node.shutdown(std::time::Duration::from_secs(1)).await;
}
