ALTER TABLE bildad_queue DROP COLUMN uncounted_runs;
