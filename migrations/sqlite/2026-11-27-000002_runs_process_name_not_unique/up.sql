-- Deliberately no statement. PostgreSQL's 000002 drops the UNIQUE on
-- bildad_runs.process_name (unique by construction given UNIQUE (job_run_identifier,
-- retry)) to save the claim an index insertion per run. SQLite cannot drop a column's
-- UNIQUE (an automatic index) without rebuilding the table, which is not worth it for
-- a backend that is not the throughput path; its schema stays as 000001 made it.
-- This file exists so that both backends carry the same migration versions.
SELECT 1;
