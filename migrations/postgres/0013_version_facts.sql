-- What an import learns about a version beyond parameters and resources: its presets
-- (`hangar_workspace_preset`), workspace tags and the external auth providers it needs,
-- plus the Terraform variables its push set (`templates push --variable`).
ALTER TABLE template_versions ADD COLUMN presets TEXT NOT NULL DEFAULT '[]';
ALTER TABLE template_versions ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
ALTER TABLE template_versions ADD COLUMN external_auth TEXT NOT NULL DEFAULT '[]';
ALTER TABLE template_versions ADD COLUMN variables TEXT NOT NULL DEFAULT '{}';
