-- Trace context (docs/OBSERVABILITY.md): the W3C `traceparent` of the request that
-- enqueued an entry, kept with the entry and carried by its runs (the claim copies it,
-- a retry re-inserts it), so that the run's span links to the enqueuing request. NULL:
-- none was given. The entries view is not changed: the API does not show it.
ALTER TABLE bildad_queue ADD COLUMN trace_context TEXT;
ALTER TABLE bildad_runs ADD COLUMN trace_context TEXT;
