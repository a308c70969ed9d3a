//! The conformance suite: one test body per behaviour, run against every engine.
//!
//! An engine crate provides a [`Harness`] and expands [`conformance_tests!`](crate::conformance_tests)
//! in a test file; each body below becomes one `#[tokio::test]` there. Bodies drive a
//! [`ManualClock`] and call [`Store::run_maintenance`] themselves, so nothing sleeps.

mod audit;
mod changes;
mod debounce;
mod events;
mod flow;
mod flow_peers;
mod hooks;
mod key_events;
mod peers;
mod queues;
mod schedules;
mod spawn;
mod tasks;
mod tenants;
mod trace;
mod webhooks;
mod workflow_events;
mod workflows;

pub use audit::*;
pub use changes::*;
pub use debounce::*;
pub use events::*;
pub use flow::*;
pub use flow_peers::*;
pub use hooks::*;
pub use key_events::*;
pub use peers::*;
pub use queues::*;
pub use schedules::*;
pub use spawn::*;
pub use tasks::*;
pub use tenants::*;
pub use trace::*;
pub use webhooks::*;
pub use workflow_events::*;
pub use workflows::*;

use crate::*;
use rota_core::auth::{ClientLimits, Effect, Rule};
use rota_core::lifecycle::LeaseLoss;
use rota_core::{json_null, Backoff, Clock, ManualClock, NewTask, QueuePatch, TaskState};
use serde_json::value::RawValue;

/// Where an engine keeps one test's data.
#[async_trait]
pub trait Harness: Send + Sync + Sized + 'static {
    /// A new, empty location (a temp file, a fresh database).
    async fn new() -> Self;
    /// Opens the store at this location, creating it if empty; opening again after `close`
    /// must find the same data.
    async fn open(&self, clock: ManualClock) -> DynStore;
    /// A second store on the same location while the first is open, as a second server on
    /// one database; `None` for an engine that allows one server per location (the bodies in
    /// `peers` then race through the one store).
    async fn open_peer(&self, clock: ManualClock) -> Option<DynStore> {
        let _ = clock;
        None
    }
}

/// Expands to one `#[tokio::test]` per conformance body for the given [`Harness`] type.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:ty) => {
        $crate::conformance_tests!(@each $harness;
            enqueue_then_get_round_trips,
            a_task_keeps_its_trace_context,
            inbound_hooks_round_trip_and_their_requests_are_logged,
            each_administrative_change_writes_its_audit_entry_with_it,
            the_audit_log_filters_pages_newest_first_and_trims_by_age,
            key_events_are_the_tenants_in_no_queue_and_logged_once,
            claim_orders_by_priority_then_fifo,
            claim_filters_by_kind,
            delayed_tasks_wait_for_run_at,
            stale_lease_is_refused_after_expiry,
            expired_lease_with_no_attempts_left_goes_dead,
            heartbeat_extends_the_lease,
            an_expired_lease_is_refused_before_maintenance_runs,
            failures_back_off_record_errors_and_end_dead,
            retry_brings_a_dead_task_back,
            unique_key_deduplicates_live_tasks,
            cancel_only_non_final_tasks,
            run_now_starts_a_waiting_task_and_keeps_its_attempts,
            kill_sends_a_waiting_task_to_the_dead_letters,
            delete_removes_a_task_that_is_not_running,
            every_transition_is_logged_in_commit_order,
            a_batchs_events_read_alike_from_any_cursor,
            a_commit_wakes_only_the_readers_of_its_tenants_events,
            events_past_retention_are_trimmed_and_cursors_keep_growing,
            each_tenant_keeps_events_for_its_own_retention,
            a_diagnosis_sums_recent_events_errors_kinds_and_far_schedules,
            deleting_a_tenant_deletes_its_events,
            schedules_round_trip_per_tenant_and_survive_reopen,
            firing_a_tick_enqueues_once_and_moves_next_run_at,
            a_tick_fired_through_two_stores_at_once_runs_once,
            events_a_webhook_wants_become_deliveries,
            attempts_end_dead_and_a_failing_endpoint_is_disabled,
            dead_deliveries_and_disabled_webhooks_are_logged_for_other_webhooks,
            deleting_a_webhook_or_its_tenant_deletes_its_deliveries,
            a_task_result_goes_to_its_callback_url,
            due_deliveries_leave_out_what_is_skipped,
            batch_complete_reports_each_item,
            list_filters_and_paginates_newest_first,
            queue_stats_settings_and_pause,
            purge_removes_the_tasks_of_one_state,
            retention_deletes_old_final_tasks,
            tenants_are_isolated,
            data_survives_reopen,
            enqueue_wakes_waiting_claims,
            unknown_tasks_and_queues_are_not_found,
            temporary_failures_keep_their_attempt,
            all_queues_spans_tenants,
            queue_overview_shows_the_deepest_and_sums_the_rest,
            returned_tasks_match_what_is_stored,
            auth_data_round_trips_and_survives_reopen,
            a_key_is_found_by_id_and_its_sessions_end_forward_only,
            deleting_a_tenant_removes_everything_it_owns,
            deleting_a_tenant_under_concurrent_writes_leaves_nothing,
            concurrent_claims_through_two_stores_never_share_a_task,
            one_unique_key_enqueued_through_both_yields_one_live_task,
            a_commit_through_one_store_wakes_the_others_readers_of_its_tenant_only,
            a_lease_taken_through_one_is_reclaimed_through_the_other,
            heartbeat_complete_and_fail_work_through_the_other_store,
            queue_counts_agree_whichever_store_wrote,
            an_enqueue_through_one_wakes_claims_waiting_on_the_other,
            deleting_a_tenant_under_enqueues_through_both_leaves_nothing,
            queue_concurrency_caps_running_tasks,
            queue_rate_spaces_starts_and_says_when_the_next_may_start,
            a_rate_window_survives_reopen,
            groups_take_turns_and_priority_orders_within_a_group,
            group_limits_overrides_pause_and_weight,
            group_rates_limit_each_group_and_the_queue_rate_all,
            a_big_group_does_not_hold_up_small_ones,
            many_groups_take_turns_round_the_ring,
            groups_are_listed_with_counts_and_paged,
            room_made_by_a_task_ending_wakes_waiting_claims,
            concurrency_holds_across_two_stores,
            a_rate_holds_across_two_stores,
            replace_takes_a_waiting_tasks_place_and_restarts_its_delay,
            replace_moves_a_task_between_ready_and_scheduled,
            keep_leaves_a_waiting_holder_as_it_was,
            a_running_holder_is_kept_and_nothing_is_enqueued,
            a_holder_waiting_for_its_retry_is_replaced_keeping_its_history,
            a_batch_applies_keep_and_replace_in_order,
            replace_logs_task_replaced_and_keeps_the_group_unless_named,
            a_task_waits_for_its_dependencies_and_is_released_when_they_succeed,
            a_dependency_that_already_succeeded_counts_at_once,
            a_failed_dependency_cancels_its_dependents_unless_they_run_anyway,
            an_unknown_dependency_is_refused_and_changes_nothing,
            cancelling_a_waiting_task_cancels_its_chain,
            waits_survive_reopen,
            a_workflow_is_stored_whole_and_runs_in_order,
            a_workflow_that_cannot_be_stored_stores_nothing,
            a_failed_step_fails_the_workflow_and_cancels_what_waits,
            the_last_two_dependencies_ending_at_once_release_the_join_once,
            a_batch_callback_runs_once_after_every_member,
            retention_keeps_a_workflow_while_a_task_of_it_is_kept,
            deleting_a_dependency_cancels_its_dependents,
            a_spawner_waits_for_its_tasks_and_runs_again,
            a_spawn_needs_the_lease_and_a_failed_task_cancels_or_runs_the_spawner,
            an_open_batch_takes_members_until_it_is_closed,
            a_workflow_logs_its_end_once
        );
    };
    (@each $harness:ty; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                $crate::conformance::$name::<$harness>().await;
            }
        )*
    };
}

