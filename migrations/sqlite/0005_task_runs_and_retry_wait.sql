-- `attempts` used to count every run of a task, which is also what output keys are numbered
-- by; a run given back at shutdown and a retry by the user both added to it, so it could read
-- more than the job's max_attempts. Runs now have their own counter (monotonic, for keys), and
-- `attempts` is the attempts used of the job's current max_attempts: a released run gives its
-- attempt back, a retry by the user starts again from 0.
ALTER TABLE tasks ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
UPDATE tasks SET runs = attempts;
UPDATE tasks SET attempts = (SELECT MIN(tasks.attempts, jobs.max_attempts) FROM jobs
                             WHERE jobs.task_id = tasks.id)
 WHERE EXISTS (SELECT 1 FROM jobs WHERE jobs.task_id = tasks.id);
-- When a task waiting to retry (status `queued`, the failed attempt's error kept in
-- error_code/error_message) is due again: the job's run_at, milliseconds since the epoch.
ALTER TABLE tasks ADD COLUMN next_attempt_at INTEGER;
