CREATE INDEX IF NOT EXISTS bildad_queue_template ON bildad_queue (template_id);
ALTER TABLE bildad_queue ADD CONSTRAINT bildad_queue_template_fkey
    FOREIGN KEY (template_id) REFERENCES bildad_templates (id) ON DELETE RESTRICT;
