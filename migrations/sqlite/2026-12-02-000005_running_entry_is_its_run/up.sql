-- The move model (docs/STORAGE.md): a running job is one row, its RUNNING run. The claim
-- moves an entry into its run (the entry row is deleted, the run carries what the entry
-- carried); a retry, a stop or a run that never started re-inserts the entry with the
-- same id, identifier and inserted_at. This migration converts a live database: entries
-- RUNNING at the upgrade become their runs.
--
-- The queue keeps its columns (status is always AVAILABLE now, the lease columns NULL):
-- dropping them means rebuilding the table, and 000001 must stay re-runnable.

-- What a run carries for its entry while it runs (NULL on runs ended before 000005).
ALTER TABLE bildad_runs ADD COLUMN template_id INTEGER;
ALTER TABLE bildad_runs ADD COLUMN priority INTEGER;
ALTER TABLE bildad_runs ADD COLUMN timeout_seconds INTEGER;
ALTER TABLE bildad_runs ADD COLUMN max_retries INTEGER;
ALTER TABLE bildad_runs ADD COLUMN uncounted_runs INTEGER;
ALTER TABLE bildad_runs ADD COLUMN entry_run_at INTEGER;
ALTER TABLE bildad_runs ADD COLUMN entry_inserted_at INTEGER;

-- Entries running now move into their runs (as the claim would have done).
UPDATE bildad_runs
SET template_id = e.template_id, priority = e.priority,
    timeout_seconds = e.timeout_seconds, max_retries = e.max_retries,
    uncounted_runs = e.uncounted_runs, entry_run_at = e.run_at,
    entry_inserted_at = e.inserted_at
FROM bildad_queue e
WHERE e.status = 'RUNNING' AND e.current_run_id = bildad_runs.id
  AND bildad_runs.status = 'RUNNING';
DELETE FROM bildad_queue WHERE status = 'RUNNING';

-- A RUNNING run that no entry pointed at broke the old invariant and cannot be shown as
-- an entry: it ends as the engine's expiry would have ended it, without a retry.
UPDATE bildad_runs
SET status = 'DONE', result = 'FAILED', reason = 'Expired',
    ended_at = CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER) * 1000
WHERE status = 'RUNNING' AND template_id IS NULL;

-- No entry is RUNNING any more: the queue's lease lookups go.
DROP INDEX IF EXISTS bildad_queue_kill;
DROP INDEX IF EXISTS bildad_queue_expire;

-- The killer's and the engine's lookups: the running runs only.
CREATE INDEX IF NOT EXISTS bildad_runs_running ON bildad_runs (node, timeout_at)
    WHERE status = 'RUNNING';

-- Every entry as the API shows it: waiting ones from the queue, running ones from their
-- run (status RUNNING, current_run_id = the run, attempts = retry + 1).
CREATE VIEW IF NOT EXISTS bildad_entries AS
SELECT id, job_run_identifier, template_id, status, priority, timeout_seconds,
       max_retries, context, run_at, attempts, uncounted_runs, current_run_id,
       inserted_at, updated_at
FROM bildad_queue
WHERE status = 'AVAILABLE'
UNION ALL
SELECT entry_id, job_run_identifier, template_id, 'RUNNING', priority,
       timeout_seconds, max_retries, context, entry_run_at, retry + 1, uncounted_runs,
       id, entry_inserted_at, started_at
FROM bildad_runs
WHERE status = 'RUNNING';
