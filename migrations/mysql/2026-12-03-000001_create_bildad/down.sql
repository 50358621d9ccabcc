DROP TABLE IF EXISTS bildad_schedules;
DROP TABLE IF EXISTS bildad_unique_keys;
DROP TABLE IF EXISTS bildad_queues;
DROP TABLE IF EXISTS bildad_nodes;
DROP VIEW IF EXISTS bildad_entries_v2;
DROP TABLE IF EXISTS bildad_runs;
DROP TABLE IF EXISTS bildad_queue;
DROP TABLE IF EXISTS bildad_templates;
