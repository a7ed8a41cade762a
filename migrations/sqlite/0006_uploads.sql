-- Resumable uploads (tus 1.0 at /api/uploads). The row is the upload's whole state, so a
-- PATCH may land on any API process: how many bytes are stored (`offset_bytes`), and on
-- object storage the multipart upload they go into (`multipart_id`, the ETags of the parts
-- written so far as a JSON array in `parts`) and the bytes staged until a part is full
-- (`staged_bytes`, in the object `uploads/{id}.part`). One PATCH at a time holds the row
-- (`lock_owner` until `lock_until`, renewed while it streams). The id is also the id of the
-- task made from the upload, whose input key is `storage_key`. Times: milliseconds since
-- the Unix epoch.
CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    length        INTEGER NOT NULL,
    offset_bytes  INTEGER NOT NULL DEFAULT 0,
    metadata      TEXT NOT NULL,
    storage_key   TEXT NOT NULL,
    part_size     INTEGER NOT NULL,
    multipart_id  TEXT,
    parts         TEXT NOT NULL DEFAULT '[]',
    staged_bytes  INTEGER NOT NULL DEFAULT 0,
    lock_owner    TEXT,
    lock_until    INTEGER,
    task_id       TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    completed_at  INTEGER
);
CREATE INDEX uploads_expires_at ON uploads (expires_at);
