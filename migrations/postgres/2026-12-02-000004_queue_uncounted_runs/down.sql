ALTER TABLE bildad_queue DROP COLUMN IF EXISTS uncounted_runs;
