//! `PgStore`'s SQL, in one place: the embedded migrations, the column lists, and every
//! statement longer than a line, as PostgreSQL reads them.

use crate::migrate::Migrations;

/// The embedded migrations, in order: (diesel version, up.sql).
pub(crate) const MIGRATIONS: &[(&str, &str)] = &[
    (
        "20261127000001",
        include_str!("../../../../migrations/postgres/2026-11-27-000001_create_bildad/up.sql"),
    ),
    (
        "20261127000002",
        include_str!(
            "../../../../migrations/postgres/2026-11-27-000002_runs_process_name_not_unique/up.sql"
        ),
    ),
    (
        "20261127000003",
        include_str!(
            "../../../../migrations/postgres/2026-11-27-000003_queue_template_reference_checked_by_store/up.sql"
        ),
    ),
    (
        "20261202000004",
        include_str!(
            "../../../../migrations/postgres/2026-12-02-000004_queue_uncounted_runs/up.sql"
        ),
    ),
    (
        "20261202000005",
        include_str!(
            "../../../../migrations/postgres/2026-12-02-000005_running_entry_is_its_run/up.sql"
        ),
    ),
    (
        "20261203000006",
        include_str!("../../../../migrations/postgres/2026-12-03-000006_queues/up.sql"),
    ),
    (
        "20261203000007",
        include_str!("../../../../migrations/postgres/2026-12-03-000007_unique_jobs/up.sql"),
    ),
    (
        "20261203000008",
        include_str!("../../../../migrations/postgres/2026-12-03-000008_schedules/up.sql"),
    ),
    (
        "20261203000009",
        include_str!("../../../../migrations/postgres/2026-12-03-000009_trace_context/up.sql"),
    ),
];

/// What the migration runner needs: the migrations, and the statement that opens its
/// transaction and takes the advisory lock (an arbitrary constant, 0x6269_6c64_6164)
/// that serialises concurrent `migrate()` calls of several nodes.
pub(crate) static MIGRATE: Migrations = Migrations {
    list: MIGRATIONS,
    begin_locked: "BEGIN; SELECT pg_advisory_xact_lock(108204929605988)",
    release: "",
};

/// The claim, one statement: pick (skipping rows other claims hold), move the entries
/// into their runs (`DELETE … RETURNING` feeding the runs' `INSERT`: a running job is
/// one row, its run, which carries what the entry carried). `{pick}` is [`PICK`] (the fast
/// path) or [`PICK_LIMITED`] (the limited queues' bounded path, `pg/queues.rs`).
///
/// The pick returns the locked rows' `ctid`s, and the `DELETE` finds them by a TID scan
/// instead of one primary-key probe each: 20 % less time per claim of 500, 1.07× the
/// processed rate (docs/PERFORMANCE.md, round 7). A `ctid` names a row version; the pick
/// holds the row's lock from the moment it reads it, and no statement updates an entry
/// (a retry re-inserts it), so the version the pick locked is the one the `DELETE` finds.
/// Were an entry ever updated between the claim's snapshot and its lock, the `DELETE`
/// would not see the new version and would leave that entry `AVAILABLE` (claimed later),
/// never claim it twice.
///
/// The rows come back in no particular order, with each entry's place in run order: the
/// store sorts the batch (`ClaimRow::run_order`), which spares the server a sort of
/// every claim (0.5 ms of 9).
///
/// The runs' rows are made once, by the `DELETE`'s `RETURNING` (joined to the template
/// with `USING`; their ids drawn from the identity's sequence), inserted from there, and
/// returned from there: the result is what was inserted (`started` must succeed for the
/// statement to), read without a `RETURNING` of the insert, a second join to the
/// templates, or a CTE between the two (8.4 → 7.2 ms a claim of 500).
pub(crate) const CLAIM: &str = "
WITH r AS (
    DELETE FROM bildad_queue m
    USING bildad_templates t
    WHERE m.ctid = ANY(ARRAY({pick})) AND t.id = m.template_id
    RETURNING nextval('bildad_runs_id_seq') AS id, m.id AS entry_id, m.job_run_identifier,
           t.code AS template, t.job_type, m.attempts AS retry,
           $3 || '/' || m.job_run_identifier || '/' || m.attempts AS process_name,
           $3 AS node, $4 AS node_name, 'RUNNING' AS status, m.context, now() AS started_at,
           now() + m.timeout_seconds * interval '1 second' AS timeout_at,
           now() + m.timeout_seconds * interval '1 second' + $5 * interval '1 microsecond'
               AS expires_at,
           m.template_id, m.priority, m.timeout_seconds, m.max_retries, m.uncounted_runs,
           m.run_at AS entry_run_at, m.inserted_at AS entry_inserted_at, m.queue,
           m.trace_context, t.updated_at AS template_updated_at
), started AS (
    INSERT INTO bildad_runs (id, entry_id, job_run_identifier, template, job_type, retry,
        process_name, node, node_name, status, context, started_at, timeout_at, expires_at,
        template_id, priority, timeout_seconds, max_retries, uncounted_runs, entry_run_at,
        entry_inserted_at, queue, trace_context)
    OVERRIDING SYSTEM VALUE
    SELECT id, entry_id, job_run_identifier, template, job_type, retry, process_name, node,
        node_name, status, context, started_at, timeout_at, expires_at, template_id,
        priority, timeout_seconds, max_retries, uncounted_runs, entry_run_at,
        entry_inserted_at, queue, trace_context
    FROM r
)
SELECT id, job_run_identifier, template, job_type, retry, process_name, node, node_name,
       status, NULL::text AS result, NULL::text AS reason, context, NULL::jsonb AS output,
       started_at, timeout_at, expires_at, NULL::timestamptz AS ended_at, queue,
       max_retries, template_id, template_updated_at, entry_run_at, trace_context,
       priority, entry_inserted_at, entry_id
