-- Back to one row per entry while it runs: running runs become RUNNING entries again.
DROP VIEW IF EXISTS bildad_entries;
DROP INDEX IF EXISTS bildad_runs_running;
DROP INDEX IF EXISTS bildad_runs_expire;
INSERT INTO bildad_queue (id, job_run_identifier, template_id, status, priority,
    timeout_seconds, max_retries, context, run_at, attempts, uncounted_runs,
    current_run_id, node, timeout_at, expires_at, inserted_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT entry_id, job_run_identifier, template_id, 'RUNNING', priority, timeout_seconds,
       max_retries, context, entry_run_at, retry + 1, uncounted_runs, id, node,
       timeout_at, expires_at, entry_inserted_at, started_at
FROM bildad_runs WHERE status = 'RUNNING';
CREATE INDEX IF NOT EXISTS bildad_queue_kill ON bildad_queue (node, timeout_at)
    WHERE status = 'RUNNING';
CREATE INDEX IF NOT EXISTS bildad_queue_expire ON bildad_queue (expires_at)
    WHERE status = 'RUNNING';
ALTER TABLE bildad_runs DROP CONSTRAINT IF EXISTS bildad_runs_running_carries_entry;
ALTER TABLE bildad_runs
    DROP COLUMN IF EXISTS template_id,
    DROP COLUMN IF EXISTS priority,
    DROP COLUMN IF EXISTS timeout_seconds,
    DROP COLUMN IF EXISTS max_retries,
    DROP COLUMN IF EXISTS uncounted_runs,
    DROP COLUMN IF EXISTS entry_run_at,
    DROP COLUMN IF EXISTS entry_inserted_at;
