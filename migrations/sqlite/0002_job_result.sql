-- What a job produced for its caller (a dry run's planned resources), as JSON.
ALTER TABLE jobs ADD COLUMN result TEXT NOT NULL DEFAULT '{}';
