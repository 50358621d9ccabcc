DROP TABLE IF EXISTS bildad_nodes;
DROP TABLE IF EXISTS bildad_runs;
DROP TABLE IF EXISTS bildad_queue;
DROP TABLE IF EXISTS bildad_templates;
