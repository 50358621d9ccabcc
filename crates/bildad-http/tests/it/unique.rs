//! Unique jobs over HTTP (SPEC §8): `unique_for_seconds` in `POST /jobs/queue`; a
//! duplicate is 200 with `duplicate: true` and the existing identifier, a new entry 201
//! with `duplicate: false`.

use crate::{Api, backends};
use bildad_core::JobStore;
use bildad_http::ApiConfig;
use serde_json::json;
use std::sync::Arc;

backends!(
    unique_enqueue_answers_201_then_200_duplicate,
    unique_for_seconds_out_of_range_is_422,
);

pub(crate) async fn unique_enqueue_answers_201_then_200_duplicate(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    api.templates().await;
    let first = api
        .post(
            "/jobs/queue",
            json!({"template": "test.echo", "context": {"a": 1, "b": [1, 2]},
                   "unique_for_seconds": 3600}),
        )
        .await
        .expect(201);
    assert_eq!(first["duplicate"], false, "{first}");
    let id = first["job_run_identifier"].clone();

    let dup = api
        .post(
            "/jobs/queue",
            json!({"template": "test.echo", "context": {"b": [1, 2], "a": 1},
                   "unique_for_seconds": 60, "priority": 1}),
        )
        .await
        .expect(200);
    assert_eq!(dup, json!({"duplicate": true, "job_run_identifier": id}));
    let list = api.get("/jobs/queue").await.expect(200);
    assert_eq!(list["total"], 1, "the duplicate wrote nothing: {list}");

    // A duplicate that asks for an engine pass gets one: the existing entry runs.
    let dup = api
        .post(
            "/jobs/queue",
            json!({"template": "test.echo", "context": {"a": 1, "b": [1, 2]},
                   "unique_for_seconds": 60, "trigger_engine": true}),
        )
        .await
        .expect(200);
    assert_eq!(dup["duplicate"], true);
    assert_eq!(dup["job_run_identifier"], id);
    assert!(dup["engine"].is_object(), "{dup}");

    // Not unique: never a duplicate.
    let plain = api
        .post(
            "/jobs/queue",
            json!({"template": "test.echo", "context": {"a": 1, "b": [1, 2]}}),
        )
        .await
        .expect(201);
    assert_eq!(plain["duplicate"], false);
}

pub(crate) async fn unique_for_seconds_out_of_range_is_422(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    api.templates().await;
    for bad in [
        json!(0),
        json!(-1),
        json!(31_622_401),
        json!(1.5),
        json!("60"),
    ] {
        let body = api
            .post(
                "/jobs/queue",
                json!({"template": "test.echo", "context": {}, "unique_for_seconds": bad}),
            )
            .await
            .expect(422);
        let pointers: Vec<_> = body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["pointer"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(
            pointers.iter().any(|p| p == "/unique_for_seconds"),
            "{bad}: {body}"
        );
    }
    let list = api.get("/jobs/queue").await.expect(200);
    assert_eq!(list["total"], 0);
}
