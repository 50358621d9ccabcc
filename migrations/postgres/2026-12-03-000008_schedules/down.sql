DROP TABLE IF EXISTS bildad_schedules;
