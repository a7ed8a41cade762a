-- Same as migrations/sqlite/0011_task_files_lifecycle.sql.
-- Data lifecycle (issue 13). `keep_seconds`: the owner's `expires_in`, how long after the task
-- finishes its files (input and outputs) are kept; REELFORGE_RETENTION caps it for every task.
-- `files_expired_at`: when they were removed; the record stays, downloads answer 410.
ALTER TABLE tasks ADD COLUMN keep_seconds bigint;
ALTER TABLE tasks ADD COLUMN files_expired_at timestamptz;
-- The retention sweep walks finished tasks whose files are still there, oldest first.
CREATE INDEX tasks_files_kept ON tasks(finished_at) WHERE files_expired_at IS NULL;
