-- Back to one queue: the entries view with queues, the settings and the queue columns go.
DROP VIEW IF EXISTS bildad_entries_v2;
DROP TABLE IF EXISTS bildad_queues;
ALTER TABLE bildad_runs DROP COLUMN IF EXISTS queue;
ALTER TABLE bildad_queue DROP COLUMN IF EXISTS queue;
ALTER TABLE bildad_templates DROP COLUMN IF EXISTS queue;
