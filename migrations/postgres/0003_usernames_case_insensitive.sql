-- User names are case-insensitive: one `alice`, not `alice` and `ALICE`. The spelling given
-- at signup is stored and shown; uniqueness and look-ups compare lower(username). User names
-- are ASCII (domain::Username), where PostgreSQL's lower() and SQLite's agree.
--
-- Accounts made before this migration may differ only in case. The oldest (the smallest
-- UUIDv7 id) keeps its name; each later one is renamed NAME-<the last 12 hex digits of its
-- id>, e.g. ALICE-7c1e94f0b2d3. Nothing else changes: the account keeps its id, e-mail,
-- password, tasks and tokens; its owner logs in with the e-mail address (or the new name,
-- which the login response and `reelforge user list` show).
UPDATE users SET username = username || '-' || right(id::text, 12)
 WHERE EXISTS (SELECT 1 FROM users AS older
                WHERE lower(older.username) = lower(users.username)
                  AND older.id < users.id);

-- The index takes the constraint's name: a clash still reports users_username_unique, which
-- RepoError::Conflict is chosen by (src/db/postgres.rs).
ALTER TABLE users DROP CONSTRAINT users_username_unique;
CREATE UNIQUE INDEX users_username_unique ON users (lower(username));
