-- Same as migrations/sqlite/0005_task_runs_and_retry_wait.sql. `attempts` used to count
-- every run of a task, which is also what output keys are numbered by; a run given back at
-- shutdown and a retry by the user both added to it, so it could read more than the job's
-- max_attempts. Runs now have their own counter (monotonic, for keys), and `attempts` is the
-- attempts used of the job's current max_attempts: a released run gives its attempt back, a
-- retry by the user starts again from 0.
ALTER TABLE tasks ADD COLUMN runs integer NOT NULL DEFAULT 0;
UPDATE tasks SET runs = attempts;
UPDATE tasks t SET attempts = j.max_attempts
  FROM jobs j WHERE j.task_id = t.id AND t.attempts > j.max_attempts;
-- When a task waiting to retry (status `queued`, the failed attempt's error kept in
-- error_code/error_message) is due again: the job's run_at.
ALTER TABLE tasks ADD COLUMN next_attempt_at timestamptz;
