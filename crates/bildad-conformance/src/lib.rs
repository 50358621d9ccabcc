//! The conformance suite every `JobStore` must pass: the rules of SPEC §2 that live in
//! the store, written once and run against each store. Also the test support every test
//! crate shares: [`fixtures::template()`] and [`FaultStore`].
//!
//! A store's test file wires it in with one line and a constructor:
//!
//! ```ignore
//! bildad_conformance::conformance_suite!(make);
//!
//! async fn make() -> Option<bildad_conformance::Harness> {
//!     let db = TempDatabase::create().await.ok()?; // None = backend unavailable: skip
//!     let store = PgStore::connect(db.url()).await.ok()?;
//!     Some(bildad_conformance::Harness::new(std::sync::Arc::new(store), db))
//! }
//! ```
//!
//! The macro expands to one `#[test]` per case, named after the case, each running on its
//! own multi-threaded tokio runtime with 4 workers (what
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` expands to, without
//! requiring tokio in the store's test crate). Each test calls `make().await` once and
//! passes the store to `bildad_conformance::cases::<case>`. When `make` returns `None`
//! the test prints a skip notice and passes.
//!
//! To run the suite twice in one file (say PostgreSQL and SQLite), call the macro in two
//! modules: `mod pg { bildad_conformance::conformance_suite!(super::make_pg); }`.
//!
//! Every case starts from an empty store (it counts rows) and creates its own templates
//! with unique codes.

use bildad_core::JobStore;
use std::any::Any;
use std::future::Future;
use std::sync::Arc;

pub mod cases;
pub mod faults;
pub mod fixtures;
mod support;

pub use faults::{Call, Fault, FaultStore, Hold, Once};

/// One store under test, and whatever must live as long as the case (a temporary
/// database, a container handle, a temp dir).
pub struct Harness {
    store: Arc<dyn JobStore>,
    // Dropped after the case ends, inside the runtime (so async-aware drops work).
    _guard: Box<dyn Any + Send + Sync>,
}

impl Harness {
    /// A harness for `store`; `guard` is dropped after the case, after the store handle
    /// the case held.
    pub fn new(store: Arc<dyn JobStore>, guard: impl Send + Sync + 'static) -> Self {
        Self {
            store,
            _guard: Box::new(guard),
        }
    }

    /// The store under test.
    pub fn store(&self) -> Arc<dyn JobStore> {
        Arc::clone(&self.store)
    }
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

/// Runs one case: builds a multi-threaded runtime (4 workers), calls `make`, and runs
/// `case` on the store; prints a skip notice when `make` returns `None`.
///
/// Used by [`conformance_suite!`]; public only so the macro can reach it.
#[doc(hidden)]
pub fn run_case<M, MF, C, CF>(name: &str, make: M, case: C)
where
    M: FnOnce() -> MF,
    MF: Future<Output = Option<Harness>>,
    C: FnOnce(Arc<dyn JobStore>) -> CF,
    CF: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    rt.block_on(async move {
        let Some(harness) = make().await else {
            eprintln!("conformance case `{name}` skipped: the backend is unavailable");
            return;
        };
        case(harness.store()).await;
        drop(harness);
    });
}

/// Expands to one test per conformance case for the store built by `$make`, an
/// `async fn() -> Option<Harness>` (`None` skips: the backend is unavailable).
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::for_each_case!($crate::__conformance_tests, $make);
    };
}

/// Calls `$callback! { [$args...] case, case, ... }` with the name of every case in
/// [`cases`]. This is the one list of cases: a case added here runs against every store.
#[macro_export]
macro_rules! for_each_case {
    ($callback:path $(, $arg:tt)* $(,)?) => {
        $callback! {
            [$($arg)*]
            // templates
            template_create_keeps_every_field,
            template_create_applies_defaults,
            template_update_changes_only_given_fields,
            template_update_changes_every_field,
            template_invalid_update_changes_nothing,
            template_delete_then_not_found,
            template_duplicate_code_conflicts,
            template_invalid_fields_name_every_violation,
            template_invalid_schema_rejected,
            template_outside_refs_rejected,
            template_list_filters_and_order,
            template_list_pagination,
            template_delete_blocked_by_entries,
            template_delete_not_blocked_by_run_history,
            template_delete_not_blocked_by_other_entries,
            // enqueue
            enqueue_defaults_from_template,
            enqueue_explicit_fields,
            enqueue_unknown_template_invalid,
            enqueue_template_code_with_nul_invalid,
            enqueue_inactive_template_invalid,
            enqueue_invalid_context_writes_nothing,
            enqueue_invalid_fields,
            enqueue_duplicate_identifier_conflicts,
            enqueue_identifier_with_history_conflicts,
            enqueue_same_identifier_concurrently,
            enqueue_many_all_or_nothing,
            enqueue_many_large_batch_all_or_nothing,
            enqueue_validates_against_current_schema,
            enqueue_wakes_listeners,
            // a delayed enqueue
            enqueue_run_in_delays_on_the_database_clock,
            enqueue_run_in_invalid,
            // claim
            claim_records_the_run,
            claim_order_priority_then_enqueue_time,
            claim_skips_future_run_at,
            claim_only_registered_job_types,
            claim_respects_limit,
            claim_only_identifier,
            claim_concurrent_claimers_take_each_entry_once,
            claim_finalize_churn_concurrently,
            // finalize
            finalize_success_deletes_entry,
            finalize_failure_requeues_with_backoff,
            finalize_failure_exhausted_deletes,
            finalize_zero_retries_deletes,
            finalize_retry_chain_until_exhausted,
            finalize_stopped_requeues_at_once,
            finalize_delete_kinds,
            finalize_reason_capped,
            finalize_race_exactly_one_wins,
            finalize_late_success_after_timeout_changes_nothing,
            finalize_many_in_order,
            // a run that never started
            not_started_runs_again_without_spending_a_retry,
            not_started_leaves_the_retries_and_backoff_as_they_were,
            // an entry that runs again is the same entry
            retried_entry_keeps_its_id_and_place_in_line,
            stopped_entry_keeps_its_id_and_place_in_line,
            not_started_entry_keeps_its_id_and_place_in_line,
            // what a job produced, holding NUL characters
            finalize_output_with_nul_is_stored_escaped,
            finalize_reason_with_nul_is_stored_escaped,
            // operator
            stop_running_entry,
            stop_available_entry_conflicts,
            stop_unknown_entry_not_found,
            remove_unknown_entry_not_found,
            entry_position_unknown_not_found,
            removed_entry_is_unknown,
            remove_running_entry,
            remove_available_entry,
            stop_races_finalize,
            mark_killed_extends_only_hard_kill_reasons,
            // killer and engine
            runs_to_kill_own_node_past_timeout,
            runs_to_expire_past_expires_at,
            runs_to_expire_stale_heartbeat,
            runs_to_expire_stopped_node,
            runs_finalized_reports_finalized,
            // queue listings
            queue_listing_in_run_order,
            queue_listing_filters_by_status,
            queue_listing_pages_and_totals,
            entry_position_in_run_order,
            list_entries_where_filters_by_template,
            // run history, nodes, counts
            list_runs_newest_first,
            list_runs_each_filter_narrows,
            list_runs_pages_and_totals,
            run_activity_matches_run_history,
            get_run_not_found,
            prune_runs_only_old_done,
            heartbeat_creates_the_node_row,
            list_nodes_latest_heartbeat_first,
            node_restart_is_a_new_instance,
            stats_counts,
            // queues (SPEC §8)
            queue_carried_from_template_to_entry_run_and_retry,
            queue_name_invalid,
            queue_paused_is_never_claimed,
            queue_global_limit_holds_under_racing_claimers,
            queue_rate_limit_counts_starts_in_the_window,
            queue_node_serves_its_queues_within_local_caps,
            queue_settings_change_and_list,
            // unique jobs
            unique_duplicate_within_window_writes_nothing,
            unique_finished_job_still_counts,
            unique_after_the_window_creates_a_new_entry,
            unique_racing_enqueues_create_one_entry,
            unique_batch_with_a_duplicate_writes_nothing,
            unique_failed_enqueue_takes_no_key,
            unique_for_seconds_out_of_range_invalid,
            prune_removes_expired_unique_keys,
            // a job that snoozes or cancels itself
            snooze_requeues_later_without_spending_a_retry,
            cancel_is_final,
            snooze_and_cancel_lose_to_an_earlier_finalize,
            // queue depths (metrics)
            queue_depths_count_states_and_oldest_age,
            // trace context (observability)
            trace_context_follows_the_entry_into_every_run,
            trace_context_invalid,
            // schedules (SPEC §9)
            schedule_create_read_list_delete,
            schedule_invalid_or_duplicate_refused,
            schedule_update_changes_given_fields,
            schedule_no_fire_time_skipped_at_one_second,
            schedule_catch_up_after_downtime,
            schedule_dst_spring_gap_fires_once,
            schedule_dst_autumn_repeat_fires_once,
            schedule_deactivated_fires_nothing,
            schedule_racing_evaluators_fire_each_time_once,
            schedule_refused_enqueue_skips_only_its_own_fire_times,
            schedule_queue_option_reaches_its_entries,
        }
    };
}

/// The callback of [`conformance_suite!`]: one test per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ([$make:path] $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::run_case(stringify!($case), $make, $crate::cases::$case);
            }
        )*
    };
}