FROM r";

/// The fast path's pick: available entries in run order, of no queue whose settings
/// restrict it (paused or limited: read in the statement, so a change binds every claim
/// that starts after it commits). `{filter}` is one of two constant predicates, followed
/// by the node's queue filters ([`super::claim`]).
pub(crate) const PICK: &str = "
        SELECT e.ctid
        FROM bildad_queue e
        JOIN bildad_templates t ON t.id = e.template_id
        WHERE e.status = 'AVAILABLE' AND {filter} AND t.job_type = ANY($1)
          AND e.queue <> ALL(ARRAY(SELECT name FROM bildad_queues
                                   WHERE paused OR global_limit IS NOT NULL
                                      OR rate_allowed IS NOT NULL))
        ORDER BY e.priority, e.inserted_at, e.id
        LIMIT $2
        FOR UPDATE OF e SKIP LOCKED";

/// The bounded path's pick: of each queue `$6`, at most its room `$7` entries in run
/// order, at most `$2` in all.
pub(crate) const PICK_LIMITED: &str = "
        SELECT p.ctid
        FROM unnest($6::text[], $7::int8[]) AS room(queue, n)
        CROSS JOIN LATERAL (
            SELECT e.ctid, e.id, e.priority, e.inserted_at
            FROM bildad_queue e
            JOIN bildad_templates t ON t.id = e.template_id
            WHERE e.status = 'AVAILABLE' AND {filter} AND t.job_type = ANY($1)
              AND e.queue = room.queue
            ORDER BY e.priority, e.inserted_at, e.id
            LIMIT room.n
            FOR UPDATE OF e SKIP LOCKED) p
        ORDER BY p.priority, p.inserted_at, p.id
        LIMIT $2";

/// Planner settings for the claim's transaction. The queue's statistics are usually wrong
/// (a burst of enqueues after the last ANALYZE; a fresh table has none): the planner
/// then expects one available entry, and picks a bitmap scan of *every* available entry
/// plus a sort (spilling to disk with the contexts) before the LIMIT, and a hash of the
/// whole queue for the UPDATE — work proportional to the queue on every claim, 80 ms a
/// claim of 500 with 20,000 entries. Without sorts, bitmaps and hash or merge joins, the
/// only plan left walks `bildad_queue_claim` in run order, stops at the LIMIT, and
/// probes primary keys: proportional to the batch, whatever the statistics say.
/// A disabled node type costs 10^10, which would make PostgreSQL JIT-compile the
/// statement (0.7 s a claim): hence `jit = off`.
/// (The claim's own connections have them for the session: [`CLAIM_SESSION`]; the
/// explain helper sends these.)
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub(crate) const CLAIM_PLANNER: &str = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off; \
    SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off";

/// [`CLAIM_PLANNER`] for a whole session: run once on each connection of the claim pool,
/// which serves nothing but [`CLAIM`], so that each claim is one statement in one round
/// trip — no BEGIN, no `SET LOCAL`, no COMMIT — and the other statements keep the
/// planner's defaults on their own pool.
pub(crate) const CLAIM_SESSION: &str = "SET enable_sort = off; SET enable_bitmapscan = off; \
    SET enable_hashjoin = off; SET enable_mergejoin = off; SET jit = off";

