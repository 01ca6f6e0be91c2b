-- A template's name for people and its icon (Coder's `templates edit --display-name
-- --icon`); empty means the name and the generic icon.
ALTER TABLE templates ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE templates ADD COLUMN icon TEXT NOT NULL DEFAULT '';
