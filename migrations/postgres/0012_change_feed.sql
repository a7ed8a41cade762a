-- The change feed of the read caches (src/db/cache.rs): every committed change that a cached
-- read could show is announced on the channel `reelforge_changes`, so each API process drops
-- its copies within milliseconds, whichever process (or hand-made statement) wrote it.
-- Payloads: `task <task id> <owner id>` (the task row, or a notification its view shows),
-- `user <id>` (disabled, password, admin flag, deleted), `keys <owner id>` (an API key
-- revoked or deleted). A NOTIFY is sent at commit, once per distinct payload.
CREATE FUNCTION reelforge_announce_task() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    PERFORM pg_notify('reelforge_changes', 'task ' || r.id || ' ' || r.user_id);
    RETURN NULL;
END $$;

CREATE FUNCTION reelforge_announce_notification() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF r.task_id IS NOT NULL THEN
        PERFORM pg_notify('reelforge_changes', 'task ' || r.task_id || ' ' || r.user_id);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION reelforge_announce_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('reelforge_changes', 'user ' || OLD.id);
    RETURN NULL;
END $$;

CREATE FUNCTION reelforge_announce_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('reelforge_changes', 'keys ' || OLD.user_id);
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_announce AFTER INSERT OR UPDATE OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION reelforge_announce_task();
CREATE TRIGGER notifications_announce AFTER INSERT OR UPDATE OR DELETE ON notifications
    FOR EACH ROW EXECUTE FUNCTION reelforge_announce_notification();
-- Only the columns a cached account is checked by (a login's or a key's `last_used_at`
-- write announces nothing).
CREATE TRIGGER users_announce AFTER UPDATE OF disabled, password_version, admin OR DELETE
    ON users FOR EACH ROW EXECUTE FUNCTION reelforge_announce_user();
CREATE TRIGGER api_keys_announce AFTER UPDATE OF revoked_at, expires_at OR DELETE
    ON api_keys FOR EACH ROW EXECUTE FUNCTION reelforge_announce_keys();
