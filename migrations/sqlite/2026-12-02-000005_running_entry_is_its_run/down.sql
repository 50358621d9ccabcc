-- Back to one row per entry while it runs: running runs become RUNNING entries again.
DROP VIEW IF EXISTS bildad_entries;
DROP INDEX IF EXISTS bildad_runs_running;
INSERT INTO bildad_queue (id, job_run_identifier, template_id, status, priority,
    timeout_seconds, max_retries, context, run_at, attempts, uncounted_runs,
    current_run_id, node, timeout_at, expires_at, inserted_at, updated_at)
SELECT entry_id, job_run_identifier, template_id, 'RUNNING', priority, timeout_seconds,
       max_retries, context, entry_run_at, retry + 1, uncounted_runs, id, node,
       timeout_at, expires_at, entry_inserted_at, started_at
FROM bildad_runs WHERE status = 'RUNNING';
CREATE INDEX IF NOT EXISTS bildad_queue_kill ON bildad_queue (node, timeout_at)
    WHERE status = 'RUNNING';
CREATE INDEX IF NOT EXISTS bildad_queue_expire ON bildad_queue (expires_at)
    WHERE status = 'RUNNING';
ALTER TABLE bildad_runs DROP COLUMN template_id;
ALTER TABLE bildad_runs DROP COLUMN priority;
ALTER TABLE bildad_runs DROP COLUMN timeout_seconds;
ALTER TABLE bildad_runs DROP COLUMN max_retries;
ALTER TABLE bildad_runs DROP COLUMN uncounted_runs;
ALTER TABLE bildad_runs DROP COLUMN entry_run_at;
ALTER TABLE bildad_runs DROP COLUMN entry_inserted_at;
