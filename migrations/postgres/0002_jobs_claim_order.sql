-- Claims take the first due job in (run_at, id) order among queued jobs and running jobs whose
-- lease expired (JobQueue::claim in src/db/postgres.rs: `(state = 'queued' AND run_at <= now)
-- OR (state = 'running' AND lease_expires_at < now) ORDER BY run_at, id LIMIT 1`). With only
-- the two partial indexes of 0001 the planner ORs them in a bitmap and sorts every due job,
-- so a claim costs O(queued jobs): 6 ms with 10,000 queued (bench/queue). One index over both
-- states, in claim order, lets it walk the index and stop at the first row it can lock
-- (0.3 ms); it only has to step over the running jobs whose lease is still valid.
-- jobs_claimable stays for next_due_in (MIN(run_at) of queued jobs).
CREATE INDEX jobs_pending ON jobs(run_at, id) WHERE state IN ('queued', 'running');
