//! Claims and finalizes under concurrency: many claimers take each entry exactly once,
//! template deletion racing enqueues, two finalizers racing on one run, a batch of mixed
//! finalizes, and SQLite writers on several connections; the run/entry invariant is
//! checked in SQL after each on PostgreSQL.

use crate::{
    Count, JOB_TYPE, assert_each_once, claim_all, claim_request, enqueue_n, pg_broken_invariants,
};
use bildad_conformance::fixtures::template;
use bildad_core::{
    EntryFate, ErrorKind, FailureKind, Finalize, NewEntry, NodeRef, Outcome, RunStatus,
};
use bildad_store_diesel::testing::{TestPg, TestSqlite};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use std::sync::Arc;

// --- PostgreSQL -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_eight_claimers_take_2000_entries_each_exactly_once() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.store();
    template()
        .code("bulk")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    enqueue_n(&*store, "bulk", "e", 2000).await;

    let claimed = claim_all(store.clone(), 8, 37).await;
    assert_each_once(&claimed, 2000);

    let stats = store.stats().await.unwrap();
    assert_eq!((stats.available, stats.running), (0, 2000));
    assert_eq!(pg_broken_invariants(db.url()).await, 0);
}

/// The queue's template reference is kept by the store, not by a foreign key (migration
/// 000003): enqueues racing the deletion of their template either all lose (the delete
/// went first) or the delete loses with a conflict; no entry ever points at a missing
/// template.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_template_deletion_racing_enqueues_leaves_no_orphan() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.store();
    let (mut deleted, mut refused) = (0, 0);
    for round in 0..40 {
        let code = format!("race-{round}");
        template()
            .code(&code)
            .job_type(JOB_TYPE)
            .create(&*store)
            .await;
        let barrier = Arc::new(tokio::sync::Barrier::new(5));
        let enqueuers: Vec<_> = (0..4)
            .map(|k| {
                let (store, barrier, code) = (store.clone(), barrier.clone(), code.clone());
                tokio::spawn(async move {
                    let batch: Vec<NewEntry> = (0..20)
                        .map(|i| {
                            NewEntry::new(code.clone(), json!({}))
                                .identifier(format!("{code}-{k}-{i}"))
                        })
                        .collect();
                    barrier.wait().await;
                    store.enqueue_many(batch).await
                })
            })
            .collect();
        barrier.wait().await;
        let deletion = store.delete_template(&code).await;
        let mut enqueued = 0;
        for e in enqueuers {
            match e.await.unwrap() {
                Ok(entries) => enqueued += entries.len(),
                Err(e) => assert_eq!(e.kind(), ErrorKind::Invalid, "{e}"),
            }
        }
        match deletion {
            Ok(()) => {
                deleted += 1;
                assert_eq!(
                    enqueued, 0,
                    "round {round}: template deleted under {enqueued} entries"
                );
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                refused += 1;
                assert!(
                    enqueued > 0,
                    "round {round}: deletion refused with no entries"
                );
            }
        }
        let mut c = AsyncPgConnection::establish(db.url())
            .await
            .expect("connect");
        let orphans = diesel::sql_query(
            "SELECT count(*) AS n FROM bildad_entries e
             WHERE NOT EXISTS (SELECT 1 FROM bildad_templates t WHERE t.id = e.template_id)",
        )
        .get_result::<Count>(&mut c)
        .await
        .expect("orphan query")
        .n;
        assert_eq!(orphans, 0, "round {round}");
    }
    eprintln!("template deleted first in {deleted} rounds, refused in {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_two_finalizers_race_exactly_one_wins() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.store();
    template()
        .code("race")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    enqueue_n(&*store, "race", "r", 60).await;
    let node = NodeRef::new("n");
    let claimed = store.claim(claim_request(&node, 60)).await.unwrap();
    assert_eq!(claimed.len(), 60);

    for c in claimed {
        let run_id = c.run.id;
        let success = Finalize {
            run_id,
            outcome: Outcome::succeeded(Some(json!({"ok": true}))),
            backoff: bildad_core::Backoff::immediate(),
        };
        let timeout = Finalize {
            run_id,
            outcome: Outcome::standard(FailureKind::Timeout),
            backoff: bildad_core::Backoff::immediate(),
        };
        let (a, b) = tokio::join!(store.finalize(success), store.finalize(timeout));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.won ^ b.won, "exactly one finalize wins: {a:?} {b:?}");
        let loser = if a.won { &b } else { &a };
        assert_eq!(loser.entry, EntryFate::Untouched);

        let run = store.get_run(run_id).await.unwrap();
        assert_eq!(run.status, RunStatus::Done);
        let entry = store.get_entry(&c.run.job_run_identifier).await;
        if a.won {
            assert_eq!(a.entry, EntryFate::Deleted);
            assert_eq!(run.result, Some(bildad_core::RunResult::Succeeded));
            assert_eq!(entry.unwrap_err().kind(), ErrorKind::NotFound);
        } else {
            assert!(matches!(b.entry, EntryFate::Requeued { .. }), "{b:?}");
            assert_eq!(run.reason.as_deref(), Some("Timeout"));
            let e = entry.unwrap();
            assert_eq!(e.status, bildad_core::EntryStatus::Available);
            assert_eq!(e.current_run_id, None);
        }
    }
    assert_eq!(pg_broken_invariants(db.url()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_finalize_many_batches_mixed_outcomes() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.store();
    template()
        .code("batch")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    enqueue_n(&*store, "batch", "b", 300).await;
    let node = NodeRef::new("n");
    let claimed = store.claim(claim_request(&node, 300)).await.unwrap();
    let mut reqs: Vec<Finalize> = claimed
        .iter()
        .enumerate()
        .map(|(i, c)| Finalize {
            run_id: c.run.id,
            outcome: if i % 2 == 0 {
                Outcome::succeeded(None)
            } else {
                Outcome::failed(FailureKind::Error, "boom")
            },
            backoff: bildad_core::Backoff::from_secs(10),
        })
        .collect();
    // A repeated run id loses, as if the finalizes ran one after the other.
    reqs.push(reqs[0].clone());
    let out = store.finalize_many(reqs).await.unwrap();
    assert_eq!(out.len(), 301);
    let now = store.now().await.unwrap();
    for (i, r) in out.iter().take(300).enumerate() {
        assert!(r.won);
        match (i % 2, &r.entry) {
            (0, EntryFate::Deleted) => {}
            (1, EntryFate::Requeued { run_at }) => {
                let d = (*run_at - now).num_milliseconds();
                assert!(
                    (8_000..=11_000).contains(&d),
                    "backoff ~10 s ±10 %, got {d} ms"
                );
            }
            other => panic!("entry {i}: {other:?}"),
        }
    }
    assert!(!out[300].won);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.running, stats.scheduled), (0, 150));
    assert_eq!(pg_broken_invariants(db.url()).await, 0);
}

// --- SQLite ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_writers_on_several_connections_serialise() {
    let db = TestSqlite::fresh().await;
    let store = db.store();
    template()
        .code("bulk")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    // Enqueuers and claimers at once, each on its own pooled connection.
    let enqueuers: Vec<_> = (0..3)
        .map(|k| {
            let store = store.clone();
            tokio::spawn(async move { enqueue_n(&*store, "bulk", &format!("w{k}"), 200).await })
        })
        .collect();
    let early = tokio::spawn(claim_all(store.clone(), 3, 7));
    for e in enqueuers {
        e.await.expect("enqueuer");
    }
    let mut claimed = early.await.expect("early claimers");
    claimed.extend(claim_all(store.clone(), 6, 11).await);
    assert_each_once(&claimed, 600);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.available, stats.running), (0, 600));
}
