-- The queue's reference to its template is kept by PgStore instead of a FOREIGN KEY:
-- the foreign key checked every inserted entry with a query and a row lock of its own
-- (about a quarter of a bulk enqueue's time), and its index on template_id was one more
-- entry for every claim's non-HOT update. The store now locks each distinct template of
-- an enqueue once (FOR KEY SHARE, in the INSERT itself), and deleting a template locks
-- it FOR UPDATE and then looks for entries in a new snapshot (docs/STORAGE.md).
-- IF EXISTS: running this twice changes nothing.
ALTER TABLE bildad_queue DROP CONSTRAINT IF EXISTS bildad_queue_template_fkey;
DROP INDEX IF EXISTS bildad_queue_template;
