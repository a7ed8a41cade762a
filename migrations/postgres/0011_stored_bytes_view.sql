-- Same as migrations/sqlite/0012_stored_bytes_view.sql.
-- What each user stores (REELFORGE_USER_QUOTA, the admin view, the storage metric), defined
-- once: a task's input (an upload's size, or the fetched file's as probed) and outputs while
-- its files are kept, and each resumable upload not made into a task (`live_until`: it
-- counts until it expires).
CREATE VIEW stored_bytes AS
    SELECT user_id,
           (COALESCE((source->>'size')::bigint, (input->>'size')::bigint, 0)
             + (SELECT COALESCE(SUM((o->>'size')::bigint), 0)
                FROM jsonb_array_elements(outputs) AS o))::bigint AS bytes,
           NULL::timestamptz AS live_until
    FROM tasks WHERE files_expired_at IS NULL
    UNION ALL
    SELECT user_id, length AS bytes, expires_at AS live_until
    FROM uploads WHERE task_id IS NULL;
