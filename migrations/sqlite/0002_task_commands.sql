-- The planned ffmpeg command lines of the latest run (JSON array of strings, scratch paths
-- made relative), kept for troubleshooting and shown to the task's owner.
ALTER TABLE tasks ADD COLUMN commands TEXT NOT NULL DEFAULT '[]';
