//! Queue listings: entries in run order, by status and by template, with pages and
//! totals, and an entry's place in line.

use crate::support::*;
use bildad_core::{EntryFilter, EntryStatus, ErrorKind, JobStore, JobTemplate, NewEntry, NodeRef};
use serde_json::json;
use std::sync::Arc;

/// Seven entries of one template with priorities `[5, 2, 9, 2, 0, 5, 7]`; returns the
/// template, a live node, and the identifiers in run order (priority, then enqueue order).
async fn seven_entries(s: &dyn JobStore) -> (JobTemplate, NodeRef, Vec<String>) {
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let prios = [5, 2, 9, 2, 0, 5, 7];
    let mut entries = Vec::new();
    for p in prios {
        entries.push(enqueue(s, NewEntry::new(t.code.clone(), json!({})).priority(p)).await);
    }
    entries.sort_by_key(|e| (e.priority, e.id));
    let in_run_order = entries.into_iter().map(|e| e.job_run_identifier).collect();
    (t, node, in_run_order)
}

/// Claims the first two entries of `t`.
async fn claim_two(s: &dyn JobStore, node: &NodeRef, t: &JobTemplate) {
    let got = expect_ok(
        s.claim(claim_request(node, &[&t.job_type], 2)).await,
        "claim",
    );
    assert_eq!(got.len(), 2);
}

/// The identifiers of every entry, optionally of one status, in the store's order.
async fn listed_identifiers(s: &dyn JobStore, status: Option<EntryStatus>) -> Vec<String> {
    all_entries(s, status)
        .await
        .into_iter()
        .map(|e| e.job_run_identifier)
        .collect()
}

/// Entries are listed in run order (priority, then enqueue order), whatever their status.
pub async fn queue_listing_in_run_order(store: Arc<dyn JobStore>) {
    let s = &*store;
    let (t, node, want_ids) = seven_entries(s).await;
    assert_eq!(listed_identifiers(s, None).await, want_ids);
    // Two of them running: still all of them, in run order (status does not reorder).
    claim_two(s, &node, &t).await;
    assert_eq!(listed_identifiers(s, None).await, want_ids);
}

/// Listing by status gives the entries of that status only, in run order.
pub async fn queue_listing_filters_by_status(store: Arc<dyn JobStore>) {
    let s = &*store;
    let (t, node, want_ids) = seven_entries(s).await;
    claim_two(s, &node, &t).await;
    let running = all_entries(s, Some(EntryStatus::Running)).await;
    assert_eq!(
        running
            .iter()
            .map(|e| e.job_run_identifier.clone())
            .collect::<Vec<_>>(),
        want_ids[..2]
    );
    assert!(running.iter().all(|e| e.status == EntryStatus::Running));
    assert_eq!(
        listed_identifiers(s, Some(EntryStatus::Available)).await,
        want_ids[2..]
    );
}

/// Queue pages count from 0, a page past the end is empty, and the total counts every
/// entry of the status asked for.
pub async fn queue_listing_pages_and_totals(store: Arc<dyn JobStore>) {
    let s = &*store;
    let (t, node, want_ids) = seven_entries(s).await;
    claim_two(s, &node, &t).await;
    let p = expect_ok(s.list_entries(None, page(1, 3)).await, "page 1");
    assert_eq!((p.total, p.page, p.limit), (7, 1, 3));
    let ids: Vec<_> = p
        .items
        .iter()
        .map(|e| e.job_run_identifier.clone())
        .collect();
    assert_eq!(ids, want_ids[3..6]);
    let p = expect_ok(
        s.list_entries(Some(EntryStatus::Available), page(9, 3))
            .await,
        "past the end",
    );
    assert!(p.items.is_empty());
    assert_eq!(p.total, 5);
    let p = expect_ok(
        s.list_entries(Some(EntryStatus::Running), page(0, 1)).await,
        "running",
    );
    assert_eq!((p.items.len(), p.total), (1, 2));
}

