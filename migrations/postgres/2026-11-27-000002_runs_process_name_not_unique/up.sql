-- process_name is `<node instance>/<job_run_identifier>/<retry>`: unique by construction
-- given UNIQUE (job_run_identifier, retry), so its own unique index only costs every
-- claim one more index insertion per run. IF EXISTS: running this twice changes nothing.
ALTER TABLE bildad_runs DROP CONSTRAINT IF EXISTS bildad_runs_process_name_key;
