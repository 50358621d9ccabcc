//! What is MySQL's own in `MysqlStore` (on MariaDB, a database per test): its errors at
//! connect, its pool's handling of calls cut short, and batches larger than one statement
//! can bind. Skips (with a notice) when MariaDB is unreachable, unless BILDAD_REQUIRE_MYSQL=1.

use bildad_conformance::fixtures::template;
use bildad_core::{ErrorKind, JobStore, NewEntry};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn mysql_unreachable_is_transient_and_malformed_is_invalid() {
    let err = bildad_store_diesel::connect("mysql://root@127.0.0.1:1/nothing")
        .await
        .err()
        .expect("no server");
    assert!(err.is_transient(), "{err}");
    let err = bildad_store_diesel::connect("mysql://root@[::1/app")
        .await
        .err()
        .expect("malformed");
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
}

/// A store call dropped mid-query (a caller's timeout, a node's shutdown) must not leave
/// a half-read connection in the pool: every later call on the same pool still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_dropped_mid_query_leave_the_pool_usable() {
    let Some(db) = bildad_store_diesel::testing::TestMysql::fresh().await else {
        return;
    };
    let store = bildad_store_diesel::MysqlStore::connect_with(
        db.url(),
        bildad_store_diesel::PoolOptions {
            max_size: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    template().code("t").create(&store).await;
    let entries = (0..300)
        .map(|i| NewEntry::new("t", json!({ "i": i })))
        .collect();
    store.enqueue_many(entries).await.unwrap();
    let page = bildad_core::PageRequest::new(0, 500).unwrap();
    for i in 0..200u64 {
        let _ = tokio::time::timeout(Duration::from_micros(50 + i * 7), store.list_nodes()).await;
        let listed = store.list_entries(None, page);
        let _ = tokio::time::timeout(Duration::from_micros(100 + i * 20), listed).await;
        let _ = tokio::time::timeout(Duration::from_micros(30 + i * 5), store.stats()).await;
        store
            .stats()
            .await
            .unwrap_or_else(|e| panic!("after drop {i}: {e}"));
    }
}

/// MySQL allows 65,535 placeholders a statement: a batch larger than one statement can
/// bind is split, all of it in one transaction (7,000 entries bind 70,000 values).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_enqueues_a_batch_larger_than_one_statement() {
    let Some(db) = bildad_store_diesel::testing::TestMysql::fresh().await else {
        return;
    };
    let store = db.store();
    template().code("t").create(&*store).await;
    let entries: Vec<NewEntry> = (0..7000)
        .map(|i| NewEntry::new("t", json!({ "i": i })).identifier(format!("big-{i}")))
        .collect();
    let out = store.enqueue_many(entries).await.unwrap();
    assert_eq!(out.len(), 7000);
    assert_eq!(out[6999].job_run_identifier, "big-6999");
    assert_eq!(store.stats().await.unwrap().available, 7000);
    // One identifier taken makes the whole batch a conflict, and nothing is written.
    let again: Vec<NewEntry> = (6990..7010)
        .map(|i| NewEntry::new("t", json!({ "i": i })).identifier(format!("big-{i}")))
        .collect();
    let e = store.enqueue_many(again).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(store.stats().await.unwrap().available, 7000);
}
