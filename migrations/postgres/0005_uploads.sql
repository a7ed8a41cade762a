-- Same as migrations/sqlite/0006_uploads.sql. Resumable uploads (tus 1.0 at /api/uploads).
-- The row is the upload's whole state, so a PATCH may land on any API process: how many
-- bytes are stored (`offset_bytes`), and on object storage the multipart upload they go into
-- (`multipart_id`, the ETags of the parts written so far in `parts`) and the bytes staged
-- until a part is full (`staged_bytes`, in the object `uploads/{id}.part`). One PATCH at a
-- time holds the row (`lock_owner` until `lock_until`, renewed while it streams). The id is
-- also the id of the task made from the upload, whose input key is `storage_key`.
CREATE TABLE uploads (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    length        bigint NOT NULL,
    offset_bytes  bigint NOT NULL DEFAULT 0,
    metadata      jsonb NOT NULL,
    storage_key   text NOT NULL,
    part_size     bigint NOT NULL,
    multipart_id  text,
    parts         jsonb NOT NULL DEFAULT '[]',
    staged_bytes  bigint NOT NULL DEFAULT 0,
    lock_owner    text,
    lock_until    timestamptz,
    task_id       uuid,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    completed_at  timestamptz
);
CREATE INDEX uploads_expires_at ON uploads (expires_at);
