-- The trace context goes.
ALTER TABLE bildad_runs DROP COLUMN trace_context;
ALTER TABLE bildad_queue DROP COLUMN trace_context;
