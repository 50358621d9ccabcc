-- Runs that do not count against max_retries (a run that ended NotStarted: claimed,
-- but its job never started). The retry rule counts `retry - uncounted_runs`.
-- IF NOT EXISTS: running this twice changes nothing.
ALTER TABLE bildad_queue ADD COLUMN IF NOT EXISTS uncounted_runs integer NOT NULL DEFAULT 0;
