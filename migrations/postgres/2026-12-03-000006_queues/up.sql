-- Queues (SPEC §8): every template, entry and run names its queue ("default" unless
-- set), and `bildad_queues` holds the settings of a queue that has any: paused, a global
-- concurrency limit, a sliding-window rate limit. Every node's claim reads them, so a
-- change applies to the whole cluster at once. Re-runnable: IF [NOT] EXISTS throughout.

-- A constant default: PostgreSQL adds these columns without rewriting the tables.
ALTER TABLE bildad_templates ADD COLUMN IF NOT EXISTS queue TEXT NOT NULL DEFAULT 'default';
ALTER TABLE bildad_queue ADD COLUMN IF NOT EXISTS queue TEXT NOT NULL DEFAULT 'default';
ALTER TABLE bildad_runs ADD COLUMN IF NOT EXISTS queue TEXT NOT NULL DEFAULT 'default';

-- A queue's settings. No row: not paused, no limits. The claim locks the rows of the
-- limited queues it serves (FOR UPDATE, in name order) while it counts and claims, so
-- two claims can never both take a queue's last slot.
CREATE TABLE IF NOT EXISTS bildad_queues (
    name                TEXT PRIMARY KEY,
    paused              BOOLEAN NOT NULL DEFAULT FALSE,
    global_limit        INTEGER CHECK (global_limit >= 1),
    rate_allowed        INTEGER CHECK (rate_allowed >= 1),
    rate_period_seconds INTEGER CHECK (rate_period_seconds >= 1),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT bildad_queues_rate_limit_whole
        CHECK ((rate_allowed IS NULL) = (rate_period_seconds IS NULL))
);

-- Every entry as the API shows it (000005's `bildad_entries`), with its queue. A view of
-- its own: 000005 stays as it was, because an app that applied Bildad's migrations
-- under its own versions (`cargo xtask install`) lets the store run them all again,
-- and 000005's CREATE OR REPLACE VIEW cannot drop a column from a wider view. A later
-- migration that widens this one drops and creates it again.
DROP VIEW IF EXISTS bildad_entries_v2;
CREATE VIEW bildad_entries_v2 AS
SELECT id, job_run_identifier, template_id, status, priority, timeout_seconds,
       max_retries, context, run_at, attempts, uncounted_runs, current_run_id,
       inserted_at, updated_at, queue
FROM bildad_queue
WHERE status = 'AVAILABLE'
UNION ALL
SELECT entry_id, job_run_identifier, template_id, 'RUNNING'::text, priority,
       timeout_seconds, max_retries, context, entry_run_at, retry + 1, uncounted_runs,
       id, entry_inserted_at, started_at, queue
FROM bildad_runs
WHERE status = 'RUNNING';
