-- Runs that do not count against max_retries (a run that ended NotStarted: claimed,
-- but its job never started). The retry rule counts `retry - uncounted_runs`.
ALTER TABLE bildad_queue ADD COLUMN uncounted_runs INTEGER NOT NULL DEFAULT 0;
