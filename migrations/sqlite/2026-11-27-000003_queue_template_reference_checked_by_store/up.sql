-- Deliberately no statement. PostgreSQL's 000003 replaces the queue's FOREIGN KEY to
-- bildad_templates with checks in PgStore, for bulk-enqueue speed. SQLite's foreign key
-- check is cheap, dropping it would mean rebuilding the table, and SQLite is not the
-- throughput path: its FOREIGN KEY (with PRAGMA foreign_keys = ON) stays.
-- This file exists so that both backends carry the same migration versions.
SELECT 1;
