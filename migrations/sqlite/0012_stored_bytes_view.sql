-- What each user stores (REELFORGE_USER_QUOTA, the admin view, the storage metric), defined
-- once: a task's input (an upload's size, or the fetched file's as probed) and outputs while
-- its files are kept, and each resumable upload not made into a task (`live_until`: it
-- counts until it expires).
CREATE VIEW stored_bytes AS
    SELECT user_id,
           COALESCE(json_extract(source, '$.size'), json_extract(input, '$.size'), 0)
             + (SELECT COALESCE(SUM(json_extract(o.value, '$.size')), 0)
                FROM json_each(tasks.outputs) AS o) AS bytes,
           NULL AS live_until
    FROM tasks WHERE files_expired_at IS NULL
    UNION ALL
    SELECT user_id, length AS bytes, expires_at AS live_until
    FROM uploads WHERE task_id IS NULL;