const T0: i64 = 1_800_000_000_000;

fn q(name: &str) -> QueueKey {
    QueueKey::new("default", name)
}

fn json(s: &str) -> Json {
    RawValue::from_string(s.to_owned()).unwrap()
}

pub fn task(kind: &str) -> NewTask {
    NewTask {
        kind: kind.into(),
        payload: json(r#"{"n":1}"#),
        priority: 0,
        run_at: None,
        max_attempts: None,
        unique_key: None,
        on_duplicate: Default::default(),
        tags: vec![],
        callback_url: None,
        group: None,
        depends_on: Vec::new(),
        on_dependency_failure: Default::default(),
        workflow: None,
        traceparent: None,
        tracestate: None,
    }
}

async fn setup<H: Harness>() -> (H, ManualClock, DynStore) {
    let h = H::new().await;
    let clock = ManualClock::new(Timestamp(T0));
    let s = h.open(clock.clone()).await;
    (h, clock, s)
}

fn claim_req(max: usize) -> ClaimRequest {
    ClaimRequest {
        worker: "w1".into(),
        kinds: vec![],
        max,
        lease_ms: Some(10_000),
    }
}

async fn create_tenant(s: &DynStore, name: &str) {
    let t = TenantRecord {
        name: name.into(),
        created_at: Timestamp(T0),
        limits: ClientLimits::default(),
        event_retention_ms: None,
    };
    s.change_auth(AuthChange::PutTenant(t)).await.unwrap();
}

async fn enqueue_one(s: &DynStore, queue: &QueueKey, t: NewTask) -> Task {
    let mut out = s.enqueue(queue, vec![t]).await.unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0).task
}

async fn claim_one(s: &DynStore, queue: &QueueKey) -> Task {
    let mut got = s.claim(queue, claim_req(1)).await.unwrap();
    assert_eq!(got.len(), 1, "expected one claimable task");
    got.remove(0)
}

fn lease(t: &Task) -> String {
    t.lease
        .as_ref()
        .expect("running task has a lease")
        .token
        .clone()
}

async fn complete(s: &DynStore, t: &Task) -> StoreResult<Task> {
    let item = Completion {
        id: t.id,
        lease: lease(t),
        result: Some(json(r#"{"ok":true}"#)),
    };
    s.complete("default", vec![item]).await.remove(0)
}

async fn fail(s: &DynStore, t: &Task, retry_in_ms: Option<u64>, dead: bool) -> StoreResult<Task> {
    let item = FailureReport {
        id: t.id,
        lease: lease(t),
        error: format!("boom on attempt {}", t.attempt),
        retry_in_ms,
        dead,
        temporary: false,
    };
    s.fail("default", vec![item]).await.remove(0)
}
