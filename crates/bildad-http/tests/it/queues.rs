//! The queue routes of SPEC §8 and `queue` in the template, entry and run shapes.

use crate::{Api, backends};
use axum::http::Method;
use bildad_core::JobStore;
use bildad_http::ApiConfig;
use serde_json::json;
use std::sync::Arc;

backends!(queues_shapes_pause_and_limits, queue_patch_bad_input_is_422);

pub(crate) async fn queues_shapes_pause_and_limits(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    let t = api
        .post(
            "/jobs/templates",
            json!({"code": "mail", "name": "Mail", "job_type": "test.echo",
                   "context_schema": {"type": "object"}, "queue": "mailers"}),
        )
        .await
        .expect(201);
    assert_eq!(t["queue"], "mailers");
    let e = api
        .post("/jobs/queue", json!({"template": "mail", "context": {}}))
        .await
        .expect(201);
    assert_eq!(e["queue"], "mailers");
    let e2 = api
        .post(
            "/jobs/queue",
            json!({"template": "mail", "context": {}, "queue": "bulk"}),
        )
        .await
        .expect(201);
    assert_eq!(e2["queue"], "bulk");

    let all = api.get("/jobs/queues").await.expect(200);
    assert_eq!(
        all,
        json!([
            {"name": "bulk", "paused": false, "global_limit": null, "rate_limit": null,
             "available": 1, "running": 0, "scheduled": 0},
            {"name": "mailers", "paused": false, "global_limit": null, "rate_limit": null,
             "available": 1, "running": 0, "scheduled": 0},
        ])
    );
    api.get("/jobs/queues/nothing-here").await.expect(404);

    let paused = api
        .call(
            Method::PATCH,
            "/jobs/queues/mailers",
            Some(json!({"paused": true, "global_limit": 2,
                        "rate_limit": {"allowed": 5, "period_seconds": 60}})),
        )
        .await
        .expect(200);
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["global_limit"], 2);
    assert_eq!(
        paused["rate_limit"],
        json!({"allowed": 5, "period_seconds": 60})
    );
    // The engine starts nothing of a paused queue; the other queue runs.
    api.post("/jobs/engine/run", json!({})).await.expect(200);
    let runs = api.get("/jobs/runs").await.expect(200);
    assert_eq!(runs["total"], 1, "{runs}");
    assert_eq!(runs["items"][0]["queue"], "bulk");

    let (waiting, ran) = (
        api.get("/jobs/queue?queue=mailers").await.expect(200),
        api.get("/jobs/runs?queue=bulk").await.expect(200),
    );
    assert_eq!(waiting["total"], 1, "{waiting}");
    assert_eq!(waiting["items"][0]["queue"], "mailers");
    assert_eq!(ran["total"], 1, "{ran}");
    assert_eq!(
        api.get("/jobs/runs?queue=mailers").await.expect(200)["total"],
        0
    );

    let lifted = api
        .call(
            Method::PATCH,
            "/jobs/queues/mailers",
            Some(json!({"paused": false, "global_limit": null})),
        )
        .await
        .expect(200);
    assert_eq!(lifted["global_limit"], json!(null));
    assert_eq!(lifted["rate_limit"]["allowed"], 5, "kept: {lifted}");
    let one = api.get("/jobs/queues/mailers").await.expect(200);
    assert_eq!(one, lifted);
}

pub(crate) async fn queue_patch_bad_input_is_422(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    for body in [
        json!({"global_limit": 0}),
        json!({"global_limit": "two"}),
        json!({"rate_limit": {"allowed": 1}}),
        json!({"rate_limit": {"allowed": 0, "period_seconds": 5}}),
        json!({"paused": "yes"}),
        json!({"unknown": 1}),
        json!([null, null]),
        json!({"global_limit": 1.5}),
    ] {
        let a = api
            .call(Method::PATCH, "/jobs/queues/q", Some(body.clone()))
            .await
            .expect(422);
        assert_eq!(a["error"]["code"], "invalid", "{body}: {a}");
    }
    api.call(Method::PATCH, "/jobs/queues/bad%20name", Some(json!({})))
        .await
        .expect(422);
    api.get("/jobs/queues/q").await.expect(404);
    let bad_queue = api
        .post(
            "/jobs/templates",
            json!({"code": "x", "name": "X", "job_type": "test.echo",
                   "context_schema": {}, "queue": "no spaces"}),
        )
        .await
        .expect(422);
    assert_eq!(bad_queue["error"]["details"][0]["pointer"], "/queue");
    // JSON Schema's `integer` includes `3.0`: the document's integers accept it.
    let whole = api
        .call(
            Method::PATCH,
            "/jobs/queues/q",
            Some(json!({"global_limit": 3.0,
                        "rate_limit": {"allowed": 899.0, "period_seconds": 736.0}})),
        )
        .await
        .expect(200);
    assert_eq!(whole["global_limit"], 3);
    assert_eq!(whole["rate_limit"]["allowed"], 899);
}
