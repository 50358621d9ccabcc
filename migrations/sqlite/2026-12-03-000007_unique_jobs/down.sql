DROP TABLE IF EXISTS bildad_unique_keys;
