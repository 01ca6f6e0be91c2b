-- The order versions were pushed in, per template: the newest push becomes active when
-- its import succeeds, whichever import happens to finish last. Versions pushed before
-- this migration are numbered by creation time.
ALTER TABLE template_versions ADD COLUMN push_seq BIGINT NOT NULL DEFAULT 0;
UPDATE template_versions SET push_seq = (
    SELECT COUNT(*) FROM template_versions t2
    WHERE t2.template_id = template_versions.template_id
      AND (t2.created_at < template_versions.created_at
           OR (t2.created_at = template_versions.created_at AND t2.id <= template_versions.id)));
CREATE UNIQUE INDEX template_versions_push_seq ON template_versions(template_id, push_seq);