/// `entry_position`: 1 = next to run, among `AVAILABLE` entries in run order; `None`
/// while running.
pub async fn entry_position_in_run_order(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let a = enqueue(s, NewEntry::new(t.code.clone(), json!({})).priority(5)).await;
    let b = enqueue(s, NewEntry::new(t.code.clone(), json!({})).priority(1)).await;
    let c = enqueue(s, NewEntry::new(t.code.clone(), json!({})).priority(5)).await;
    let pos = |id: String| async move { expect_ok(s.entry_position(&id).await, "entry_position") };
    assert_eq!(pos(b.job_run_identifier.clone()).await, Some(1));
    assert_eq!(pos(a.job_run_identifier.clone()).await, Some(2));
    assert_eq!(pos(c.job_run_identifier.clone()).await, Some(3));
    // b runs: no position; the others move up.
    let cl = expect_ok(
        s.claim(claim_request(&node, &[&t.job_type], 1)).await,
        "claim",
    );
    assert_eq!(cl[0].run.job_run_identifier, b.job_run_identifier);
    assert_eq!(pos(b.job_run_identifier.clone()).await, None);
    assert_eq!(pos(a.job_run_identifier.clone()).await, Some(1));
    assert_eq!(pos(c.job_run_identifier.clone()).await, Some(2));
    // A new urgent entry goes first.
    let d = enqueue(s, NewEntry::new(t.code.clone(), json!({})).priority(0)).await;
    assert_eq!(pos(d.job_run_identifier.clone()).await, Some(1));
    assert_eq!(pos(c.job_run_identifier.clone()).await, Some(3));
    // b stopped: available again, in its place by priority and enqueue time.
    expect_ok(s.stop_entry(&b.job_run_identifier).await, "stop");
    assert_eq!(pos(d.job_run_identifier.clone()).await, Some(1));
    assert_eq!(pos(b.job_run_identifier.clone()).await, Some(2));
    assert_eq!(pos(c.job_run_identifier.clone()).await, Some(4));
    expect_err(
        s.entry_position("conf-unknown").await,
        ErrorKind::NotFound,
        "unknown",
    );
}

/// `list_entries_where` narrows by template and status, in run order, with totals and
/// pages — what filtering `list_entries` gives.
pub async fn list_entries_where_filters_by_template(store: Arc<dyn JobStore>) {
    let s = &*store;
    let a = template().create(s).await;
    let b = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    for (i, p) in [5, 2, 9, 2, 0, 5, 7, 1].into_iter().enumerate() {
        let t = if i % 3 == 0 { &b } else { &a };
        enqueue(s, NewEntry::new(t.code.clone(), json!({})).priority(p)).await;
    }
    // Two of `a` and one of `b` running.
    expect_ok(
        s.claim(claim_request(&node, &[&a.job_type], 2)).await,
        "claim",
    );
    expect_ok(
        s.claim(claim_request(&node, &[&b.job_type], 1)).await,
        "claim",
    );

    for status in [
        None,
        Some(EntryStatus::Available),
        Some(EntryStatus::Running),
    ] {
        for t in [&a, &b] {
            let want: Vec<_> = all_entries(s, status)
                .await
                .into_iter()
                .filter(|e| e.template == t.code)
                .map(|e| e.job_run_identifier)
                .collect();
            for limit in [1, 2, 500] {
                let mut listed = Vec::new();
                for p in 0..=(want.len() as u32) {
                    let pg = expect_ok(
                        s.list_entries_where(
                            EntryFilter {
                                status,
                                template: Some(t.code.clone()),
                                queue: None,
                            },
                            page(p, limit),
                        )
                        .await,
                        "list_entries_where",
                    );
                    assert_eq!(pg.total, want.len() as u64, "total ({status:?})");
                    assert_eq!((pg.page, pg.limit), (p, limit));
                    assert!(pg.items.len() <= limit as usize);
                    assert!(pg.items.iter().all(|e| e.template == t.code));
                    listed.extend(pg.items.into_iter().map(|e| e.job_run_identifier));
                }
                assert_eq!(listed, want, "{status:?}, limit {limit}");
            }
        }
    }
    // Unknown template: nothing. No template: `list_entries`.
    let none = expect_ok(
        s.list_entries_where(
            EntryFilter {
                status: None,
                template: Some("conf.no-such-template".into()),
                queue: None,
            },
            page(0, 25),
        )
        .await,
        "list_entries_where",
    );
    assert_eq!((none.items.len(), none.total), (0, 0));
    let every = expect_ok(
        s.list_entries_where(EntryFilter::default(), page(0, 500))
            .await,
        "list_entries_where",
    );
    assert_eq!(every.total, 8);
}
