-- The trace context goes.
ALTER TABLE bildad_runs DROP COLUMN IF EXISTS trace_context;
ALTER TABLE bildad_queue DROP COLUMN IF EXISTS trace_context;
