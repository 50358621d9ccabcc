ALTER TABLE bildad_runs DROP CONSTRAINT IF EXISTS bildad_runs_process_name_key;
ALTER TABLE bildad_runs ADD CONSTRAINT bildad_runs_process_name_key UNIQUE (process_name);
