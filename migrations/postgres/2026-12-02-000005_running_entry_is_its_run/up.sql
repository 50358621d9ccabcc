-- The move model (docs/STORAGE.md): a running job is one row, its RUNNING run. The claim
-- moves an entry into its run (the entry row is deleted, the run carries what the entry
-- carried); a retry, a stop or a run that never started re-inserts the entry with the
-- same id, identifier and inserted_at. That is 3 row writes per job instead of 5.
-- This migration converts a live database: entries RUNNING at the upgrade become their
-- runs. IF [NOT] EXISTS throughout: running it twice changes nothing.
--
-- The queue keeps its columns (status is always AVAILABLE now, the lease columns NULL):
-- 000001 must stay re-runnable after this one (an app's installed copy and the store's
-- embedded one may both run), and its statements name those columns.

-- What a run carries for its entry while it runs (NULL on runs ended before 000005).
ALTER TABLE bildad_runs
    ADD COLUMN IF NOT EXISTS template_id       BIGINT,
    ADD COLUMN IF NOT EXISTS priority          INTEGER,
    ADD COLUMN IF NOT EXISTS timeout_seconds   INTEGER,
    ADD COLUMN IF NOT EXISTS max_retries       INTEGER,
    ADD COLUMN IF NOT EXISTS uncounted_runs    INTEGER,
    ADD COLUMN IF NOT EXISTS entry_run_at      TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS entry_inserted_at TIMESTAMPTZ;

-- Entries running now move into their runs (as the claim would have done).
UPDATE bildad_runs r
SET template_id = e.template_id, priority = e.priority,
    timeout_seconds = e.timeout_seconds, max_retries = e.max_retries,
    uncounted_runs = e.uncounted_runs, entry_run_at = e.run_at,
    entry_inserted_at = e.inserted_at
FROM bildad_queue e
WHERE e.status = 'RUNNING' AND e.current_run_id = r.id AND r.status = 'RUNNING';
DELETE FROM bildad_queue WHERE status = 'RUNNING';

-- A RUNNING run that no entry pointed at broke the old invariant and cannot be shown as
-- an entry: it ends as the engine's expiry would have ended it, without a retry.
UPDATE bildad_runs SET status = 'DONE', result = 'FAILED', reason = 'Expired', ended_at = now()
WHERE status = 'RUNNING' AND template_id IS NULL;

ALTER TABLE bildad_runs DROP CONSTRAINT IF EXISTS bildad_runs_running_carries_entry;
ALTER TABLE bildad_runs ADD CONSTRAINT bildad_runs_running_carries_entry CHECK (
    status = 'DONE' OR (template_id IS NOT NULL AND priority IS NOT NULL
        AND timeout_seconds IS NOT NULL AND max_retries IS NOT NULL
        AND uncounted_runs IS NOT NULL AND entry_run_at IS NOT NULL
        AND entry_inserted_at IS NOT NULL));

-- No entry is RUNNING any more: the queue's lease lookups go.
DROP INDEX IF EXISTS bildad_queue_kill;
DROP INDEX IF EXISTS bildad_queue_expire;

-- The killer's and the engine's lookups: the running runs only. Finalize changes status,
-- so ending a run is not a HOT update (docs/STORAGE.md measures what it costs).
CREATE INDEX IF NOT EXISTS bildad_runs_running ON bildad_runs (node, timeout_at)
    WHERE status = 'RUNNING';
-- The engine's expiry: running runs past expires_at, a range scan. Without it the expiry
-- reads every entry of bildad_runs_running, and on PostgreSQL those include the dead
-- entries of every run finalized since the last VACUUM of bildad_runs (a bitmap scan
-- never marks them dead): 400 ms an expiry check after 400k jobs (docs/PERFORMANCE.md,
-- round 6). SQLite removes an index entry with its row and needs no second index.
CREATE INDEX IF NOT EXISTS bildad_runs_expire ON bildad_runs (expires_at)
    WHERE status = 'RUNNING';

-- Every entry as the API shows it: waiting ones from the queue, running ones from their
-- run (status RUNNING, current_run_id = the run, attempts = retry + 1).
CREATE OR REPLACE VIEW bildad_entries AS
SELECT id, job_run_identifier, template_id, status, priority, timeout_seconds,
       max_retries, context, run_at, attempts, uncounted_runs, current_run_id,
       inserted_at, updated_at
FROM bildad_queue
WHERE status = 'AVAILABLE'
UNION ALL
SELECT entry_id, job_run_identifier, template_id, 'RUNNING'::text, priority,
       timeout_seconds, max_retries, context, entry_run_at, retry + 1, uncounted_runs,
       id, entry_inserted_at, started_at
FROM bildad_runs
WHERE status = 'RUNNING';