/// The re-insert of the entries of runs `r` (joined to `d`, which gives each its `delay`
/// in µs and whether the run `counted`): the same entry id, identifier, context and
/// `inserted_at` (so its place in line is kept), `attempts = retry + 1`,
/// `run_at = now + delay`. One text for [`END_RUNS`] and [`REQUEUE`].
macro_rules! reinsert_entries {
    () => {
        "INSERT INTO bildad_queue (id, job_run_identifier, template_id, priority,
        timeout_seconds, max_retries, context, run_at, attempts, uncounted_runs,
        inserted_at, updated_at, queue, trace_context)
    OVERRIDING SYSTEM VALUE
    SELECT r.entry_id, r.job_run_identifier, r.template_id, r.priority, r.timeout_seconds,
        r.max_retries, r.context, now() + d.delay * interval '1 microsecond', r.retry + 1,
        r.uncounted_runs + CASE WHEN d.counted THEN 0 ELSE 1 END, r.entry_inserted_at,
        now(), r.queue, r.trace_context"
    };
}

/// Ends runs by explicit id, only those still `RUNNING`, and in the same statement
/// applies the fates that the outcome alone decides (see `bildad_core::fate`), received
/// as data per run: `$5` the action (`'delete'`, `'requeue'`, or NULL when the retry
/// rule decides after the statement, from `retry`, `max_retries` and `uncounted_runs`,
/// in the same transaction), `$6` a requeue's delay in microseconds, `$7` whether a
/// requeued run counts against `max_retries` (a run that does not adds one to
/// `uncounted_runs`). In the move model a running entry *is* its run: `'delete'` has
/// nothing left to delete, and `'requeue'` re-inserts the entry (`reinsert_entries!`).
/// Every row reports what the retry rule reads (`max_retries`, `uncounted_runs`) and,
/// for a requeue, the entry's new `run_at`.
///
/// The guard is spelled `status <> 'DONE'` (the same rows: `status` is `RUNNING` or
/// `DONE`, NOT NULL, by its CHECK) so that the planner cannot match the partial indexes
/// on `status = 'RUNNING'`: with them it hash-joins the batch to a bitmap scan of "every
/// running run", which on PostgreSQL includes the dead index entries of every run ended
/// since the last VACUUM (about 1,000 running runs estimated, 400k entries read at 500k
/// jobs: the move model's regression, docs/PERFORMANCE.md round 6). Without them the only
/// path is one primary-key probe per run.
pub(crate) const END_RUNS: &str = concat!(
    "
WITH i AS (
    SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::jsonb[], $5::text[],
                         $6::int8[], $7::bool[])
        AS i(id, result, reason, output, entry_action, delay, counted)
), ended AS (
    UPDATE bildad_runs r
    SET status = 'DONE', result = i.result, reason = i.reason, output = i.output,
        ended_at = now()
    FROM i
    WHERE r.id = i.id AND r.status <> 'DONE'
    RETURNING r.id, r.retry, r.node, r.entry_id, r.max_retries, r.uncounted_runs,
        i.entry_action, i.delay, i.counted
), requeued AS (
    ",
    reinsert_entries!(),
    "
    FROM ended d
    JOIN bildad_runs r ON r.id = d.id
    WHERE d.entry_action = 'requeue'
    RETURNING id, run_at
)
SELECT d.id AS run_id, d.retry, d.node, d.entry_id, d.max_retries,
       d.uncounted_runs, q.run_at AS requeued_at
FROM ended d
LEFT JOIN requeued q ON q.id = d.entry_id"
);

/// The killer's lookup: this node's runs past `timeout_at` (the partial index
/// `bildad_runs_running`).
pub(crate) const KILL: &str = "
SELECT id AS run_id, job_run_identifier, retry, node, queue
FROM bildad_runs
WHERE status = 'RUNNING' AND node = $1 AND timeout_at < now()
ORDER BY id";

/// The engine's expiry lookup: runs past `expires_at` (a range scan of the partial index
/// `bildad_runs_expire`, which stops at the first run not yet expired, whatever number
/// of dead index entries finalized runs left behind), and runs of dead or stopped node
/// instances (the partial index `bildad_runs_running`).
pub(crate) const EXPIRE: &str = "
SELECT id AS run_id, job_run_identifier, retry, node, queue
FROM bildad_runs
WHERE status = 'RUNNING' AND expires_at < now()
UNION
SELECT r.id, r.job_run_identifier, r.retry, r.node, r.queue
FROM bildad_nodes n
JOIN bildad_runs r ON r.node = n.instance_id AND r.status = 'RUNNING'
WHERE n.stopped_at IS NOT NULL
   OR n.last_heartbeat_at < now() - $1 * interval '1 microsecond'
ORDER BY run_id";

/// Re-inserts the entries of runs (`$1`) that the retry rule keeps, each after its own
/// delay (`$2`, µs).
pub(crate) const REQUEUE: &str = concat!(
    reinsert_entries!(),
    "
FROM (SELECT u.id, u.delay, true AS counted
      FROM unnest($1::int8[], $2::int8[]) AS u(id, delay)) d
JOIN bildad_runs r ON r.id = d.id
RETURNING id, run_at"
);

/// The identifiers of a request that an entry or a run already uses (an identifier with
/// history, or whose job runs, is taken too: SPEC §2.1).
pub(crate) const TAKEN: &str = "
SELECT job_run_identifier AS text FROM bildad_queue
   WHERE job_run_identifier = ANY($1)
UNION
SELECT job_run_identifier FROM bildad_runs WHERE job_run_identifier = ANY($1)";

/// Of the identifiers an enqueue chose, those that have a run: read in a new snapshot,
/// *after* the insert. With the move model the queue's unique index no longer covers a
/// running job, so an enqueue that passed [`TAKEN`] may race a claim that moved the same
/// identifier's entry into its run between the two; the insert then waits for (or sees)
/// that claim's commit, and this second look sees its run (docs/STORAGE.md).
pub(crate) const TAKEN_BY_RUN: &str = "
SELECT DISTINCT job_run_identifier AS text FROM bildad_runs
WHERE job_run_identifier = ANY($1)";

/// The enqueue: one multi-row INSERT, all or nothing. It takes the place of a foreign
/// key (migration 000003): each distinct template (`$8`) is locked FOR KEY SHARE once,
/// so a concurrent `delete_template` (which locks it FOR UPDATE) either waits for this
/// insert and then sees its entries, or deletes first, and then the LEFT JOIN gives the
/// entry a NULL template id and the NOT NULL constraint fails the whole statement. It
/// returns only what the database decides (id, times). `pg_notify` wakes the nodes that
/// listen when, and only if, the insert commits; one notification per transaction.
/// `$9` is each entry's `run_in` in microseconds (NULL: none), added to `now()`.
pub(crate) const ENQUEUE: &str = "
WITH tpl AS MATERIALIZED (
   SELECT id, pg_notify('bildad_enqueued', '')
   FROM bildad_templates WHERE id = ANY($8) FOR KEY SHARE
)
INSERT INTO bildad_queue (job_run_identifier, template_id, priority,
    timeout_seconds, max_retries, context, run_at, inserted_at, updated_at, queue,
    trace_context)
SELECT i.identifier, tpl.id, i.priority, i.timeout_seconds, i.max_retries, i.context,
       COALESCE(i.run_at, now() + i.run_in_us * interval '1 microsecond', now()),
       now(), now(), i.queue, i.trace_context
FROM unnest($1::text[], $2::int8[], $3::int4[], $4::int4[], $5::int4[],
            $6::jsonb[], $7::timestamptz[], $9::int8[], $10::text[], $11::text[])
    WITH ORDINALITY
    AS i(identifier, template_id, priority, timeout_seconds, max_retries,
         context, run_at, run_in_us, queue, trace_context, ord)
LEFT JOIN tpl ON tpl.id = i.template_id
ORDER BY i.ord
RETURNING id, job_run_identifier, run_at, inserted_at";

/// Of the given runs, in their order, those no longer `RUNNING` (the killer's check for
/// tasks finalized elsewhere). `status <> 'DONE'` for the reason given at [`END_RUNS`].
pub(crate) const RUNS_FINALIZED: &str = "
SELECT i.id FROM unnest($1::int8[]) WITH ORDINALITY AS i(id, ord)
WHERE NOT EXISTS (
    SELECT 1 FROM bildad_runs r WHERE r.id = i.id AND r.status <> 'DONE')
ORDER BY i.ord";

/// A node's heartbeat: its row, created on the first.
pub(crate) const HEARTBEAT: &str = "
INSERT INTO bildad_nodes (instance_id, name, started_at, last_heartbeat_at)
VALUES ($1, $2, now(), now())
ON CONFLICT (instance_id) DO UPDATE SET last_heartbeat_at = now()";

/// Ended runs since `$1` by bucket of `$2` ms and result: the bucket of a run is
/// floor(ms since `$1`) / bucket ms, exactly as `RunActivity::record` computes it.
pub(crate) const ACTIVITY: &str = "
SELECT floor(greatest(extract(epoch FROM ended_at - $1), 0) * 1000)::int8 / $2
           AS bucket,
       count(*) FILTER (WHERE result = 'SUCCEEDED') AS succeeded,
       count(*) FILTER (WHERE result = 'FAILED') AS failed
FROM bildad_runs
WHERE status = 'DONE' AND started_at >= $1
  AND result IS NOT NULL AND ended_at IS NOT NULL
GROUP BY 1 ORDER BY 1";
